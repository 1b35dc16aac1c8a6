"""TFDS catalog datasets, read from `data_dir` (downloaded when there is network)."""

from __future__ import annotations

import dataclasses
import os
import socket

import numpy as np

from jaxgan.data.base import DataError, resolve_split
from jaxgan.data.resize import center_crop_resize


def _network_available(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
  try:
    with socket.create_connection((host, 443), timeout=timeout):
      return True
  except OSError:
    return False


@dataclasses.dataclass
class TFDSSource:
  name: str
  builder: object

  @property
  def splits(self) -> dict[str, int]:
    return {k: v.num_examples for k, v in self.builder.info.splits.items()}

  @property
  def image_shape(self):
    shape = self.builder.info.features["image"].shape
    return tuple(shape) if None not in shape else None

  @property
  def channels(self) -> int:
    return self.builder.info.features["image"].shape[-1]

  @property
  def num_classes(self) -> int:
    features = self.builder.info.features
    return getattr(features["label"], "num_classes", 1) if "label" in features else 1

  @property
  def class_names(self) -> list[str] | None:
    label = self.builder.info.features["label"] if "label" in self.builder.info.features else None
    return list(label.names) if getattr(label, "names", None) else None

  def _check_split(self, spec: str):
    if self.splits:  # Unknown only for mocked data.
      resolve_split(spec, self.splits)

  def _shards(self, spec: str, process_count: int):
    import tensorflow_datasets as tfds
    self._check_split(spec)
    return tfds.even_splits(spec, n=process_count)

  def shard_sizes(self, spec: str, process_count: int) -> list[int]:
    sizes = []
    for p, shard in enumerate(self._shards(spec, process_count)):
      try:
        sizes.append(self.builder.info.splits[shard].num_examples)
      except (KeyError, ValueError):  # split sizes unknown (mocked data)
        sizes.append(int(self.examples(spec, p, process_count).cardinality()))
    return sizes

  def examples(self, spec: str, process_index: int, process_count: int):
    from jaxgan.data.tf import tf
    shard = self._shards(spec, process_count)[process_index]
    ds = self.builder.as_dataset(split=shard, shuffle_files=False)
    return ds.map(lambda ex: {"image": ex["image"],
                              "label": tf.cast(ex.get("label", 0), tf.int64)},
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def fitted(self, spec: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The split in memory: read through tf.data where TensorFlow is
    installed, else by random access (`tfds.data_source`, which needs the
    dataset prepared in the array_record format: `jaxgan.data.prepare` does)."""
    self._check_split(spec)
    file_format = str(getattr(self.builder.info, "file_format", "") or "").lower()
    if "array_record" not in file_format and tensorflow_available():
      import tensorflow_datasets as tfds
      examples = tfds.as_numpy(self.examples(spec, 0, 1))
    else:
      examples = self._data_source(spec)
    images, labels = [], []
    for ex in examples:
      images.append(center_crop_resize(np.asarray(ex["image"])[None], size)[0])
      labels.append(int(ex.get("label", 0)))
    if not images:
      raise DataError(f"Split {spec!r} of {self.name} has no examples.")
    return np.stack(images), np.asarray(labels, np.int64)

  def reader(self, spec: str) -> "TFDSReader":
    self._check_split(spec)
    # An unreadable format: one line now, not in a worker.
    self._data_source(spec, "use --config.data_pipeline=tfdata (needs TensorFlow)")
    return TFDSReader(f"{self.name} {spec}", str(self.builder.data_dir), spec)

  def _data_source(self, spec: str, otherwise: str = "install TensorFlow (pip install "
                   "'jaxgan[tf]')"):
    """`tfds.data_source` of split `spec`, or one DataError saying how to
    prepare the dataset for random access, or `otherwise`."""
    try:
      return self.builder.as_data_source(split=spec)
    except (NotImplementedError, ValueError, FileNotFoundError) as e:
      raise DataError(
          f"TFDS dataset {self.name!r} cannot be read by random access ({e}): it is prepared "
          "in the tfrecord format. Prepare it in array_record (`python -m jaxgan.data.prepare "
          f"{self.name}` does) or {otherwise}.") from None


class TFDSReader:
  """A prepared array_record TFDS split by number (`tfds.data_source`),
  opened on first use in each process: what is pickled is the directory."""

  in_memory = False

  def __init__(self, where: str, data_path: str, spec: str):
    self.where, self.data_path, self.spec = where, data_path, spec
    self._source = None
    self._len = len(self._open())

  def _open(self):
    if self._source is None:
      import tensorflow_datasets as tfds
      self._source = tfds.builder_from_directory(self.data_path).as_data_source(split=self.spec)
    return self._source

  def __getstate__(self):
    return {**self.__dict__, "_source": None}

  def __len__(self) -> int:
    return self._len

  def read(self, i: int) -> tuple[np.ndarray, int]:
    ex = self._open()[i]
    return np.asarray(ex["image"], np.uint8), int(ex.get("label", 0))

  def name_of(self, i: int) -> str:
    return f"record {i} of {self.data_path}"


def load_tfds(name: str, data_dir: str | None, local_forms: str = "") -> TFDSSource:
  """The TFDS dataset `name`; `local_forms` (the other `dataset` forms, from
  jaxgan/data/sources.py) are offered in the errors."""
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(
        f"Unknown dataset {name!r}. Use a TFDS catalog name (mnist, fashion_mnist, cifar10, "
        f"celeb_a, ...) or {local_forms}.") from None
  looked_in = os.path.dirname(os.path.dirname(builder.data_path))
  if not builder.is_prepared():
    if not _network_available():
      raise DataError(
          f"TFDS dataset {name!r} is not prepared in {looked_in} and this machine cannot "
          "download it (no network). Either prepare it on a machine with network:\n"
          f"    python -m jaxgan.data.prepare {name} --data_dir {looked_in}\n"
          "and copy that directory here (or pass --config.data_dir=DIR), or use local data: "
          f"--config.dataset={local_forms}.")
    builder.download_and_prepare()
  if "image" not in builder.info.features:
    raise DataError(f"TFDS dataset {name!r} has no 'image' feature; jaxgan needs an image "
                    "dataset.")
  return TFDSSource(name, builder)


def tensorflow_available() -> bool:
  """Whether TensorFlow can be imported here (the tf.data pipeline needs it)."""
  try:
    import jaxgan.data.tf  # noqa: F401
  except ImportError:
    return False
  return True
