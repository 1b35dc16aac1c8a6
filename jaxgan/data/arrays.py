"""Sources held in memory as arrays: idx:DIR (MNIST-format IDX files), digits
(scikit-learn's bundled digits), npz:FILE and arrays:NAME (a program's own
arrays, `register_arrays`)."""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import re
import struct
import zlib

import numpy as np

from jaxgan.data.base import DataError, IndexedSource, resolve_split, shard_indices
from jaxgan.data.resize import center_crop_resize


@dataclasses.dataclass
class ArraySource(IndexedSource):
  """Images held in memory as uint8 [N, H, W, C] arrays, per split."""
  name: str
  images: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  class_names: list[str] | None = None

  @property
  def splits(self) -> dict[str, int]:
    return {k: len(v) for k, v in self.images.items()}

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return next(iter(self.images.values())).shape[1:]

  @property
  def channels(self) -> int:
    return self.image_shape[-1]

  @property
  def num_classes(self) -> int:
    if self.class_names:
      return len(self.class_names)
    return int(max(v.max(initial=0) for v in self.labels.values())) + 1

  def _select(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
    ranges = resolve_split(spec, self.splits)
    images = np.concatenate([self.images[s][a:b] for s, a, b in ranges])
    labels = np.concatenate([self.labels[s][a:b] for s, a, b in ranges])
    return images, labels

  def examples(self, spec: str, process_index: int, process_count: int):
    from jaxgan.data.tf import tf
    images, labels = self._select(spec)
    idx = shard_indices(len(labels), process_index, process_count)
    return tf.data.Dataset.from_tensor_slices(
        {"image": images[idx], "label": labels[idx].astype(np.int64)})

  def fitted(self, spec: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = self._select(spec)
    return center_crop_resize(images, size), labels.astype(np.int64)

  def reader(self, spec: str) -> "ArrayReader":
    ranges = resolve_split(spec, self.splits)
    return ArrayReader(f"{self.name} {spec}", [self.images[s][a:b] for s, a, b in ranges],
                       [self.labels[s][a:b] for s, a, b in ranges])


class ArrayReader:
  """Rows of in-memory arrays (views of the source's, no copy)."""

  in_memory = True

  def __init__(self, where: str, images: list[np.ndarray], labels: list[np.ndarray]):
    self.where, self._images, self._labels = where, images, labels
    self._starts = np.cumsum([0] + [len(x) for x in images])

  def __len__(self) -> int:
    return int(self._starts[-1])

  def _locate(self, i: int) -> tuple[int, int]:
    part = int(np.searchsorted(self._starts, i, side="right")) - 1
    return part, i - int(self._starts[part])

  def read(self, i: int) -> tuple[np.ndarray, int]:
    part, row = self._locate(i)
    return self._images[part][row], int(self._labels[part][row])

  def name_of(self, i: int) -> str:
    return f"row {i}"


_IDX_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx(\d)-ubyte(\.gz)?$")


# The most bytes one IDX file may claim (16 GiB; MNIST's largest is 47 MB).
_MAX_IDX_BYTES = 2 ** 34


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file of unsigned bytes (gzipped or not), validating it.
  A gzipped file is decompressed only as far as its header's size allows,
  so a small file cannot expand without bound."""
  with open(path, "rb") as f:
    gzipped = f.read(2) == b"\x1f\x8b"
  try:
    with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
      head = f.read(4)
      if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] == 0:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {head.hex()!r}, "
                        "expected 00000801 for labels or 00000803 for images).")
      ndim = head[3]
      dims_raw = f.read(4 * ndim)
      if len(dims_raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header.")
      dims = struct.unpack(f">{ndim}I", dims_raw)
      header = 4 + 4 * ndim
      expected = header + math.prod(dims)
      if expected > _MAX_IDX_BYTES:
        raise DataError(f"{path}: IDX header claims {dims} = {expected} bytes, more than "
                        f"{_MAX_IDX_BYTES}; the file is damaged.")
      body = f.read(expected - header + 1)  # one byte more shows a longer file
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path}: corrupt or truncated gzip file ({e}). "
                    "Download the file again.") from None
  got = header + len(body)
  if got != expected:
    holds = f"more than {expected}" if got > expected else str(got)
    raise DataError(f"{path}: IDX header promises {dims} = {expected} bytes but the file "
                    f"holds {holds} bytes (truncated or corrupt). Download it again.")
  return np.frombuffer(body, np.uint8).reshape(dims)


def load_idx_dir(directory: str) -> ArraySource:
  if not os.path.isdir(directory):
    raise DataError(f"idx: directory {directory!r} does not exist. Point "
                    "--config.dataset=idx:DIR at a folder with MNIST-format files such as "
                    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.")
  found: dict[tuple[str, str], str] = {}
  for fname in sorted(os.listdir(directory)):
    m = _IDX_NAME.match(fname)
    if m:
      found[(m.group(1), m.group(2))] = os.path.join(directory, fname)
  images, labels = {}, {}
  for prefix, split in (("train", "train"), ("t10k", "test")):
    img, lab = found.get((prefix, "images")), found.get((prefix, "labels"))
    if img is None and lab is None:
      continue
    if img is None or lab is None:
      missing = f"{prefix}-{'images-idx3' if img is None else 'labels-idx1'}-ubyte[.gz]"
      raise DataError(f"idx:{directory}: {missing} is missing for the {split!r} split.")
    x, y = read_idx(img), read_idx(lab)
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4 or y.ndim != 1:
      raise DataError(f"{img}: expected images [N, H, W] and labels [N], got shapes "
                      f"{x.shape} and {y.shape}.")
    if len(x) != len(y):
      raise DataError(f"idx:{directory}: {len(x)} images in {os.path.basename(img)} but "
                      f"{len(y)} labels in {os.path.basename(lab)}; the files do not belong "
                      "together.")
    if len(x) == 0:
      raise DataError(f"{img}: holds no images.")
    images[split], labels[split] = x, y
  if not images:
    raise DataError(f"idx:{directory}: no IDX files found. Expected train-images-idx3-ubyte "
                    "and train-labels-idx1-ubyte and/or t10k-images-idx3-ubyte and "
                    "t10k-labels-idx1-ubyte (optionally .gz).")
  return ArraySource(f"idx:{directory}", images, labels)


def load_digits() -> ArraySource:
  """scikit-learn's 1,797 8x8 digits: `train` = the first 1,500, `test` = the last 297."""
  from sklearn.datasets import load_digits as sk_load_digits
  d = sk_load_digits()
  x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  y = d.target.astype(np.int64)
  return ArraySource("digits", {"train": x[:1500], "test": x[1500:]},
                     {"train": y[:1500], "test": y[1500:]})


_REGISTERED: dict[str, ArraySource] = {}


def _array_source(name: str, splits: dict) -> ArraySource:
  """{split: images or (images, labels)} -> a validated ArraySource."""
  images, labels = {}, {}
  for split, value in splits.items():
    x, y = value if isinstance(value, tuple) else (value, None)
    x = np.asarray(x)
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.dtype != np.uint8 or not len(x):
      raise DataError(f"{name}: split {split!r} must hold uint8 images [N, H, W] or "
                      f"[N, H, W, 1 or 3] with N > 0, got {x.dtype} {x.shape}.")
    y = np.zeros(len(x), np.int64) if y is None else np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
      raise DataError(f"{name}: labels of split {split!r} must be non-negative integers [N] "
                      f"with N = {len(x)} images, got {y.dtype} {y.shape}.")
    images[split], labels[split] = x, y.astype(np.int64)
  if not images:
    raise DataError(f"{name}: no splits.")
  if len({x.shape[1:] for x in images.values()}) > 1:
    raise DataError(f"{name}: splits have different image shapes "
                    f"{ {k: x.shape[1:] for k, x in images.items()} }.")
  return ArraySource(name, images, labels)


def register_arrays(name: str, splits: dict) -> None:
  """Makes `--config.dataset=arrays:NAME` read these in-memory arrays:
  `splits` maps a split name to uint8 images [N, H, W(, C)] or to
  (images, integer labels [N])."""
  _REGISTERED[name] = _array_source(f"arrays:{name}", splits)


def load_npz(path: str) -> ArraySource:
  if not os.path.isfile(path):
    raise DataError(f"npz: file {path!r} does not exist. Save your arrays with "
                    "np.savez(FILE, train_images=..., train_labels=..., test_images=..., "
                    "test_labels=...).")
  try:
    with np.load(path) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, zlib.error) as e:
    raise DataError(f"npz:{path}: not a readable .npz file ({e}).") from None
  splits = {k[:-len("_images")]: (v, arrays.get(k[:-len("_images")] + "_labels"))
            for k, v in arrays.items() if k.endswith("_images")}
  if not splits:
    raise DataError(f"npz:{path}: holds {sorted(arrays)} but no <split>_images array "
                    "(e.g. train_images, with train_labels).")
  return _array_source(f"npz:{path}", splits)


def registered_arrays(name: str) -> ArraySource:
  """The arrays `register_arrays(name, ...)` registered."""
  if name not in _REGISTERED:
    raise DataError(f"No arrays registered as {name!r} (registered: "
                    f"{', '.join(sorted(_REGISTERED)) or 'none'}); call "
                    "jaxgan.data.register_arrays(NAME, {'train': (images, labels)}) first.")
  return _REGISTERED[name]
