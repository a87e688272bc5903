"""nst_tf: Gatys et al.'s neural style transfer in TensorFlow 2 / Keras 3.

    import nst_tf
    result = nst_tf.transfer("photo.jpg", "painting.jpg", max_size=512)
    result.image      # float32 RGB in [0, 1]
    result.run_dir    # outputs/photo_painting_<time>/ (run.flags, losses.csv, TensorBoard, ...)

`transfer`, `reconstruct`, `texture`, `sweep`, `resume`, `train_stylizer` and `apply_stylizer` are the Python API (`nst_tf.api`); run.py is
a client of it. TensorFlow loads at the first call, not at `import nst_tf`, so the command line checks
its flags in a blink. The package is TensorFlow-only; Keras is pinned to its TensorFlow backend here,
before anything imports it, so a user's `KERAS_BACKEND=jax` cannot break the feature extractor.
"""
import os

os.environ["KERAS_BACKEND"] = "tensorflow"

__version__ = "0.2.0"

_API = ("transfer", "reconstruct", "texture", "sweep", "resume", "train_stylizer", "apply_stylizer", "Result",
        "SweepResult", "StylizerResult")
__all__ = list(_API)


def __getattr__(name):   # PEP 562: the API (and TensorFlow behind it) is imported on first use
    if name == "video":   # nst_tf.video(...): the clips' package, callable (nst_tf/video/__init__.py)
        import importlib
        return importlib.import_module("nst_tf.video")
    if name in _API:
        from nst_tf import api
        return getattr(api, name)
    raise AttributeError(f"module 'nst_tf' has no attribute {name!r}")
