"""Evaluating generators: samples, features, and the `jaxgan.metrics` suite.

    from jaxgan import evaluation
    extractor = evaluation.ClassifierExtractor("runs/classifier")
    result = evaluation.evaluate_generator("runs/dcgan", extractor)

Features come from a pluggable extractor: any object with `image_shape`,
`protocol` (a dict describing it) and `__call__(images in [-1, 1]) ->
(features [N, D], class probabilities [N, K])`. The default is a classifier
trained by `experiments.classifier` on the same dataset (its penultimate
layer and softmax), restored from its run directory; it works offline.
`InceptionExtractor` is the standard FID network (pool3, 2048-d) with
weights from a local file; `make_extractor("inception[:PATH]" or RUN_DIR)`
picks one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan import flat_random, metrics
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data, DataError

# Samples are drawn from fold_in(PRNGKey(seed), _SAMPLE_STREAM): apart from
# the training keys, the same for every evaluation of a run.
_SAMPLE_STREAM = 7_000_001


def load_run_config(run_dir: str) -> ml_collections.ConfigDict:
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise DataError(f"{run_dir!r} is not a run directory (no config.json); pass the "
                    "--workdir of a finished or running experiment.")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def checkpoint_hash(run_dir: str, step: int) -> str:
  """sha256 over the files of one checkpoint (relative paths and contents)."""
  root = os.path.join(run_dir, "checkpoints", str(step))
  digest = hashlib.sha256()
  for dirpath, _, files in sorted(os.walk(root)):
    for name in sorted(files):
      path = os.path.join(dirpath, name)
      digest.update(os.path.relpath(path, root).encode())
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()


def restore_run(run_dir: str, make_task: Callable, step: int | None = None):
  """(config, data, task, state, step) of a run directory: the latest
  checkpoint, the one at `step`, or with step=0 the initial state."""
  config = load_run_config(run_dir)
  data = Data(config)
  task = make_task(config, data)
  key = jax.random.PRNGKey(config.seed)
  if step == 0:
    return config, data, task, jax.jit(task.init_state)(key), 0
  ckpt = Checkpointer(run_dir)
  available = ckpt.all_steps()
  if not available:
    raise DataError(f"No checkpoints in {ckpt.directory}.")
  step = max(available) if step is None else step
  if step not in available:
    raise DataError(f"No checkpoint for step {step} in {ckpt.directory}; available: "
                    f"{available} (or 0 for the initialisation).")
  state = ckpt.restore(jax.eval_shape(task.init_state, key), step,
                       jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
  return config, data, task, state, step


def fit_images(images: np.ndarray, shape: tuple[int, int, int]) -> jax.Array:
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
  """Penultimate-layer features and softmax of an `experiments.classifier` run."""

  def __init__(self, run_dir: str, step: int | None = None, batch_size: int = 500):
    from jaxgan.tasks.classifier import ClassifierTask
    run_dir = os.path.abspath(run_dir)
    make = lambda cfg, data: ClassifierTask(cfg, data.info.image_shape, data.info.num_classes)
    try:
      config, _, task, state, step = restore_run(run_dir, make, step)
    except DataError as e:
      raise DataError(f"Cannot load the feature classifier: {e} Train one on the same "
                      "dataset with: python -m experiments.classifier --workdir "
                      f"{run_dir} --config.dataset=...") from None
    self.image_shape = task.image_shape
    self.batch_size = batch_size
    self.protocol = {
        "extractor": f"classifier:{config.model}",
        "extractor_run": run_dir,
        "extractor_step": step,
        "extractor_checkpoint_sha256": checkpoint_hash(run_dir, step),
        "extractor_dataset": config.dataset,
        "features": "penultimate layer",
        "resize": f"bilinear to {self.image_shape[0]}x{self.image_shape[1]}",
    }
    self._apply = jax.jit(lambda x: _features_and_probs(task, state, x))

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _in_batches(lambda x: self._apply(fit_images(x, self.image_shape)), images,
                       self.batch_size)


class InceptionExtractor:
  """The standard FID InceptionV3 (pytorch-fid's weights, read from a local
  file): pool3 features [N, 2048] and softmax over its 1008 logits."""

  def __init__(self, weights: str | None = None, batch_size: int = 50):
    from jaxgan.models import inception
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
        "resize": "bilinear (half-pixel centres, no antialiasing) to 299x299; grey repeated to RGB",
    }
    model = inception.FIDInceptionV3()
    self._apply = jax.jit(lambda x: _inception_outputs(model, variables, x))

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _in_batches(lambda x: self._apply(jnp.asarray(x, jnp.float32)), images,
                       self.batch_size)


def _in_batches(apply, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(features, probabilities) of `images`, `batch_size` at a time."""
  features, probs = [], []
  for i in range(0, len(images), batch_size):
    f, p = apply(images[i:i + batch_size])
    features.append(np.asarray(f))
    probs.append(np.asarray(p))
  return np.concatenate(features), np.concatenate(probs)


def _inception_outputs(model, variables, x):
  pool3, logits = model.apply(variables, x)
  return pool3, jax.nn.softmax(logits)


def make_extractor(spec: str):
  """"inception" (weights at the default path), "inception:PATH", or the run
  directory of an `experiments.classifier` run."""
  if spec == "inception" or spec.startswith("inception:"):
    return InceptionExtractor(spec.partition(":")[2] or None)
  return ClassifierExtractor(spec)


def _features_and_probs(task, state, x):
  logits, features = task.apply(state, x, return_features=True)
  return features, jax.nn.softmax(logits)


def generate(task, state, num: int, seed: int, batch_size: int = 500) -> np.ndarray:
  """`num` generator samples in [-1, 1] (the averaged generator when the
  task keeps one), from a key that depends only on `seed`."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), _SAMPLE_STREAM)
  sample = task.sample_jit  # compiled once per task, reused by every evaluation
  out = []
  for i in range(0, num, batch_size):
    n = min(batch_size, num - i)
    z = flat_random.normal(jax.random.fold_in(key, i), (n, task.latent_dim))
    out.append(np.asarray(sample(state, z)))
  return np.concatenate(out)


def kid_subset_size(num_real: int, num_fake: int) -> int:
  """1000 (Binkowski et al.), or half the smaller set, so the subsets differ
  and the spread over subsets means something."""
  return max(2, min(1000, min(num_real, num_fake) // 2))


def compare(real_features, real_probs, fake_features, fake_probs, seed: int = 0) -> dict:
  """Every metric of the suite for one real and one generated feature set."""
  kid_mean, kid_std = metrics.kernel_inception_distance(
      real_features, fake_features, num_subsets=100,
      subset_size=kid_subset_size(len(real_features), len(fake_features)), seed=seed)
  precision, recall = metrics.precision_recall(real_features, fake_features, k=3)
  density, coverage = metrics.density_coverage(real_features, fake_features, k=5)
  inception, inception_std = metrics.inception_score(fake_probs, splits=10)
  return {"fid": metrics.fid_from_features(real_features, fake_features),
          "kid_mean": kid_mean, "kid_std": kid_std, "precision": precision, "recall": recall,
          "density": density, "coverage": coverage, "inception_score": inception,
          "inception_score_std": inception_std}


def evaluate_generator(run_dir: str, extractor, split: str | None = None,
                       num_samples: int | None = None, step: int | None = None,
                       baseline_split: str | None = None, export: str | None = None) -> dict:
  """Metrics of a GAN run's generator (latest checkpoint, `step`, or 0 for
  the initialisation) against the real images of `split` (default: the
  run's eval_split). With `baseline_split`, that split's real images stand in
  for the generator's samples (the scale for "as good as real data")."""
  from jaxgan.tasks.gan import GANTask
  config, data, task, state, step = restore_run(
      run_dir, lambda cfg, d: GANTask(cfg, d.info.image_shape), step)
  split = split or config.eval_split
  real = data.first_images(split)
  if baseline_split:
    fake = data.first_images(baseline_split, num_samples)
    source = f"real images of {baseline_split!r}"
  else:
    fake = generate(task, state, num_samples or len(real), config.seed)
    source = f"generator at step {step}" + (" (parameter average)" if task.ema_decay else "")
  if export:
    export_samples(fake, export)
  real_f, real_p = extractor(real)
  fake_f, fake_p = extractor(fake)
  result = compare(real_f, real_p, fake_f, fake_p)
  result["protocol"] = {**extractor.protocol, "reference": f"{config.dataset} {split}",
                        "num_real": len(real), "num_generated": len(fake),
                        "generated": source, "run": os.path.abspath(run_dir), "step": step,
                        "knn_k": {"precision_recall": 3, "density_coverage": 5},
                        "kid": {"subsets": 100, "subset_size": kid_subset_size(len(real), len(fake)),
                                "kernel": "(x.y/d + 1)^3"}}
  return result


def export_samples(images: np.ndarray, path: str) -> str:
  """`path` ending in .npz: one array `images` (uint8 [N, H, W, C]); otherwise
  a directory of PNG files 000000.png, 000001.png, ..."""
  from jaxgan import images as image_lib
  pixels = image_lib.to_uint8(images)
  if path.endswith(".npz"):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, images=pixels)
    return path
  from PIL import Image
  os.makedirs(path, exist_ok=True)
  for i, img in enumerate(pixels):
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
        os.path.join(path, f"{i:06d}.png"))
  return path


def format_table(results: dict[str, dict]) -> str:
  """{label: result} -> an aligned text table of the metrics."""
  keys = ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
          "inception_score"]
  width = max(len(label) for label in results) + 2
  cells = {label: [f"{r[k]:.4g}" for k in keys] for label, r in results.items()}
  widths = [max([len(k)] + [len(c[i]) for c in cells.values()]) + 2 for i, k in enumerate(keys)]
  lines = [f"{'':{width}s}" + "".join(f"{k:>{w}s}" for k, w in zip(keys, widths))]
  for label, row in cells.items():
    lines.append(f"{label:{width}s}" + "".join(f"{c:>{w}s}" for c, w in zip(row, widths)))
  return "\n".join(lines)
