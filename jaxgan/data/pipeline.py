"""Input pipelines, deterministic given the seed, delivering global `jax.Array`s
on the mesh. `config.data_pipeline` picks one:

- `"indexed"` (default; no TensorFlow): the split held in memory as uint8,
  batches chosen by a seeded per-epoch permutation from the step number,
  gathered on the devices (`data_on_device`) or the host, scaled and
  augmented inside the jitted step (jaxgan/data/indexed.py).
- `"tfdata"`: each process's shard streamed through tf.data with a shuffle
  buffer (jaxgan/data/tfdata.py): for splits too large for memory, and the
  pipeline of runs made before the indexed one (their config.json lacks the
  field and resumes with it).

Train batches: `{"image": float32 [B, S, S, C] in [-1, 1], "label": int32 [B]}`.
Eval batches add `"mask"` (1.0 for real examples, 0.0 for padding) so that every
example of the split counts exactly once and all processes run the same number
of eval steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import numpy as np

from jaxgan import provenance, sharding
from jaxgan.data import indexed
from jaxgan.data.prefetch import prefetched
from jaxgan.data.base import DataError
from jaxgan.data.sources import get_source
from jaxgan.data.tfds import tensorflow_available

PIPELINES = ("indexed", "tfdata")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  image_shape: tuple[int, int, int]  # after resizing to image_size
  num_classes: int
  num_train_examples: int
  num_eval_examples: int
  class_names: tuple[str, ...] | None = None  # label order, where the data names them


class StreamFeed:
  """The loop's training input from a tf.data stream: batches arrive ready."""

  resident = None

  def __init__(self, batches: Iterator):
    self._batches = batches

  def inputs(self) -> Iterator:
    return self._batches

  def to_batch(self, inputs, resident):
    del resident
    return inputs

  def close(self) -> None:
    self._batches.close()


class Data:
  """A resolved dataset: its source plus the config fields that shape batches."""

  def __init__(self, config):
    self.config = config
    self.pipeline = provenance.added_field(config, "data_pipeline")
    if self.pipeline not in PIPELINES:
      raise ValueError(f"Unknown config.data_pipeline {self.pipeline!r}; use one of "
                       f"{', '.join(PIPELINES)}.")
    if self.pipeline == "tfdata" and not tensorflow_available():
      raise DataError("data_pipeline='tfdata' (also the pipeline of runs made before the "
                      "indexed one) needs TensorFlow, which is not installed: pip install -e "
                      "'.[tf]', or for a new run use --config.data_pipeline=indexed.")
    self.source = get_source(config.dataset, config.get("data_dir"))
    self.image_size = int(config.image_size)
    channels = self.source.channels
    train_n = sum(self.source.shard_sizes(config.train_split, 1))
    eval_n = sum(self.source.shard_sizes(config.eval_split, 1)) if config.eval_split else 0
    if train_n == 0:
      raise DataError(f"train_split {config.train_split!r} of {config.dataset!r} is empty.")
    names = self.source.class_names
    self.info = DatasetInfo(self.source.name, (self.image_size, self.image_size, channels),
                            self.source.num_classes, train_n, eval_n,
                            tuple(names) if names else None)
    self._splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}

  def split(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole split at image_size: (uint8 [N, S, S, C], int64 labels [N]),
    read once and kept (the indexed pipeline)."""
    if spec not in self._splits:
      self._splits[spec] = self.source.fitted(spec, self.image_size)
    return self._splits[spec]

  def train_feed(self, mesh, start_batch: int = 0):
    """The loop's training input from batch number `start_batch` on (a
    resumed run's step times the batches a step consumes): an object with
    `inputs()` (an iterator of global arrays per batch), `to_batch(inputs,
    resident)` (traced inside the step), `resident` and `close()`."""
    setting = indexed.on_device_setting(self.config.get("data_on_device", "auto"))
    if self.pipeline == "tfdata":
      if setting is True:
        raise ValueError("data_on_device=True needs data_pipeline='indexed' (tf.data streams "
                         "batches from the host).")
      local_batch = sharding.local_batch_size(self.config.batch_size, mesh)
      return StreamFeed(device_batches(self.train_dataset(local_batch, start_batch), mesh))
    images, labels = self.split(self.config.train_split)
    on_device = indexed.fits_on_device(images, setting)
    return indexed.IndexedFeed(images, labels, self.config, mesh, start_batch, on_device)

  def eval_batches(self, local_batch: int, mesh) -> tuple[Iterator, int]:
    """(Global padded eval batches, their number): one pass over eval_split."""
    if self.pipeline == "tfdata":
      ds, num_batches = self.eval_dataset(local_batch)
      return device_batches(ds, mesh), num_batches
    images, labels = self.split(self.config.eval_split)
    batches, num_batches = indexed.eval_batches(images, labels, local_batch,
                                                jax.process_index(), jax.process_count())
    return prefetched(batches, lambda b: sharding.to_global_batch(b, mesh)), num_batches

  def first_images(self, split: str, n: int | None = None, batch: int = 1000,
                   with_labels: bool = False):
    """The first `n` (default: all) images of `split` in the split's order,
    fitted to image_size, in [-1, 1], the same on every process: fixed
    examples for figures, or a reference set for evaluation. With
    `with_labels`, (images, int labels)."""
    if self.pipeline == "tfdata":
      from jaxgan.data import tfdata
      return tfdata.first_images(self, split, n, batch, with_labels)
    images, labels = self.split(split)
    images, labels = images[:n], labels[:n]
    if not len(images):
      raise DataError(f"Split {split!r} of {self.source.name} has no examples.")
    images = indexed.to_model_range(images)
    return (images, labels.astype(np.int64)) if with_labels else images

  # The tf.data pipeline's streams (also for tests and benchmarks).

  def train_dataset(self, local_batch: int, start_batch: int = 0,
                    process_index: int | None = None, process_count: int | None = None):
    """This process's infinite, shuffled tf.data stream of batches, from
    batch number `start_batch` on."""
    from jaxgan.data import tfdata
    return tfdata.train_dataset(self, local_batch, start_batch, process_index, process_count)

  def eval_dataset(self, local_batch: int, process_index: int | None = None,
                   process_count: int | None = None):
    """(This process's padded tf.data eval batches, the number of batches)."""
    from jaxgan.data import tfdata
    return tfdata.eval_dataset(self, local_batch, process_index, process_count)


def device_batches(ds, mesh, prefetch: int = 2) -> Iterator:
  """Global sharded batches from a per-process tf.data pipeline (or any
  iterable of NumPy batches), assembled and transferred `prefetch` batches
  ahead in a background thread. Close the generator when done."""
  batches = ds.as_numpy_iterator() if hasattr(ds, "as_numpy_iterator") else ds
  return prefetched(batches, lambda b: sharding.to_global_batch(b, mesh), prefetch)
