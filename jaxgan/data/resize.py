"""Fitting uint8 images to the training resolution, without TensorFlow."""

from __future__ import annotations

import functools

import jax
import numpy as np


def center_crop_resize(images: np.ndarray, size: int) -> np.ndarray:
  """uint8 [N, H, W, C] -> uint8 [N, size, size, C]: centre-cropped to a square,
  then resized (antialiased bilinear: area-like when shrinking, bilinear when
  growing, as the tf.data pipeline's `tf.image.resize(antialias=True)`), rounded."""
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  images = images[:, top:top + side, left:left + side]
  with jax.default_device(jax.local_devices(backend="cpu")[0]):
    chunks = [np.asarray(_resize(images[i:i + 1024], size)) for i in range(0, n, 1024)]
  return np.concatenate(chunks).astype(np.uint8)


@functools.partial(jax.jit, static_argnums=1)
def _resize(images, size: int):
  """One compiled resize per (input shape, size): a folder or TFDS split
  fitted image by image compiles once per distinct image size."""
  n, _, _, c = images.shape
  x = jax.image.resize(images.astype(np.float32), (n, size, size, c), "linear", antialias=True)
  return jax.numpy.clip(jax.numpy.round(x), 0, 255)
