"""Input pipelines, deterministic given the seed, delivering global `jax.Array`s
on the mesh. `config.data_pipeline` picks one by name (`PIPELINES`):

- `"indexed"` (no TensorFlow): the split held in memory as uint8,
  batches chosen by a seeded per-epoch permutation from the step number,
  gathered on the devices (`data_on_device`) or the host, scaled and
  augmented inside the jitted step (jaxgan/data/indexed.py).
- `"streamed"` (no TensorFlow): bitwise the same batches, each process
  reading only its rows of each batch on demand, decoded in `data_workers`
  worker processes through grain: memory does not grow with the split
  (jaxgan/data/streamed.py).
- `"auto"` (the default): indexed when the fitted train and eval splits take
  at most `HOST_FRACTION` of this machine's memory, else streamed; the run's
  log says which (`Data.describe`). The two give the same batches, so a run
  may resume under either.
- `"tfdata"`: each process's shard streamed through tf.data with a shuffle
  buffer (jaxgan/data/tfdata.py): the pipeline of runs made before the
  indexed one (their config.json lacks the field and resumes with it).

Train batches: `{"image": float32 [B, S, S, C] in [-1, 1], "label": int32 [B]}`.
Eval batches add `"mask"` (1.0 for real examples, 0.0 for padding) so that every
example of the split counts exactly once and all processes run the same number
of eval steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator

import jax
import numpy as np

from jaxgan import provenance, sharding
from jaxgan.data import indexed, streamed
from jaxgan.data.prefetch import prefetched
from jaxgan.data.base import DataError
from jaxgan.data.sources import get_source
from jaxgan.data.tfds import tensorflow_available

PIPELINES = ("auto", "indexed", "streamed", "tfdata")
# What a run records of its data, beside config.json (`Data.save_info`).
INFO_FILE = "data.json"
# What a task's build took from the data (`Data.remember`: a VAE's fixed
# figure inputs, a self-conditioned GAN's clusters), saved beside data.json
# so that a restore builds the task without the data.
REMEMBERED_FILE = "data_remembered.npz"
# "auto" holds a split in memory when the fitted train and eval splits take at
# most this fraction of physical memory (fitting peaks at about twice that).
HOST_FRACTION = 0.25


def physical_memory_bytes() -> int:
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


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
  """A resolved dataset: its source plus the config fields that shape batches.

  With `info` (what a run recorded in its data.json, `save_info`), the source
  is opened only when examples are read: a trained run is restored, sampled
  and scored against a reference file without its data present.
  """

  def __init__(self, config, info: DatasetInfo | None = None,
               remembered: dict | None = None):
    self.config = config
    self._saved = dict(remembered or {})  # from the run directory (a restore)
    self._remembered: dict = {}
    self.pipeline = provenance.added_field(config, "data_pipeline")
    if self.pipeline not in PIPELINES:
      raise ValueError(f"Unknown config.data_pipeline {self.pipeline!r}; use one of "
                       f"{', '.join(PIPELINES)}.")
    if self.pipeline == "tfdata" and info is None and not tensorflow_available():
      raise DataError("data_pipeline='tfdata' (also the pipeline of runs made before the "
                      "indexed one) needs TensorFlow, which is not installed: pip install -e "
                      "'.[tf]', or for a new run use --config.data_pipeline=indexed.")
    self._source = None
    self.image_size = int(config.image_size)
    if info is None:
      info = self._read_info()
    self.info = info
    self._splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    self.workers = streamed.worker_count(config.get("data_workers", "auto"))
    self.requested = self.pipeline
    if self.pipeline == "auto":
      self.pipeline = "indexed" if self.fitted_bytes() <= self.host_budget() else "streamed"
    if self.pipeline == "streamed" and indexed.on_device_setting(
        config.get("data_on_device", "auto")) is True:
      raise ValueError("data_on_device=True needs the split in memory: "
                       "--config.data_pipeline=indexed (or auto), not streamed.")

  @property
  def source(self):
    """The `DataSource` (opened, and its files checked, on first use)."""
    if self._source is None:
      self._source = get_source(self.config.dataset, self.config.get("data_dir"))
    return self._source

  def _read_info(self) -> DatasetInfo:
    config, source = self.config, self.source
    train_n = sum(source.shard_sizes(config.train_split, 1))
    eval_n = sum(source.shard_sizes(config.eval_split, 1)) if config.eval_split else 0
    if train_n == 0:
      raise DataError(f"train_split {config.train_split!r} of {config.dataset!r} is empty.")
    names = source.class_names
    return DatasetInfo(source.name, (self.image_size, self.image_size, source.channels),
                       source.num_classes, train_n, eval_n, tuple(names) if names else None)

  def remember(self, name: str, compute):
    """`compute()` (an array, or a dict of arrays), or what a restored run
    saved under `name`; kept for `save_info` to write. For what a task's
    build takes from the data, so that restoring the task needs none."""
    value = self._saved[name] if name in self._saved else compute()
    self._remembered[name] = value
    return value

  def save_info(self, workdir: str) -> None:
    """Writes `workdir/data.json` (what a restore needs of the data) and
    `data_remembered.npz` (what the task's build took from it: `remember`)."""
    path = os.path.join(workdir, INFO_FILE)
    with open(path + ".tmp", "w") as f:
      json.dump(dataclasses.asdict(self.info), f, indent=1)
    os.replace(path + ".tmp", path)
    if self._remembered:
      flat = {}
      for name, value in self._remembered.items():
        if isinstance(value, dict):
          flat.update({f"{name}/{k}": np.asarray(v) for k, v in value.items()})
        else:
          flat[name] = np.asarray(value)
      path = os.path.join(workdir, REMEMBERED_FILE)
      with open(path + ".tmp", "wb") as f:
        np.savez(f, **flat)
      os.replace(path + ".tmp", path)

  def fitted_bytes(self) -> int:
    """What the train and eval splits take in memory at image_size (uint8)."""
    return (self.info.num_train_examples + self.info.num_eval_examples) * int(
        np.prod(self.info.image_shape))

  @staticmethod
  def host_budget() -> int:
    return int(physical_memory_bytes() * HOST_FRACTION)

  def describe(self) -> str:
    """One line for the run's log: which pipeline reads the data, and why."""
    size = f"{self.fitted_bytes() / 2**20:,.0f} MiB fitted"
    why = (f"{size}, {'within' if self.pipeline == 'indexed' else 'over'} the "
           f"{self.host_budget() / 2**30:.1f} GiB host budget" if self.requested == "auto"
           else f"{size}, as config.data_pipeline says")
    if self.pipeline == "indexed":
      train_bytes = self.info.num_train_examples * int(np.prod(self.info.image_shape))
      on_device = indexed.fits_on_device(train_bytes, self.config.get("data_on_device", "auto"))
      what = ("indexed pipeline, the train split "
              + ("on the devices" if on_device else "in host memory"))
    elif self.pipeline == "streamed":
      what = (f"streamed pipeline, {self.workers} worker process"
              f"{'es' if self.workers != 1 else ''} (data_workers)")
    else:
      what = "tf.data pipeline"
    return (f"Input: {what}; {self.info.num_train_examples:,} train + "
            f"{self.info.num_eval_examples:,} eval examples of {self.info.name} at "
            f"{'x'.join(map(str, self.info.image_shape))} ({why}).")

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
    if self.pipeline == "streamed":
      return streamed.StreamedFeed(self.source.reader(self.config.train_split), self.config,
                                   mesh, start_batch, self.image_size, self.workers)
    images, labels = self.split(self.config.train_split)
    on_device = indexed.fits_on_device(images.nbytes, setting)
    return indexed.IndexedFeed(images, labels, self.config, mesh, start_batch, on_device)

  def eval_batches(self, local_batch: int, mesh) -> tuple[Iterator, int]:
    """(Global padded eval batches, their number): one pass over eval_split."""
    if self.pipeline == "tfdata":
      ds, num_batches = self.eval_dataset(local_batch)
      return device_batches(ds, mesh), num_batches
    if self.pipeline == "streamed":
      batches, num_batches = streamed.eval_batches(
          self.source.reader(self.config.eval_split), local_batch, jax.process_index(),
          jax.process_count(), self.image_size, self.workers)
      return device_batches(batches, mesh), num_batches
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
    if self.pipeline == "streamed":
      images, labels = streamed.first_images(self.source.reader(split), n, self.image_size)
    else:
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


def load_info(run_dir: str) -> DatasetInfo | None:
  """The DatasetInfo a run recorded (None for runs made before data.json)."""
  path = os.path.join(run_dir, INFO_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    fields = json.load(f)
  try:
    fields["image_shape"] = tuple(fields["image_shape"])
    if fields.get("class_names") is not None:
      fields["class_names"] = tuple(fields["class_names"])
    return DatasetInfo(**fields)
  except (KeyError, TypeError) as e:
    raise DataError(f"{path} is damaged ({e}); delete it to read the run's data "
                    "instead.") from None


def load_remembered(run_dir: str) -> dict:
  """What a run's task build took from its data (`Data.remember`), or {}
  for runs made before data_remembered.npz (their restore reads the data)."""
  path = os.path.join(run_dir, REMEMBERED_FILE)
  if not os.path.exists(path):
    return {}
  out: dict = {}
  try:
    with np.load(path) as f:
      for key in f.files:
        name, _, part = key.partition("/")
        if part:
          out.setdefault(name, {})[part] = f[key]
        else:
          out[name] = f[key]
  except (OSError, ValueError, EOFError) as e:
    raise DataError(f"{path} is damaged ({e}); delete it to read the run's data "
                    "instead.") from None
  return out


def device_batches(ds, mesh, prefetch: int = 2) -> Iterator:
  """Global sharded batches from a per-process tf.data pipeline (or any
  iterable of NumPy batches), assembled and transferred `prefetch` batches
  ahead in a background thread. Close the generator when done."""
  batches = ds.as_numpy_iterator() if hasattr(ds, "as_numpy_iterator") else ds
  return prefetched(batches, lambda b: sharding.to_global_batch(b, mesh), prefetch)
