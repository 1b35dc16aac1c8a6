"""Scoring a generator: samples, the metric suite against real images, tables."""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxgan import flat_random, metrics
from jaxgan.evaluation.runs import restore_run

# Samples are drawn from fold_in(PRNGKey(seed), _SAMPLE_STREAM): apart from
# the training keys, the same for every evaluation of a run.
_SAMPLE_STREAM = 7_000_001


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
                       baseline_split: str | None = None, export: str | None = None,
                       texture_features=None) -> dict:
  """Metrics of a GAN run's generator (latest checkpoint, `step`, or 0 for
  the initialisation) against the real images of `split` (default: the
  run's eval_split). With `baseline_split`, that split's real images stand in
  for the generator's samples (the scale for "as good as real data"). With
  `texture_features` (a `jaxgan.texture.features` network), also the
  per-layer texture distance of the samples' Gram statistics to the real
  images' (`texture_distance`)."""
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
  if texture_features is not None:
    from jaxgan.texture import gram
    rgb = lambda x: np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
    result["texture_distance"] = gram.texture_distance(
        texture_features, rgb((fake + 1.0) / 2.0), rgb((real + 1.0) / 2.0))
    result["texture_features"] = texture_features.spec
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
