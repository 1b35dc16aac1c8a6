"""Inpainting masks, [H, W] float32 with 1 = known pixel, 0 = missing (Yeh et
al.'s M), by name or from a PNG."""

from __future__ import annotations

import os

import numpy as np

from jaxgan import images as images_lib

NAMES = ("center", "random", "left", "right", "top", "bottom")


def make_mask(spec: str, size: int, seed: int = 0) -> np.ndarray:
  """center: the central size/2 x size/2 square missing (14x14 at 28x28);
  random: 80% of the pixels missing, drawn from `seed`; left / right / top /
  bottom: that half missing; or a PNG file of size x size whose dark pixels
  (< 128) are missing."""
  m = np.ones((size, size), np.float32)
  h = size // 2
  if spec == "center":
    lo = (size - h) // 2
    m[lo:lo + h, lo:lo + h] = 0.0
  elif spec == "random":
    m = (np.random.default_rng(seed).uniform(size=(size, size)) >= 0.8).astype(np.float32)
  elif spec == "left":
    m[:, :h] = 0.0
  elif spec == "right":
    m[:, h:] = 0.0
  elif spec == "top":
    m[:h] = 0.0
  elif spec == "bottom":
    m[h:] = 0.0
  elif spec.lower().endswith(".png"):
    m = _from_png(spec, size)
  else:
    raise ValueError(f"Unknown --mask {spec!r}; use one of {', '.join(NAMES)} or a PNG file "
                     "(dark pixels = missing).")
  if m.min() == 1.0:
    raise ValueError(f"--mask {spec!r} leaves no pixel missing; nothing to inpaint.")
  return m


def _from_png(path: str, size: int) -> np.ndarray:
  if not os.path.isfile(path):
    raise ValueError(f"Mask file not found: {path!r}.")
  pixels = images_lib.read_image(path, "L")  # ImageFileError (a ValueError) names the file
  if pixels.shape != (size, size):
    raise ValueError(f"The mask {path!r} is {pixels.shape[1]}x{pixels.shape[0]}; the run's "
                     f"images are {size}x{size}: make the mask that size.")
  return (pixels >= 128).astype(np.float32)
