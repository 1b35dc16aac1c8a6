"""TensorFlow, imported for input pipelines only.

TensorFlow must never claim accelerator memory: JAX owns the devices. Every
module of jaxgan that needs TF imports it from here, which hides all GPUs
from TF before anything else can touch them.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")

__all__ = ["tf"]
