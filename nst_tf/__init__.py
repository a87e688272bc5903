"""nst_tf: Gatys et al.'s neural style transfer in TensorFlow 2 / Keras 3.

    import nst_tf
    result = nst_tf.transfer("photo.jpg", "painting.jpg", max_size=512)
    result.image      # float32 RGB in [0, 1]
    result.run_dir    # outputs/photo_painting_<time>/ (run.flags, losses.csv, TensorBoard, ...)

`transfer`, `reconstruct`, `texture`, `sweep`, `resume`, `train_stylizer`, `apply_stylizer`, `load_stylizer`
and `run` are the Python API (`nst_tf.api`); it and run.py run every mode through `nst_tf.lifecycle.run`.
TensorFlow loads at the first call, not at `import nst_tf`, so the command line checks its flags in a
blink. The package is TensorFlow-only; Keras is pinned to its TensorFlow backend here, before anything
imports it, so a user's `KERAS_BACKEND=jax` cannot break the feature extractor.

A trained stylizer.keras holds layers of nst_tf's own (`nst_tf.stylizer.network`). Keras finds a custom
layer only if its module has been imported, and it imports none but its own; so once Keras has been
imported (by anyone, after `import nst_tf`), those layers are registered with it, and
`keras.saving.load_model("stylizer.keras")` works as for any Keras model (`_KerasLayers`).
"""
import importlib.abc
import importlib.util
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

__version__ = "0.2.0"

_API = ("transfer", "reconstruct", "texture", "sweep", "resume", "train_stylizer", "apply_stylizer", "load_stylizer",
        "run", "Result", "SweepResult", "StylizerResult")
__all__ = list(_API)


def serve(output_dir: str = "outputs", host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """The web page (`python run.py --serve`): start runs, watch them, browse outputs/; see nst_tf.web."""
    from nst_tf.web import serve as _serve
    _serve(output_dir, host, port, token)


def __getattr__(name):   # PEP 562: the API (and TensorFlow behind it) is imported on first use
    if name == "video":   # nst_tf.video(...): the clips' package, callable (nst_tf/video/__init__.py)
        import importlib
        return importlib.import_module("nst_tf.video")
    if name in _API:
        from nst_tf import api
        return getattr(api, name)
    raise AttributeError(f"module 'nst_tf' has no attribute {name!r}")


def _register_layers() -> None:
    try:
        importlib.import_module("nst_tf.stylizer.network")   # its classes register themselves with Keras
    except Exception:   # never break the import of Keras; nst_tf.load_stylizer still loads the file
        pass


class _KerasLayers(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A post-import hook (PEP 451): when `keras` is imported, it is imported as always, then the stylizer's
    layers are registered. Removes itself at the first import of Keras."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _register_layers()


if "keras" in sys.modules:   # Keras (and TensorFlow) already loaded: registering costs nothing more
    _register_layers()
elif not any(isinstance(finder, _KerasLayers) for finder in sys.meta_path):
    sys.meta_path.insert(0, _KerasLayers())
