"""Images for the texture tools: files (PNG/JPEG/...) or scikit-image's bundled
photos and textures (`skimage:brick`, `skimage:astronaut`, ...), as float32
[H, W, 3] in [0, 1]."""

from __future__ import annotations

import os

import numpy as np

from jaxgan import images as images_lib

# scikit-image's bundled images that work offline (its wheel ships them).
SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "chelsea", "coffee", "grass",
                  "gravel", "rocket", "text", "moon", "page", "coins", "horse")


class ImageError(ValueError):
  """An image could not be read; the message names it and the fix."""


def load_image(spec: str, size: int | None = None) -> np.ndarray:
  """`spec` (a path, or skimage:NAME) -> float32 [H, W, 3] in [0, 1]; grey
  images are repeated to RGB. With `size`, centre-cropped to a square and
  resized to size x size (antialiased)."""
  if spec.startswith("skimage:"):
    name = spec.partition(":")[2]
    if name not in SKIMAGE_IMAGES:
      raise ImageError(f"Unknown scikit-image image {name!r}; use one of "
                       f"{', '.join(SKIMAGE_IMAGES)} (skimage:NAME), or a file path.")
    import skimage.data
    pixels = np.asarray(getattr(skimage.data, name)())
  else:
    if not os.path.isfile(spec):
      raise ImageError(f"Image not found: {spec!r}. Pass an image file (PNG, JPEG, ...) or "
                       f"skimage:NAME ({', '.join(SKIMAGE_IMAGES[:6])}, ...).")
    try:
      pixels = images_lib.read_image(spec, "RGB")
    except images_lib.ImageFileError as e:
      raise ImageError(f"{e} Pass a PNG or JPEG file.") from None
  if pixels.dtype == bool:
    pixels = pixels.astype(np.uint8) * 255
  x = pixels.astype(np.float32)
  x = x / 255.0 if pixels.dtype == np.uint8 or x.max() > 1.0 else x
  if x.ndim == 2:
    x = x[..., None]
  if x.shape[-1] == 4:
    x = x[..., :3]
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  if size is not None:
    x = center_square_resize(x, size)
  return np.clip(x, 0.0, 1.0)


def center_square_resize(x: np.ndarray, size: int) -> np.ndarray:
  """float [H, W, C] -> the centre square, resized to size x size (antialiased;
  scikit-image). The data pipeline's uint8 batch version is
  `jaxgan.data.resize.center_crop_resize`."""
  import skimage.transform
  h, w = x.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  x = x[top:top + side, left:left + side]
  if side != size:
    x = skimage.transform.resize(x, (size, size), anti_aliasing=side > size, order=1)
  return x.astype(np.float32)


def save_image(x: np.ndarray, path: str) -> str:
  """[H, W, 3] in [0, 1] -> PNG."""
  from PIL import Image
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray((np.clip(np.asarray(x), 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
  return path
