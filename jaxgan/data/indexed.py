"""The indexed input pipeline: the split held in memory, batches chosen by index.

The split is read once, fitted to `image_size` and kept as uint8 arrays. Batch
number b takes the examples `perm_e[i*B:(i+1)*B]` of epoch e = b // (N // B)
(i = b mod N // B; each epoch's last partial batch is dropped), where perm_e
is a permutation drawn from (seed, e). So the batch a step sees is a function
of the step alone: a resume needs no iterator state, and the order does not
depend on the number of devices or processes. Scaling to [-1, 1] and the
augmentations (shifts, flips, cutout, keyed by (seed, batch number, row)) run
on the device, inside the jitted step.

Where the examples go from (`data_on_device`):
- on the device: the whole split sits on every device, and the step gathers
  its batch from the indices (a few bytes a step cross the host-device link);
- on the host: a background thread gathers each process's uint8 rows and
  transfers them. Both paths give bitwise the same batches (tested).

TensorFlow is not needed.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import sharding
from jaxgan.data.prefetch import prefetched
from jaxgan.data.base import DataError

# "auto" puts a split on the devices when it takes at most this much (uint8).
AUTO_DEVICE_BYTES = 1 << 30


class Order:
  """Which examples batch number b holds (see the module docstring)."""

  def __init__(self, seed: int, num_examples: int, batch_size: int):
    if num_examples < batch_size:
      raise DataError(f"The training split has {num_examples} examples, fewer than a batch "
                      f"of {batch_size}; use a larger split or a smaller --config.batch_size.")
    self.seed, self.num_examples, self.batch_size = seed, num_examples, batch_size
    self.batches_per_epoch = num_examples // batch_size
    self._perms: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

  def permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      rng = np.random.default_rng([self.seed, epoch])
      self._perms[epoch] = rng.permutation(self.num_examples).astype(np.int32)
      if len(self._perms) > 2:
        self._perms.popitem(last=False)
    return self._perms[epoch]

  def indices(self, batch_number: int) -> np.ndarray:
    epoch, i = divmod(batch_number, self.batches_per_epoch)
    return self.permutation(epoch)[i * self.batch_size:(i + 1) * self.batch_size]


def augment(images: jax.Array, batch_number: jax.Array, seed: int, crop_padding: int,
            flip: bool, cutout: int = 0) -> jax.Array:
  """float images [B, H, W, C] in [0, 255]: each row shifted by up to
  `crop_padding` pixels (a random crop of the zero-padded image), flipped
  left-right, and with a `cutout` x `cutout` square set to mid-grey (127.5,
  0 in the model's range; DeVries & Taylor 2017: the centre anywhere in the
  image, the square clipped at its border), as asked, drawn from (seed,
  batch number, row)."""
  check_augmentation(crop_padding, cutout)
  if not crop_padding and not flip and not cutout:
    return images
  b, h, w, _ = images.shape
  base = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED)

  def one(image, number, row):
    key = jax.random.fold_in(jax.random.fold_in(base, number), row)
    k_crop, k_flip = jax.random.split(key)
    if crop_padding:
      p = crop_padding
      dy, dx = jax.random.randint(k_crop, (2,), 0, 2 * p + 1)
      padded = jnp.pad(image, ((p, p), (p, p), (0, 0)))
      image = jax.lax.dynamic_slice(padded, (dy, dx, 0), image.shape)
    if flip:
      image = jnp.where(jax.random.bernoulli(k_flip), image[:, ::-1], image)
    if cutout:  # its own key: the shifts and flips of runs without cutout stay as they were
      cy, cx = jax.random.randint(jax.random.fold_in(key, 3), (2,), 0, jnp.array([h, w]))
      top, left = cy - cutout // 2, cx - cutout // 2
      ys, xs = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
      hole = (ys >= top) & (ys < top + cutout) & (xs >= left) & (xs < left + cutout)
      image = jnp.where(hole[:, :, None], 127.5, image)
    return image

  return jax.vmap(one)(images, batch_number, jnp.arange(b))


def check_augmentation(crop_padding: int, cutout: int) -> None:
  if crop_padding < 0:
    raise ValueError(f"config.augment_crop_padding must be >= 0, got {crop_padding}.")
  if cutout < 0:
    raise ValueError(f"config.augment_cutout must be >= 0 (a square's side in pixels; "
                     f"0: off), got {cutout}.")


class IndexedFeed:
  """The loop's training input from an in-memory split.

  `inputs()` yields, per batch, global arrays sharded over the mesh: on the
  device path `{"index", "number"}`, on the host path `{"image" (uint8),
  "label", "number"}`. `to_batch(inputs, resident)`, traced inside the jitted
  step, turns them into the task's batch `{"image": float32 in [-1, 1],
  "label": int32}`; `resident` is the split on the devices (None on the host
  path), passed to the step as an argument.
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray, config, mesh, start_batch: int,
               on_device: bool):
    self.images, self.labels = images, labels.astype(np.int32)
    self._configure(config, mesh, len(images))
    self.on_device = on_device
    self.resident = None
    if on_device:
      repl = sharding.replicated(mesh)
      self.resident = {
          "image": jax.make_array_from_process_local_data(repl, self.images),
          "label": jax.make_array_from_process_local_data(repl, self.labels)}
    self._inputs = prefetched(self._host_inputs(start_batch), self._to_global)

  def _configure(self, config, mesh, num_examples: int) -> None:
    """The order, augmentation and this process's rows (shared with the
    streamed pipeline, which must give the same batches)."""
    self.mesh = mesh
    self.global_batch = int(config.batch_size)
    self.seed = int(np.random.SeedSequence([config.seed, 0x1D]).generate_state(1)[0]) % 2**31
    self.order = Order(self.seed, num_examples, self.global_batch)
    self.crop_padding = int(config.get("augment_crop_padding", 0))
    self.flip = bool(config.get("augment_flip", False))
    self.cutout = int(config.get("augment_cutout", 0))
    check_augmentation(self.crop_padding, self.cutout)
    # This process's rows of each global batch (processes own contiguous
    # blocks of the mesh's devices, in process order).
    local = self.global_batch // jax.process_count()
    first = jax.process_index() * local
    self._rows = slice(first, first + local)

  def _host_inputs(self, batch_number: int) -> Iterator[dict]:
    while True:
      index = self.order.indices(batch_number)[self._rows]
      number = np.full(len(index), batch_number, np.int32)
      if self.on_device:
        yield {"index": index, "number": number}
      else:
        yield {"image": self.images[index], "label": self.labels[index], "number": number}
      batch_number += 1

  def _to_global(self, local: dict) -> dict:
    return sharding.to_global_batch(local, self.mesh)

  def inputs(self) -> Iterator[dict]:
    return self._inputs

  def to_batch(self, inputs: dict, resident) -> dict:
    if resident is not None:
      image, label = resident["image"][inputs["index"]], resident["label"][inputs["index"]]
    else:
      image, label = inputs["image"], inputs["label"]
    spec = sharding.data_sharded(self.mesh)
    image = jax.lax.with_sharding_constraint(image, spec).astype(jnp.float32)
    # Shifted in [0, 255], so the border is black (0 -> -1), as in tf.data.
    image = augment(image, inputs["number"], self.seed, self.crop_padding, self.flip,
                    self.cutout)
    image = image * (2.0 / 255.0) - 1.0
    return {"image": image, "label": jax.lax.with_sharding_constraint(label, spec)}

  def close(self) -> None:
    self._inputs.close()


def on_device_setting(setting) -> str | bool:
  """`data_on_device` as "auto", True or False (also from the strings a
  command line gives: "True", "false", ...)."""
  value = {"auto": "auto", "true": True, "false": False}.get(str(setting).lower())
  if value is None or not isinstance(setting, (str, bool)):
    raise ValueError(f"config.data_on_device must be 'auto', True or False, got {setting!r}.")
  return value


def fits_on_device(nbytes: int, setting) -> bool:
  """Resolves `data_on_device` ("auto", True or False) for a training split
  of `nbytes` (uint8, fitted)."""
  setting = on_device_setting(setting)
  max_bytes = AUTO_DEVICE_BYTES
  if setting == "auto":
    return nbytes <= max_bytes
  if setting and nbytes > max_bytes:
    raise DataError(
        f"data_on_device=True, but the training split takes {nbytes / 2**20:.0f} MiB "
        f"as uint8, more than the {max_bytes / 2**20:.0f} MiB budget per device; use "
        "--config.data_on_device=False (batches from host memory) or auto.")
  return setting


def eval_batches(images: np.ndarray, labels: np.ndarray, local_batch: int, process_index: int,
                 process_count: int) -> tuple[Iterator[dict], int]:
  """(This process's padded eval batches as NumPy, the number of batches):
  process p takes examples p, p + P, ...; padding rows have mask 0."""
  idx = np.arange(process_index, len(images), process_count)
  sizes = [len(range(p, len(images), process_count)) for p in range(process_count)]
  num_batches = -(-max(sizes) // local_batch)

  def batches():
    for b in range(num_batches):
      rows = idx[b * local_batch:(b + 1) * local_batch]
      pad = local_batch - len(rows)
      image = to_model_range(np.concatenate(  # padding: black images, as in tf.data
          [images[rows], np.zeros((pad, *images.shape[1:]), np.uint8)]))
      yield {"image": image,
             "label": np.concatenate([labels[rows], np.zeros(pad, np.int64)]).astype(np.int32),
             "mask": np.concatenate([np.ones(len(rows), np.float32),
                                     np.zeros(pad, np.float32)])}

  return batches(), num_batches


def to_model_range(images: np.ndarray) -> np.ndarray:
  """uint8 -> float32 in [-1, 1], as the tf.data pipeline computes it."""
  return images.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
