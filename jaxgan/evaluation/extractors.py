"""Feature extractors: images in [-1, 1] -> (features [N, D], class
probabilities [N, K]), with a `protocol` dict that describes them.

`ClassifierExtractor`: a classifier trained by `experiments.classifier` on
the same dataset (penultimate layer, softmax), from its restored run (a
`jaxgan.runs.Run`); works offline. `InceptionExtractor`: the standard FID network
(pool3, 2048-d) with weights from a local file, with pytorch-fid's resize to
299x299 (bilinear, no antialiasing; "inception") or clean-fid's ("clean":
PIL bicubic with antialiasing, per channel in float; Parmar et al. 2022,
"inception-clean"). `jaxgan.runs.extractor(spec)` picks one by name.

Features are computed with full float32 matmuls and convolutions on every
platform, each batch's rows split over every device of every process (see
`_in_batches`).
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxgan import sharding
from jaxgan.models import inception


def resize_for_extractor(images: np.ndarray, shape: tuple[int, int, int]) -> jax.Array:
  """Images [N, H, W, C] in [-1, 1] -> `shape` (bilinear resize; grey to RGB
  by repetition, RGB to grey by averaging)."""
  x = jnp.asarray(images, jnp.float32)
  h, w, c = shape
  if x.shape[-1] != c:
    x = jnp.repeat(x, c, axis=-1) if x.shape[-1] == 1 else jnp.mean(x, -1, keepdims=True)
  if x.shape[1:3] != (h, w):
    x = jax.image.resize(x, (x.shape[0], h, w, c), "bilinear")
  return x


class ClassifierExtractor:
  """Penultimate-layer features and softmax of an `experiments.classifier`
  run (a `jaxgan.runs.Run`: `jaxgan.runs.classifier_run(RUN_DIR)`)."""

  def __init__(self, run, batch_size: int = 500, mesh=None):
    if isinstance(run, str):
      raise TypeError("ClassifierExtractor takes a restored run now: use "
                      f"jaxgan.runs.extractor('classifier:{run}').")
    config, task, state, step = run.config, run.task, run.state, run.step
    self.image_shape = task.image_shape
    self.batch_size = batch_size
    self.protocol = {
        "extractor": f"classifier:{config.model}",
        "extractor_run": run.dir,
        "extractor_step": step,
        "extractor_checkpoint_sha256": run.checkpoint_sha256(),
        "extractor_dataset": config.dataset,
        "features": "penultimate layer",
        "resize": f"bilinear to {self.image_shape[0]}x{self.image_shape[1]}",
        "precision": "float32 matmuls and convolutions (highest)",
    }
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    self._state = sharding.replicate(state, self.mesh)
    shape = self.image_shape  # resized inside the jitted call, on each device's rows
    self._apply = jax.jit(lambda state, x: _features_and_probs(
        task, state, resize_for_extractor(x, shape)))

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _in_batches(self._apply, self._state, lambda x: np.asarray(x, np.float32), images,
                       self.batch_size, self.mesh)


def clean_resize(images: np.ndarray, size: int = 299) -> np.ndarray:
  """clean-fid's resize ("clean" mode, Parmar et al. 2022): images [N, H, W,
  1 or 3] in [-1, 1] -> [N, size, size, 3] in [-1, 1], each channel resized
  as a float32 image by PIL's bicubic filter (which antialiases when
  shrinking) and clipped to [0, 255]; grey repeated to RGB. Like clean-fid's
  generator path the values are not quantised first (8-bit real images are
  exact either way)."""
  pixels = (np.asarray(images, np.float32) + 1.0) * 127.5
  if pixels.shape[-1] == 1:
    pixels = np.repeat(pixels, 3, axis=-1)
  out = np.empty((len(pixels), size, size, 3), np.float32)
  for i, image in enumerate(pixels):
    for c in range(3):
      channel = Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F")
      out[i, ..., c] = np.asarray(channel.resize((size, size), resample=Image.BICUBIC))
  return np.clip(out, 0.0, 255.0) / 127.5 - 1.0


# The names of the Inception extractors (`jaxgan.runs.extractor`) -> their resize.
INCEPTION_RESIZES = {"inception": "pytorch-fid", "inception-clean": "clean"}

RESIZES = {"pytorch-fid": "bilinear (half-pixel centres, no antialiasing) to 299x299; grey "
                          "repeated to RGB",
           "clean": "clean-fid: PIL bicubic (antialiased) per channel in float32 to 299x299, "
                    "clipped to [0, 255]; grey repeated to RGB"}


class InceptionExtractor:
  """The standard FID InceptionV3 (pytorch-fid's weights, read from a local
  file): pool3 features [N, 2048] and softmax over its 1008 logits. `resize`:
  "pytorch-fid" (inside the network, as pytorch-fid) or "clean" (clean-fid's,
  on the host: `clean_resize`)."""

  def __init__(self, weights: str | None = None, batch_size: int = 50,
               resize: str = "pytorch-fid", mesh=None):
    if resize not in RESIZES:
      raise ValueError(f"Unknown resize {resize!r}; use one of {', '.join(RESIZES)}.")
    self.resize = resize
    variables, path = inception.load_fid_variables(weights)
    self.image_shape = (inception.INPUT_SIZE, inception.INPUT_SIZE, 3)
    self.batch_size = batch_size
    with open(path, "rb") as f:
      digest = hashlib.file_digest(f, "sha256").hexdigest()
    self.protocol = {
        "extractor": "inception_v3_fid",
        "extractor_weights": path,
        "extractor_checkpoint_sha256": digest,
        "features": "pool3 (2048)",
        "resize": RESIZES[resize],
        "precision": "float32 matmuls and convolutions (highest)",
    }
    model = inception.FIDInceptionV3()
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    self._variables = sharding.replicate(variables, self.mesh)
    self._apply = jax.jit(lambda variables, x: _inception_outputs(model, variables, x))

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fit = clean_resize if self.resize == "clean" else (lambda x: x)
    return _in_batches(self._apply, self._variables,
                       lambda x: np.asarray(fit(x), np.float32), images, self.batch_size,
                       self.mesh)


def _in_batches(apply, params, prepare, images: np.ndarray, batch_size: int, mesh
                ) -> tuple[np.ndarray, np.ndarray]:
  """(features, probabilities) of `images`, `batch_size` at a time
  (`prepare`d on the host, then `apply(params, batch)` with the rows split
  over the mesh's devices and processes: `sharding.map_batch`), traced and
  run with full float32 matmuls and convolutions: evaluation must not
  change with the platform (GPUs default to TF32, which moved InceptionV3's
  pool3 features by up to 0.8% on an H100; CPUs are exact either way)."""
  features, probs = [], []
  for i in range(0, len(images), batch_size):
    with jax.default_matmul_precision("highest"):
      f, p = sharding.map_batch(apply, params, prepare(images[i:i + batch_size]), mesh)
    features.append(f)
    probs.append(p)
  return np.concatenate(features), np.concatenate(probs)


def _inception_outputs(model, variables, x):
  pool3, logits = model.apply(variables, x)
  return pool3, jax.nn.softmax(logits)


def _features_and_probs(task, state, x):
  logits, features = task.apply(state, x, return_features=True)
  return features, jax.nn.softmax(logits)
