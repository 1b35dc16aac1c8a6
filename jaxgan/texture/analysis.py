"""Texture classification from descriptors: patches cut from texture images,
split by image region into train and test (so no test patch overlaps a
training patch), classified from Gram descriptors and, as the baseline, from
raw pixel statistics."""

from __future__ import annotations

import os

import numpy as np

from jaxgan.texture import image_files

BUNDLED = ("brick", "grass", "gravel")


def load_classes(data: str | None, size: int | None = None) -> dict[str, list[np.ndarray]]:
  """{class: [images [H, W, 3] in [0, 1]]} from a folder (one image or one
  subfolder of images per class), or scikit-image's brick, grass and gravel."""
  if not data:
    return {name: [image_files.load_image(f"skimage:{name}")] for name in BUNDLED}
  if not os.path.isdir(data):
    raise image_files.ImageError(f"--data {data!r} is not a folder; give a folder with one image "
                            "or one subfolder of images per class.")
  classes = {}
  for entry in sorted(os.listdir(data)):
    path = os.path.join(data, entry)
    if os.path.isdir(path):
      files = [os.path.join(path, f) for f in sorted(os.listdir(path))
               if not f.startswith(".")]
      if files:
        classes[entry] = [image_files.load_image(f) for f in files]
    elif not entry.startswith("."):
      classes[os.path.splitext(entry)[0]] = [image_files.load_image(path)]
  if len(classes) < 2:
    raise image_files.ImageError(f"--data {data!r} holds {len(classes)} class(es); texture "
                            "classification needs at least 2 (one image or subfolder each).")
  return classes


def region_patches(image: np.ndarray, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) patches [n, patch, patch, 3]: train from the left half of
  the image, test from the right half."""
  h, w = image.shape[:2]
  half = w // 2
  if h < patch or half < patch:
    raise image_files.ImageError(f"An image of {h}x{w} is too small for {patch}x{patch} patches "
                            f"from each half; use a smaller --patch.")

  def cut(region):
    rh, rw = region.shape[:2]
    return np.stack([region[i:i + patch, j:j + patch]
                     for i in range(0, rh - patch + 1, stride)
                     for j in range(0, rw - patch + 1, stride)])

  return cut(image[:, :half]), cut(image[:, half:])


def pixel_statistics(x: np.ndarray, bins: int = 16) -> np.ndarray:
  """[N, H, W, C] -> per-channel mean, std and a `bins`-bin histogram: the
  baseline a texture descriptor should beat."""
  n, c = x.shape[0], x.shape[-1]
  flat = x.reshape(n, -1, c)
  hist = np.stack([np.stack([np.histogram(flat[i, :, k], bins=bins, range=(0, 1))[0]
                             for k in range(c)]) for i in range(n)]) / flat.shape[1]
  return np.concatenate([flat.mean(1), flat.std(1), hist.reshape(n, -1)], axis=1)


def classify(train_x, train_y, test_x, num_classes: int) -> dict:
  """Predicted test labels of two classifiers on standardised features:
  nearest class mean, and a linear classifier (multinomial logistic
  regression, scikit-learn)."""
  from sklearn.linear_model import LogisticRegression
  mean, std = train_x.mean(0), train_x.std(0) + 1e-8
  a, b = (train_x - mean) / std, (test_x - mean) / std
  centroids = np.stack([a[train_y == k].mean(0) for k in range(num_classes)])
  ncm = np.argmin(((b[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
  linear = LogisticRegression(max_iter=2000, C=1.0).fit(a, train_y).predict(b)
  return {"nearest_mean": ncm, "linear": linear}


def confusion(labels, predicted, num_classes: int) -> np.ndarray:
  m = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(m, (labels, predicted), 1)
  return m


def pca_2d(x: np.ndarray) -> np.ndarray:
  """[N, D] -> the first two principal components [N, 2] (standardised)."""
  z = (x - x.mean(0)) / (x.std(0) + 1e-8)
  _, _, vt = np.linalg.svd(z, full_matrices=False)
  return z @ vt[:2].T
