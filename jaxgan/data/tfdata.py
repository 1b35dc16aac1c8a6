"""The tf.data pipeline (`data_pipeline = "tfdata"`): one process's shard
streamed through a shuffle buffer, fitted and augmented on the host. Runs made
before the indexed pipeline existed used it; it streams splits too large to
hold in memory. Needs TensorFlow (imported with GPUs hidden)."""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxgan.data.base import DataError
from jaxgan.data.indexed import check_augmentation
from jaxgan.data.tf import tf


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


def _augmenter(crop_padding: int, flip: bool, seed: int, cutout: int = 0):
  """(image, index) -> image: a random crop of the image zero-padded by
  `crop_padding` pixels (a shift of up to that many pixels), a random
  horizontal flip and a mid-grey `cutout` square (as the indexed pipeline's
  `augment`), as asked, drawn statelessly from (seed, index)."""
  check_augmentation(crop_padding, cutout)
  if not crop_padding and not flip and not cutout:
    return lambda image, index: image

  def augment(image, index):
    pair = tf.stack([tf.constant(seed % 2**31, tf.int64), index])
    seeds = tf.random.experimental.stateless_split(pair, 2)
    if crop_padding:
      p = crop_padding
      padded = tf.pad(image, [[p, p], [p, p], [0, 0]])
      image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    if flip:
      image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    if cutout:  # its own seed: the shifts and flips of runs without cutout stay as they were
      h, w = tf.shape(image)[0], tf.shape(image)[1]
      centre = tf.random.stateless_uniform(
          [2], tf.random.experimental.stateless_fold_in(pair, 3), maxval=tf.int32.max,
          dtype=tf.int32) % tf.stack([h, w])
      top, left = centre[0] - cutout // 2, centre[1] - cutout // 2
      ys, xs = tf.range(h)[:, None], tf.range(w)[None, :]
      hole = (ys >= top) & (ys < top + cutout) & (xs >= left) & (xs < left + cutout)
      image = tf.where(hole[:, :, None], tf.constant(127.5, image.dtype), image)
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


def cache_budget_bytes() -> int:
  """What `cache_data` may hold: half of this machine's physical memory."""
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def check_cache_fits(shard_size: int, image_shape, name: str, split: str,
                     budget: int | None = None) -> None:
  """Refuses `cache_data` for a shard whose decoded full-resolution examples
  (tf.data caches them before fitting) would exceed `budget` bytes (default:
  `cache_budget_bytes()`), before any example is read. Shapes that vary
  (image_shape None) cannot be sized in advance and are not refused."""
  if image_shape is None:
    return
  budget = cache_budget_bytes() if budget is None else budget
  need = int(shard_size) * int(np.prod(image_shape))
  if need > budget:
    raise DataError(
        f"cache_data=True would keep {shard_size} decoded {'x'.join(map(str, image_shape))} "
        f"examples of {name} {split} in memory ({need / 2**30:.1f} GiB per process, more than "
        f"the {budget / 2**30:.1f} GiB budget, half this machine's memory); use "
        "--config.cache_data=False (decode every epoch) or --config.data_pipeline=indexed "
        "(the split fitted to image_size).")


def train_dataset(data, local_batch: int, start_batch: int = 0,
                  process_index: int | None = None,
                  process_count: int | None = None) -> tf.data.Dataset:
  """This process's infinite, shuffled stream of batches, from batch number
  `start_batch` on (a resumed run's step times the batches a step consumes)."""
  p = jax.process_index() if process_index is None else process_index
  n_proc = jax.process_count() if process_count is None else process_count
  cfg = data.config
  shard_size = data.source.shard_sizes(cfg.train_split, n_proc)[p]
  if shard_size < local_batch:
    raise DataError(f"train_split {cfg.train_split!r} gives process {p} only {shard_size} "
                    f"examples, fewer than its batch of {local_batch}; use a larger split "
                    "or a smaller --config.batch_size.")
  ds = data.source.examples(cfg.train_split, p, n_proc)
  if cfg.cache_data:
    check_cache_fits(shard_size, data.source.image_shape, data.source.name, cfg.train_split)
    ds = ds.cache()
  buffer = max(1, min(shard_size, cfg.shuffle_buffer))
  seed = int(np.random.SeedSequence([cfg.seed, p]).generate_state(1)[0])
  ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
  # Resuming: the stream is a pure function of the seed, so skipping the
  # examples already consumed puts it exactly where the interrupted run was.
  # Augmentation draws from (seed, position in the stream), so it resumes too.
  ds = ds.enumerate().skip(start_batch * local_batch)
  size = data.image_size
  augment = _augmenter(cfg.get("augment_crop_padding", 0), cfg.get("augment_flip", False),
                       seed, cfg.get("augment_cutout", 0))
  ds = ds.map(lambda i, ex: {"image": augment(_fit(ex["image"], size), i),
                             "label": ex["label"]},
              num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local_batch, drop_remainder=True).map(_to_model_range)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def first_images(data, split: str, n: int | None = None, batch: int = 1000,
                 with_labels: bool = False):
  """The first `n` (default: all) images of `split` in the split's order,
  fitted to image_size, in [-1, 1], the same on every process: fixed
  examples for figures, or a reference set for evaluation. With
  `with_labels`, (images, int labels)."""
  size = data.image_size
  ds = data.source.examples(split, 0, 1)
  if n is not None:
    ds = ds.take(n)
  ds = ds.map(lambda ex: (_fit(ex["image"], size), ex["label"]),
              num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch).map(lambda x, y: (x * (2.0 / 255.0) - 1.0, y))
  batches = list(ds.with_options(_options()).as_numpy_iterator())
  if not batches:
    raise DataError(f"Split {split!r} of {data.source.name} has no examples.")
  images = np.concatenate([b[0] for b in batches]).astype(np.float32)
  if with_labels:
    return images, np.concatenate([b[1] for b in batches]).astype(np.int64)
  return images


def eval_dataset(data, local_batch: int, process_index: int | None = None,
                 process_count: int | None = None) -> tuple[tf.data.Dataset, int]:
  """(This process's padded eval batches, the number of batches), one pass."""
  p = jax.process_index() if process_index is None else process_index
  n_proc = jax.process_count() if process_count is None else process_count
  cfg = data.config
  sizes = data.source.shard_sizes(cfg.eval_split, n_proc)
  num_batches = -(-max(sizes) // local_batch)
  size, channels = data.image_size, data.info.image_shape[-1]
  ds = data.source.examples(cfg.eval_split, p, n_proc).map(
      lambda ex: {"image": _fit(ex["image"], size), "label": ex["label"],
                  "mask": tf.constant(1.0)}, num_parallel_calls=tf.data.AUTOTUNE)
  padding = tf.data.Dataset.from_tensors(
      {"image": tf.zeros((size, size, channels)), "label": tf.constant(0, tf.int64),
       "mask": tf.constant(0.0)}).repeat()
  ds = ds.concatenate(padding).take(num_batches * local_batch)
  ds = ds.batch(local_batch).map(_to_model_range).prefetch(tf.data.AUTOTUNE)
  return ds.with_options(_options()), num_batches
