"""folder:DIR, PNG/JPEG images with one subfolder per class."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jaxgan import images as images_lib
from jaxgan.data.base import DataError, IndexedSource, resolve_split, shard_indices
from jaxgan.data.resize import center_crop_resize


_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_SPLIT_NAMES = ("train", "test", "validation", "valid", "val", "eval")


@dataclasses.dataclass
class FolderSource(IndexedSource):
  """Image files on disk, decoded in the pipeline."""
  name: str
  files: dict[str, list[str]]
  labels: dict[str, np.ndarray]
  class_names: list[str]
  channels: int
  image_shape: tuple[int, int, int] | None  # None when sizes differ

  @property
  def splits(self) -> dict[str, int]:
    return {k: len(v) for k, v in self.files.items()}

  @property
  def num_classes(self) -> int:
    return max(1, len(self.class_names))

  def _select(self, spec):
    ranges = resolve_split(spec, self.splits)
    files = [f for s, a, b in ranges for f in self.files[s][a:b]]
    labels = np.concatenate([self.labels[s][a:b] for s, a, b in ranges])
    return files, labels

  def examples(self, spec: str, process_index: int, process_count: int):
    from jaxgan.data.tf import tf
    files, labels = self._select(spec)
    idx = shard_indices(len(files), process_index, process_count)
    ds = tf.data.Dataset.from_tensor_slices(
        {"path": np.asarray(files, dtype=object)[idx].astype(str), "label": labels[idx]})
    channels = self.channels

    def decode(ex):
      image = tf.io.decode_image(tf.io.read_file(ex["path"]), channels=channels,
                                 expand_animations=False)
      return {"image": image, "label": ex["label"]}

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def fitted(self, spec: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    files, labels = self._select(spec)
    mode = "L" if self.channels == 1 else "RGB"
    images = []
    for path in files:
      x = _read(path, mode)
      images.append(center_crop_resize(x.reshape(*x.shape[:2], self.channels)[None], size)[0])
    return np.stack(images), labels.astype(np.int64)

  def reader(self, spec: str) -> "FileReader":
    files, labels = self._select(spec)
    return FileReader(f"{self.name} {spec}", files, labels, self.channels)


class FileReader:
  """Image files by number, decoded on demand (Pillow)."""

  in_memory = False

  def __init__(self, where: str, files: list[str], labels: np.ndarray, channels: int):
    self.where, self.files, self.labels, self.channels = where, files, labels, channels

  def __len__(self) -> int:
    return len(self.files)

  def read(self, i: int) -> tuple[np.ndarray, int]:
    # (an ImageFileError, which streamed.read_fitted names with the example's number)
    x = images_lib.read_image(self.files[i], "L" if self.channels == 1 else "RGB")
    return x.reshape(*x.shape[:2], self.channels), int(self.labels[i])

  def name_of(self, i: int) -> str:
    return self.files[i]


def _read(path: str, mode: str) -> np.ndarray:
  try:
    return images_lib.read_image(path, mode)
  except images_lib.ImageFileError as e:
    raise DataError(f"{e} Remove or replace the file.") from None


def _list_images(directory: str) -> list[str]:
  return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                if f.lower().endswith(_IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(directory, f)))


def load_folder(directory: str) -> FolderSource:
  if not os.path.isdir(directory):
    raise DataError(f"folder: directory {directory!r} does not exist. Point "
                    "--config.dataset=folder:DIR at a folder of PNG/JPEG images with one "
                    "subfolder per class (optionally inside train/ and test/ subfolders).")
  subdirs = sorted(d for d in os.listdir(directory)
                   if os.path.isdir(os.path.join(directory, d)))
  split_dirs = {d: os.path.join(directory, d) for d in subdirs if d in _SPLIT_NAMES}
  if not split_dirs:
    split_dirs = {"train": directory}

  # Per split: {class name: [files]}; files directly inside a split folder
  # form one unnamed class.
  per_split: dict[str, dict[str, list[str]]] = {}
  for split, sdir in split_dirs.items():
    classes = {"": _list_images(sdir)}
    for c in sorted(os.listdir(sdir)):
      if os.path.isdir(os.path.join(sdir, c)) and not (sdir == directory and c in _SPLIT_NAMES):
        classes[c] = _list_images(os.path.join(sdir, c))
    per_split[split] = {c: f for c, f in classes.items() if f}
  class_names = sorted({c for classes in per_split.values() for c in classes})
  label_of = {c: i for i, c in enumerate(class_names)}
  files, labels = {}, {}
  for split, classes in per_split.items():
    pairs = [(f, label_of[c]) for c in sorted(classes) for f in classes[c]]
    if not pairs:
      raise DataError(f"folder:{directory}: split {split!r} ({split_dirs[split]}) holds no "
                      f"PNG/JPEG images ({', '.join(_IMAGE_EXTENSIONS)}), neither directly "
                      "nor in class subfolders.")
    files[split] = [f for f, _ in pairs]
    labels[split] = np.asarray([lab for _, lab in pairs], np.int64)

  # Validate every file now, so a corrupt image is an error before training,
  # not a crash hours in: its header, verified without decoding it all
  # (Image.verify), and its pixel count (the decompression-bomb limit).
  sizes, modes = set(), set()
  for path in (f for fs in files.values() for f in fs):
    try:
      size, mode = images_lib.check_image_header(path)
    except images_lib.ImageFileError as e:
      raise DataError(f"folder:{directory}: {e} Remove or replace the file.") from None
    sizes.add(size)
    modes.add(mode)
  channels = 1 if modes <= set(images_lib.GREY_MODES) else 3
  image_shape = None
  if len(sizes) == 1:
    (w, h), = sizes
    image_shape = (h, w, channels)
  return FolderSource(f"folder:{directory}", files, labels,
                      [c or "default" for c in class_names], channels, image_shape)
