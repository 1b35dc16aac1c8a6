"""Input pipelines: one tf.data pipeline for every source, sharded by process,
deterministic given the seed, delivered as global `jax.Array`s on the mesh.

Train batches: `{"image": float32 [B, S, S, C] in [-1, 1], "label": int32 [B]}`.
Eval batches add `"mask"` (1.0 for real examples, 0.0 for padding) so that every
example of the split counts exactly once and all processes run the same number
of eval steps.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator

import jax
import numpy as np

from jaxgan import sharding
from jaxgan.data.sources import DataError, get_source
from jaxgan.data.tf import tf


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  image_shape: tuple[int, int, int]  # after resizing to image_size
  num_classes: int
  num_train_examples: int
  num_eval_examples: int


def _fit(image: tf.Tensor, size: int) -> tf.Tensor:
  """uint8 [H, W, C] -> float32 [size, size, C] in [0, 255]: centre-crop to a
  square, then resize (area-weighted when shrinking, bilinear when growing)."""
  shape = image.shape
  if shape[0] == size and shape[1] == size:
    return tf.cast(image, tf.float32)
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  side = tf.minimum(h, w)
  image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
  image = tf.image.resize(tf.cast(image, tf.float32), (size, size), antialias=True)
  return tf.clip_by_value(image, 0.0, 255.0)


def _augmenter(crop_padding: int, flip: bool, seed: int):
  """(image, index) -> image: a random crop of the image zero-padded by
  `crop_padding` pixels (a shift of up to that many pixels) and/or a random
  horizontal flip, drawn statelessly from (seed, index)."""
  if crop_padding < 0:
    raise ValueError(f"config.augment_crop_padding must be >= 0, got {crop_padding}.")
  if not crop_padding and not flip:
    return lambda image, index: image

  def augment(image, index):
    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.constant(seed % 2**31, tf.int64), index]), 2)
    if crop_padding:
      p = crop_padding
      padded = tf.pad(image, [[p, p], [p, p], [0, 0]])
      image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    if flip:
      image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    return image

  return augment


def _to_model_range(batch):
  return {"image": batch["image"] * (2.0 / 255.0) - 1.0,
          **{k: tf.cast(v, tf.int32) if k == "label" else v
             for k, v in batch.items() if k != "image"}}


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  return options


class Data:
  """A resolved dataset: its source plus the config fields that shape batches."""

  def __init__(self, config):
    self.config = config
    self.source = get_source(config.dataset, config.get("data_dir"))
    self.image_size = int(config.image_size)
    channels = self.source.channels
    train_n = sum(self.source.shard_sizes(config.train_split, 1))
    eval_n = sum(self.source.shard_sizes(config.eval_split, 1)) if config.eval_split else 0
    if train_n == 0:
      raise DataError(f"train_split {config.train_split!r} of {config.dataset!r} is empty.")
    self.info = DatasetInfo(self.source.name, (self.image_size, self.image_size, channels),
                            self.source.num_classes, train_n, eval_n)

  def train_dataset(self, local_batch: int, start_batch: int = 0,
                    process_index: int | None = None,
                    process_count: int | None = None) -> tf.data.Dataset:
    """This process's infinite, shuffled stream of batches, from batch number
    `start_batch` on (a resumed run's step times the batches a step consumes)."""
    p = jax.process_index() if process_index is None else process_index
    n_proc = jax.process_count() if process_count is None else process_count
    cfg = self.config
    shard_size = self.source.shard_sizes(cfg.train_split, n_proc)[p]
    if shard_size < local_batch:
      raise DataError(f"train_split {cfg.train_split!r} gives process {p} only {shard_size} "
                      f"examples, fewer than its batch of {local_batch}; use a larger split "
                      "or a smaller --config.batch_size.")
    ds = self.source.examples(cfg.train_split, p, n_proc)
    if cfg.get("cache_data", True):
      ds = ds.cache()
    buffer = max(1, min(shard_size, cfg.get("shuffle_buffer", 10_000)))
    seed = int(np.random.SeedSequence([cfg.seed, p]).generate_state(1)[0])
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    # Resuming: the stream is a pure function of the seed, so skipping the
    # examples already consumed puts it exactly where the interrupted run was.
    # Augmentation draws from (seed, position in the stream), so it resumes too.
    ds = ds.enumerate().skip(start_batch * local_batch)
    size = self.image_size
    augment = _augmenter(cfg.get("augment_crop_padding", 0), cfg.get("augment_flip", False),
                         seed)
    ds = ds.map(lambda i, ex: {"image": augment(_fit(ex["image"], size), i),
                               "label": ex["label"]},
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(local_batch, drop_remainder=True).map(_to_model_range)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())

  def first_images(self, split: str, n: int | None = None, batch: int = 1000,
                   with_labels: bool = False):
    """The first `n` (default: all) images of `split` in the split's order,
    fitted to image_size, in [-1, 1], the same on every process: fixed
    examples for figures, or a reference set for evaluation. With
    `with_labels`, (images, int labels)."""
    size = self.image_size
    ds = self.source.examples(split, 0, 1)
    if n is not None:
      ds = ds.take(n)
    ds = ds.map(lambda ex: (_fit(ex["image"], size), ex["label"]),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch).map(lambda x, y: (x * (2.0 / 255.0) - 1.0, y))
    batches = list(ds.with_options(_options()).as_numpy_iterator())
    if not batches:
      raise DataError(f"Split {split!r} of {self.source.name} has no examples.")
    images = np.concatenate([b[0] for b in batches]).astype(np.float32)
    if with_labels:
      return images, np.concatenate([b[1] for b in batches]).astype(np.int64)
    return images

  def eval_dataset(self, local_batch: int, process_index: int | None = None,
                   process_count: int | None = None) -> tuple[tf.data.Dataset, int]:
    """(This process's padded eval batches, the number of batches), one pass."""
    p = jax.process_index() if process_index is None else process_index
    n_proc = jax.process_count() if process_count is None else process_count
    cfg = self.config
    sizes = self.source.shard_sizes(cfg.eval_split, n_proc)
    num_batches = -(-max(sizes) // local_batch)
    size, channels = self.image_size, self.info.image_shape[-1]
    ds = self.source.examples(cfg.eval_split, p, n_proc).map(
        lambda ex: {"image": _fit(ex["image"], size), "label": ex["label"],
                    "mask": tf.constant(1.0)}, num_parallel_calls=tf.data.AUTOTUNE)
    padding = tf.data.Dataset.from_tensors(
        {"image": tf.zeros((size, size, channels)), "label": tf.constant(0, tf.int64),
         "mask": tf.constant(0.0)}).repeat()
    ds = ds.concatenate(padding).take(num_batches * local_batch)
    ds = ds.batch(local_batch).map(_to_model_range).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()), num_batches


def device_batches(ds: tf.data.Dataset, mesh, prefetch: int = 2) -> Iterator:
  """Global sharded batches from a per-process tf.data pipeline.

  A background thread converts and transfers the next `prefetch` batches
  while the current step runs, so the accelerator does not wait on the host.
  Close the generator (`.close()`) when done with an infinite stream.
  """
  it = ds.as_numpy_iterator()
  if prefetch <= 0:
    for batch in it:
      yield sharding.to_global_batch(batch, mesh)
    return
  q: queue.Queue = queue.Queue(maxsize=prefetch)
  stop = threading.Event()
  done = object()

  def producer():
    try:
      for batch in it:
        item = sharding.to_global_batch(batch, mesh)
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            pass
        if stop.is_set():
          return
      q.put(done)
    except BaseException as e:  # Surface pipeline errors in the consumer.
      q.put(e)

  thread = threading.Thread(target=producer, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    # Closing the generator stops the producer. Join it: a thread still inside
    # TensorFlow when the interpreter exits aborts the whole process.
    stop.set()
    thread.join(timeout=60)
