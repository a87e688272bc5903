"""nst_tf: Gatys et al.'s neural style transfer in TensorFlow 2 / Keras 3.

The package is TensorFlow-only; Keras is pinned to its TensorFlow backend here, before anything
imports it, so a user's `KERAS_BACKEND=jax` cannot break the feature extractor.
"""
import os

os.environ["KERAS_BACKEND"] = "tensorflow"

__version__ = "0.1.0"
