"""Image files: reading one safely (`read_image`, with a pixel-count limit
against decompression bombs), and image grids: arrays in [-1, 1] to PNG files."""

from __future__ import annotations

import contextlib
import math
import os
import warnings

import numpy as np
from PIL import Image

# The most pixels an image file may have before it is decoded: 8192 x 8192
# (67 million pixels, ~200 MB as RGB). A 193 KB PNG can claim 13000 x 13000 and
# take 5 GB and minutes to decode. Raise it with --max_image_pixels=N (every
# command) or the environment variable below, which worker processes inherit.
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192
MAX_IMAGE_PIXELS_ENV = "JAXGAN_MAX_IMAGE_PIXELS"


# Pillow modes of one-channel images.
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class ImageFileError(ValueError):
  """An image file that cannot be read: damaged, not an image, or too large."""


def max_image_pixels() -> int:
  value = os.environ.get(MAX_IMAGE_PIXELS_ENV, "")
  try:
    limit = int(value) if value else DEFAULT_MAX_IMAGE_PIXELS
  except ValueError:
    limit = 0
  if limit <= 0:
    raise ImageFileError(f"{MAX_IMAGE_PIXELS_ENV}={value!r} is not a positive whole number "
                         "of pixels.")
  return limit


def _too_large(path: str, width: int, height: int, limit: int) -> ImageFileError:
  return ImageFileError(
      f"{path}: a {width}x{height} image ({width * height / 1e6:.0f} megapixels) is over the "
      f"limit of {limit / 1e6:.0f} megapixels that guards against decompression bombs; raise "
      f"it with --max_image_pixels=N (or {MAX_IMAGE_PIXELS_ENV}=N) if the file is trusted.")


@contextlib.contextmanager
def _opened(path: str):
  """The Pillow image at `path`, its size checked against
  `max_image_pixels()` from the header; any failure inside, decoding
  included, becomes one `ImageFileError` naming the file."""
  limit = max_image_pixels()
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      # Pillow's own guard (an error at twice its limit) must not refuse
      # what this limit allows; it only ever rises.
      if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
      with Image.open(path) as im:
        if im.width * im.height > limit:
          raise _too_large(path, im.width, im.height, limit)
        yield im
  except ImageFileError:
    raise
  except FileNotFoundError:
    raise ImageFileError(f"{path}: no such file.") from None
  except Image.DecompressionBombError as e:  # Pillow's guard, at twice the limit
    raise ImageFileError(f"{path}: {str(e).rstrip('.')}; raise the limit with "
                         f"--max_image_pixels=N (or {MAX_IMAGE_PIXELS_ENV}=N) if the file "
                         "is trusted.") from None
  except Exception as e:  # noqa: BLE001 - Pillow's decoders raise many types on damaged files
    raise ImageFileError(f"{path}: not a readable image ({type(e).__name__}: "
                         f"{str(e)[:200]}).") from None


def read_image(path: str, mode: str | None = None) -> np.ndarray:
  """The pixels of the image file at `path` as uint8 [H, W] or [H, W, C]
  (converted to Pillow `mode` when given: "L", "RGB", or "auto", which is
  "L" for grey images and "RGB" for the rest). Its size is
  checked from the header against `max_image_pixels()` before anything is
  decoded; any failure is one `ImageFileError` naming the file."""
  with _opened(path) as im:
    if mode == "auto":
      mode = "L" if im.mode in GREY_MODES else "RGB"
    pixels = np.asarray(im.convert(mode) if mode else im)
  if pixels.dtype == bool:
    pixels = pixels.astype(np.uint8) * 255
  if pixels.dtype != np.uint8:
    raise ImageFileError(f"{path}: {pixels.dtype} pixels; save it as an 8-bit PNG or JPEG.")
  return pixels


def check_image_header(path: str) -> tuple[tuple[int, int], str]:
  """((width, height), mode) of an image file from its header, checked
  (`Image.verify`, no decoding) and within `max_image_pixels()`;
  `ImageFileError` otherwise."""
  with _opened(path) as im:
    size, mode = im.size, im.mode
    im.verify()
  return size, mode


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] floats -> uint8 [0, 255]."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, ncols: int | None = None, padding: int = 2) -> np.ndarray:
  """[N, H, W, C] images in [-1, 1] -> one uint8 [rows*(H+p)+p, cols*(W+p)+p, C] grid."""
  images = to_uint8(images)
  n, h, w, c = images.shape
  ncols = ncols or int(math.ceil(math.sqrt(n)))
  nrows = int(math.ceil(n / ncols))
  grid = np.zeros((nrows * (h + padding) + padding, ncols * (w + padding) + padding, c), np.uint8)
  for i, img in enumerate(images):
    r, col = divmod(i, ncols)
    y, x = padding + r * (h + padding), padding + col * (w + padding)
    grid[y:y + h, x:x + w] = img
  return grid


def save_grid(images: np.ndarray, path: str, ncols: int | None = None, scale: int = 2) -> str:
  """Writes a grid of images in [-1, 1] as a PNG (upscaled by `scale`); returns the path."""
  grid = make_grid(images, ncols)
  if scale > 1:
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  mode = "L" if grid.shape[-1] == 1 else "RGB"
  tmp = path + ".tmp"
  Image.fromarray(grid[..., 0] if mode == "L" else grid, mode).save(tmp, format="PNG")
  os.replace(tmp, path)
  return path


def save_confusion_matrix(confusion: np.ndarray, path: str, cell: int = 36,
                          class_names=None) -> str:
  """Writes confusion[true, predicted] counts as a PNG: rows are true classes,
  columns predicted; each cell shaded by its share of the row, with its count;
  with `class_names`, rows are labelled "i name" in a margin on the right."""
  from PIL import ImageDraw
  confusion = np.asarray(confusion, np.float64)
  n = confusion.shape[0]
  rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1.0)
  margin = cell
  legend = 8 * max(len(f"{i} {c}") for i, c in enumerate(class_names)) if class_names else 0
  image = Image.new("RGB", (margin + n * cell + 1 + legend, margin + n * cell + 1), "white")
  draw = ImageDraw.Draw(image)
  draw.text((2, 2), "true\\pred", fill="black")
  for i in range(n):
    draw.text((margin + i * cell + cell // 3, margin // 2), str(i), fill="black")
    draw.text((margin // 3, margin + i * cell + cell // 3), str(i), fill="black")
    for j in range(n):
      shade = int(round(255 * (1.0 - rows[i, j])))
      x, y = margin + j * cell, margin + i * cell
      draw.rectangle([x, y, x + cell, y + cell], fill=(shade, shade, 255), outline="grey")
      draw.text((x + 3, y + cell // 3), str(int(confusion[i, j])),
                fill="white" if rows[i, j] > 0.5 else "black")
    if class_names:
      draw.text((margin + n * cell + 6, margin + i * cell + cell // 3), f"{i} {class_names[i]}",
                fill="black")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  image.save(path + ".tmp", format="PNG")
  os.replace(path + ".tmp", path)
  return path
