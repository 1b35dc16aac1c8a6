"""Image grids: arrays in [-1, 1] to PNG files."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image


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
