"""The streamed input pipeline (`data_pipeline = "streamed"`): splits larger
than memory, read example by example through grain.

The same batches as the indexed pipeline, bitwise (tested): batch number b
holds the examples `Order(seed, N, B).indices(b)` (jaxgan/data/indexed.py),
each fitted to `image_size` by the same `center_crop_resize`, and the step
scales and augments them the same way (`IndexedFeed.to_batch`). What differs
is where the pixels come from: nothing is read ahead of need. Each process
reads only its own rows of each global batch, from the source's random-access
`reader(split)` (file paths, array_record records), decoding and fitting in
`data_workers` worker processes (grain's `mp_prefetch`, batches in order),
while a thread assembles and transfers the next global batches. A resume
needs no iterator state: the stream restarts at the step's batch number.
Memory is a few batches per worker, whatever the split's size.

Sources already in memory (idx:, npz:, arrays:, cifar10:, digits) are read in
threads of this process instead: a worker process would get a copy.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import grain
from absl import flags
import numpy as np

from jaxgan.data import indexed
from jaxgan.data.base import DataError, ExampleReader
from jaxgan.data.prefetch import prefetched
from jaxgan.data.resize import center_crop_resize

# Batches each worker (or the reading threads) prepares ahead.
BUFFER = 2
# Eval passes of fewer batches are read in threads, without worker processes.
EVAL_WORKERS_FROM = 50
# Batch numbers of a training stream: unbounded in practice.
_ENDLESS = 2**62


def worker_count(setting) -> int:
  """`data_workers`: "auto" (half the CPUs, 1 to 8) or an integer >= 0 (0:
  decode in threads of the training process)."""
  if isinstance(setting, str) and setting.lower() == "auto":
    return max(1, min(8, (os.cpu_count() or 2) // 2))
  try:
    value = int(setting)
  except (TypeError, ValueError):
    value = -1
  if value < 0 or isinstance(setting, bool):
    raise ValueError(f"config.data_workers must be 'auto' or an integer >= 0, got {setting!r}.")
  return value


def read_fitted(reader: ExampleReader, index, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Examples `index` of `reader`, fitted: (uint8 [n, size, size, C], int64 [n]).
  Images of one shape are resized together (the same pixels as one by one:
  the resize is batch-invariant). A file or record that cannot be decoded is
  a `DataError` naming the example's number, what it is and the source."""
  images, labels = [], []
  for i in map(int, index):
    try:
      image, label = reader.read(i)
    except DataError:
      raise
    except Exception as e:  # Whatever the decoder raises: name the example.
      raise DataError(f"{reader.where}: example {i} ({reader.name_of(i)}) cannot be read "
                      f"({type(e).__name__}: {e}). Replace or remove it.") from None
    images.append(image)
    labels.append(label)
  if not images:
    return np.zeros((0, size, size, 1), np.uint8), np.zeros(0, np.int64)
  channels = images[0].shape[-1]
  out = np.empty((len(images), size, size, channels), np.uint8)
  by_shape: dict[tuple, list[int]] = {}
  for row, image in enumerate(images):
    by_shape.setdefault(image.shape, []).append(row)
  for rows in by_shape.values():
    out[rows] = center_crop_resize(np.stack([images[r] for r in rows]), size)
  return out, np.asarray(labels, np.int64)


class _TrainBatch:
  """Batch number -> this process's rows of it, as the indexed host path
  gives them (picklable: sent to the worker processes)."""

  def __init__(self, reader: ExampleReader, order: indexed.Order, rows: slice, size: int):
    self.reader, self.order, self.rows, self.size = reader, order, rows, size

  def __call__(self, number: int) -> dict:
    index = self.order.indices(number)[self.rows]
    image, label = read_fitted(self.reader, index, self.size)
    return {"image": image, "label": label.astype(np.int32),
            "number": np.full(len(index), number, np.int32)}


class _EvalBatch:
  """Eval batch number -> this process's padded batch (examples p, p + P, ...,
  as `indexed.eval_batches`)."""

  def __init__(self, reader: ExampleReader, local_batch: int, process_index: int,
               process_count: int, size: int):
    self.reader, self.local_batch, self.size = reader, local_batch, size
    self.process_index, self.process_count = process_index, process_count

  def __call__(self, number: int) -> dict:
    start = self.process_index + number * self.local_batch * self.process_count
    rows = np.arange(start, min(len(self.reader), start + self.local_batch * self.process_count),
                     self.process_count)
    image, label = read_fitted(self.reader, rows, self.size)
    pad = self.local_batch - len(rows)
    channels = image.shape[-1] if len(rows) else _channels(self.reader)
    image = np.concatenate([image.reshape(-1, self.size, self.size, channels),
                            np.zeros((pad, self.size, self.size, channels), np.uint8)])
    return {"image": indexed.to_model_range(image),
            "label": np.concatenate([label, np.zeros(pad, np.int64)]).astype(np.int32),
            "mask": np.concatenate([np.ones(len(rows), np.float32), np.zeros(pad, np.float32)])}


def _channels(reader: ExampleReader) -> int:
  return reader.read(0)[0].shape[-1]


def _init_worker(worker_index: int, worker_count: int) -> None:
  """Runs in each worker before it unpickles the pipeline: the workers fit
  images on the CPU, never on (or claiming memory of) an accelerator, and
  exit when the training process is gone, also after SIGKILL (which no
  cleanup in that process can follow)."""
  del worker_index, worker_count
  os.environ["JAX_PLATFORMS"] = "cpu"
  parent = os.getppid()

  def exit_with_parent():
    while os.getppid() == parent:
      time.sleep(0.5)
    os._exit(0)

  threading.Thread(target=exit_with_parent, daemon=True).start()


class _Stream:
  """`fn(number)` for number in `numbers`, in order, prepared `BUFFER` ahead
  per worker process (or in `threads` threads where there are none)."""

  def __init__(self, fn, numbers: range, workers: int, threads: int = 2):
    ds = grain.MapDataset.range(numbers.start, numbers.stop).map(fn)
    if workers:
      if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (defaults here)
        flags.FLAGS.mark_as_parsed()
      ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
      ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                       per_worker_buffer_size=BUFFER),
                          worker_init_fn=_init_worker)
    else:
      ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                prefetch_buffer_size=BUFFER))
    self._it = iter(ds)

  def __iter__(self):
    return self

  def __next__(self):
    # Out of grain's shared memory at once: it is unlinked now, not when (or
    # whether) the arrays made from the batch are freed.
    return {k: np.array(v) for k, v in next(self._it).items()}

  def close(self) -> None:
    close = getattr(self._it, "close", None)
    if close is not None:
      close()


def _workers_for(reader: ExampleReader, workers: int) -> int:
  return 0 if reader.in_memory else workers


class StreamedFeed(indexed.IndexedFeed):
  """The loop's training input read on demand: `inputs()` yields, per batch,
  the host path's global arrays `{"image" (uint8), "label", "number"}`, and
  `to_batch` is the indexed pipeline's (see `IndexedFeed`)."""

  def __init__(self, reader: ExampleReader, config, mesh, start_batch: int, image_size: int,
               workers: int):
    self._configure(config, mesh, len(reader))
    self.on_device, self.resident = False, None
    self._stream = _Stream(_TrainBatch(reader, self.order, self._rows, image_size),
                           range(start_batch, _ENDLESS), _workers_for(reader, workers))
    self._inputs = prefetched(self._stream, self._to_global)

  def close(self) -> None:
    self._inputs.close()
    self._stream.close()


def eval_batches(reader: ExampleReader, local_batch: int, process_index: int,
                 process_count: int, image_size: int, workers: int
                 ) -> tuple[Iterator[dict], int]:
  """(This process's padded eval batches as NumPy, the number of batches):
  the same batches as `indexed.eval_batches` on the fitted split."""
  n = len(reader)
  num_batches = -(-len(range(0, n, process_count)) // local_batch)
  fn = _EvalBatch(reader, local_batch, process_index, process_count, image_size)

  # Worker processes take seconds to start: worth it for long passes only.
  workers = _workers_for(reader, workers) if num_batches >= EVAL_WORKERS_FROM else 0

  def batches():
    stream = _Stream(fn, range(num_batches), workers)
    try:
      yield from stream
    finally:
      stream.close()

  return batches(), num_batches


def first_images(reader: ExampleReader, n: int | None, image_size: int,
                 batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
  """The first `n` (default: all) examples, fitted: (uint8 [n, S, S, C], int64)."""
  n = len(reader) if n is None else min(n, len(reader))
  parts = [read_fitted(reader, range(a, min(a + batch, n)), image_size)
           for a in range(0, n, batch)]
  if not parts:
    raise DataError(f"{reader.where} has no examples.")
  return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

