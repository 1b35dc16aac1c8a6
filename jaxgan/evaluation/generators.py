"""Scoring a generator: samples, the metric suite against real images, tables."""

from __future__ import annotations

import os

import jax
import numpy as np
from PIL import Image

from jaxgan import flat_random, metrics, sharding
from jaxgan import images as image_lib
from jaxgan.data.base import DataError
from jaxgan.evaluation import reference as reference_lib
from jaxgan.evaluation import rejection
from jaxgan.evaluation.extractors import ClassifierExtractor
from jaxgan.gan.sampler import Sampler
from jaxgan.texture import gram

# Samples are drawn from fold_in(PRNGKey(seed), _SAMPLE_STREAM): apart from
# the training keys, the same for every evaluation of a run.
_SAMPLE_STREAM = 7_000_001
_TRUNCATION_STREAM = 7_000_002  # within the sample stream: truncated latents
# Rejection sampling's candidate rounds draw from _CANDIDATE_STREAM + round,
# its acceptance draws from _ACCEPT_STREAM.
_CANDIDATE_STREAM = 7_100_000
_ACCEPT_STREAM = 7_200_000


def generate(task: Sampler, state, num: int, seed: int, batch_size: int = 500,
             labels=None, mesh=None, truncation: float | None = None,
             stream: int = _SAMPLE_STREAM) -> np.ndarray:
  """`num` samples in [-1, 1] of a GAN task's generator (a
  `jaxgan.gan.sampler.Sampler`; the averaged generator when the task keeps
  one), from a key that depends only on `seed`. A conditional
  generator draws class `labels[i]` for sample i (default: the classes in
  turn, 0, 1, ..., K-1, 0, ...). Each batch's rows are drawn on the host and
  generated split over every device of every process (`mesh`, default all):
  the same samples on 1 device or many (tested). `truncation` t > 0: the
  truncation trick, fidelity for variety (None: none): for a generator whose
  `task.truncation` is "latent" (Brock et al. 2019) its latent drawn from
  N(0, 1) truncated to [-t, t]; for "w" (StyleGAN, Karras et al. 2019) each
  w pulled towards the running mean w_avg by psi = t. `stream`: another
  stream of latents for the same seed (rejection sampling's candidates)."""
  if truncation is not None and not truncation > 0:
    raise ValueError(f"The truncation threshold must be > 0 (or None for none); got "
                     f"{truncation}.")
  key = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
  sample = task.sample_jit  # compiled once per task, reused by every evaluation
  if task.num_classes:
    labels = (np.arange(num) % task.num_classes if labels is None else np.asarray(labels))
    if labels.shape != (num,) or labels.min() < 0 or labels.max() >= task.num_classes:
      raise ValueError(f"Expected {num} class labels in [0, {task.num_classes}), got "
                       f"shape {labels.shape}.")
    labels = labels.astype(np.int32)
  elif labels is not None:
    raise ValueError("This generator is unconditional; it takes no labels.")
  mesh = sharding.make_mesh() if mesh is None else mesh
  state = sharding.replicate(state, mesh)
  psi = truncation if task.truncation == "w" else None
  out = []
  for i in range(0, num, batch_size):
    n = min(batch_size, num - i)
    z = np.asarray(flat_random.normal(jax.random.fold_in(key, i), (n, task.latent_dim)))
    if truncation is not None and task.truncation == "latent":
      k = task.g_latent_dim
      z = np.array(z)
      z[:, -k:] = flat_random.truncated_normal(
          jax.random.fold_in(jax.random.fold_in(key, _TRUNCATION_STREAM), i), -truncation,
          truncation, (n, k))
    rows = {"z": z} if labels is None else {"z": z, "labels": labels[i:i + n]}
    out.append(sharding.map_batch(lambda s, b: sample(s, b["z"], b.get("labels"), psi=psi),
                                  state, rows, mesh))
  return np.concatenate(out)


def rejection_sample(task: Sampler, state, real_images: np.ndarray, num: int, seed: int,
                     percentile: float, round_size: int = 10_000,
                     max_candidates: int | None = None, truncation: float | None = None,
                     mesh=None, batch_size: int = 500) -> tuple[np.ndarray, dict]:
  """`num` samples in [-1, 1] of a GAN task's (averaged) generator kept by
  discriminator rejection sampling (Azadi et al. 2019; the method and its
  arithmetic: jaxgan/evaluation/rejection.py), and what it did (a dict for the
  evaluation's protocol). `real_images` (in [-1, 1], e.g. the first images
  of the training split) calibrate the discriminator against the first
  round of `round_size` candidates; `percentile` in [0, 100) sets gamma (the
  higher, the fewer kept and the closer to exact rejection sampling). Stops
  with a ValueError naming the acceptance rate when `max_candidates`
  (default 100 * num + round_size) do not give `num` samples."""
  rejection.check_supported(task)
  rejection.check_settings(percentile, round_size)
  if num < 1 or not len(real_images):
    raise ValueError(f"DRS needs num >= 1 samples and some real images; got {num}, "
                     f"{len(real_images)}.")
  max_candidates = max_candidates or 100 * num + round_size
  mesh = sharding.make_mesh() if mesh is None else mesh
  discriminate = jax.jit(lambda s, x: task.discriminate(s, x))
  replicated = sharding.replicate(state, mesh)

  def scores(images):
    out = [sharding.map_batch(lambda s, b: discriminate(s, b["x"]), replicated,
                              {"x": images[i:i + batch_size]}, mesh)
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float64).reshape(len(images))

  accept_key = jax.random.fold_in(jax.random.PRNGKey(seed), _ACCEPT_STREAM)
  kept, count, seen, round_index = [], 0, 0, 0
  scale = bias = max_logit = gamma = None
  while count < num:
    if seen >= max_candidates:
      raise ValueError(f"Discriminator rejection sampling kept {count} of {seen} candidates "
                       f"({count / seen:.2%}), short of the {num} asked for: lower the "
                       f"percentile (--drs {percentile:g}) or ask for fewer samples.")
    candidates = generate(task, replicated, round_size, seed, truncation=truncation, mesh=mesh,
                          batch_size=batch_size, stream=_CANDIDATE_STREAM + round_index)
    d = scores(candidates)
    if round_index == 0:
      scale, bias = rejection.calibrate(scores(np.asarray(real_images)), d)
      logits = scale * d + bias
      max_logit = float(logits.max())
      gamma = float(np.percentile(rejection.shifted_log_odds(logits, max_logit), percentile))
    else:
      logits = scale * d + bias
      max_logit = max(max_logit, float(logits.max()))  # the paper's running M
    p = rejection.acceptance(logits, max_logit, gamma)
    u = np.asarray(jax.random.uniform(jax.random.fold_in(accept_key, round_index),
                                      (round_size,)), np.float64)
    kept.append(candidates[u < p])
    count, seen, round_index = count + len(kept[-1]), seen + round_size, round_index + 1
  images = np.concatenate(kept)[:num]
  return images, {"method": "discriminator rejection sampling (Azadi et al. 2019)",
                  "percentile": float(percentile), "gamma": gamma, "epsilon": rejection.EPSILON,
                  "calibration": {"scale": scale, "bias": bias,
                                  "num_real": int(len(real_images)),
                                  "num_generated": round_size},
                  "max_logit": max_logit, "candidates": seen, "kept": count,
                  "acceptance_rate": count / seen}


def _check_run(run, what: str) -> None:
  """Callers from before jaxgan.runs passed a run directory: say the new spelling."""
  if isinstance(run, (str, os.PathLike)):
    raise TypeError(f"{what} takes a restored run now: pass jaxgan.runs.restore({str(run)!r}) "
                    "(it opens the run directory).")


def sample_classes(run, labels, seed: int = 0) -> np.ndarray:
  """Images in [-1, 1] of the given classes (int [N]) from a conditional GAN
  run's (averaged) generator (`run`: a `jaxgan.runs.Run`, e.g.
  `jaxgan.runs.restore(RUN_DIR, expect="gan")`); the same for the same `seed`."""
  _check_run(run, "sample_classes")
  task, state = run.task, run.state
  if not task.num_classes:
    raise ValueError(f"{run.dir} takes no class labels (an unconditional GAN, or one "
                     "self-conditioned on clusters or InfoGAN codes); use "
                     "jaxgan.evaluation.generate for its samples.")
  labels = np.asarray(labels)
  return generate(task, state, len(labels), seed, labels=labels)


def kid_subset_size(num_real: int, num_fake: int) -> int:
  """1000 (Binkowski et al.), or half the smaller set, so the subsets differ
  and the spread over subsets means something."""
  return max(2, min(1000, min(num_real, num_fake) // 2))


def compare(real_features, real_probs, fake_features, fake_probs, seed: int = 0) -> dict:
  """Every metric of the suite for one real and one generated feature set."""
  kid_mean, kid_std = metrics.kernel_inception_distance(
      real_features, fake_features, num_subsets=100,
      subset_size=kid_subset_size(len(real_features), len(fake_features)), seed=seed)
  # One pass over each distance matrix for all four (bounded memory at 50k).
  manifold = metrics.manifold_metrics(real_features, fake_features, k_pr=3, k_dc=5)
  inception, inception_std = metrics.inception_score(fake_probs, splits=10)
  return {"fid": metrics.fid_from_features(real_features, fake_features),
          "kid_mean": kid_mean, "kid_std": kid_std, **manifold,
          "inception_score": inception, "inception_score_std": inception_std,
          "class_mix_tv": metrics.class_mix_distance(real_probs, fake_probs)}


def evaluate_generator(run, extractor, split: str | None = None,
                       num_samples: int | None = None, baseline_split: str | None = None,
                       export: str | None = None, texture_features=None,
                       reference: str | None = None, save_reference: str | None = None,
                       samples: str | None = None, truncation: float | None = None,
                       drs: float | None = None, drs_round: int = 10_000) -> dict:
  """Metrics of a GAN run's generator (`run`: a `jaxgan.runs.Run` restored at
  the checkpoint to score, e.g. `jaxgan.runs.restore(RUN_DIR, step,
  expect="gan")`) against the real images of `split` (default: the
  run's eval_split). With `baseline_split`, that split's real images stand in
  for the generator's samples (the scale for "as good as real data"). With
  `texture_features` (a `jaxgan.texture.features` network), also the
  per-layer texture distance of the samples' Gram statistics to the real
  images' (`texture_distance`). `reference`: a file of real-side statistics
  (jaxgan/evaluation/reference.py) used instead of reading and featurizing
  the split (its protocol must match the extractor's); `save_reference`:
  write the real side computed here to that file. `samples`: score the
  images another program wrote (`load_samples`) instead of the generator's
  (a conditional run's samples carry no labels: the conditional metrics
  are left out). `truncation`: the truncation trick at t (latents truncated
  to [-t, t], or StyleGAN2's psi = t; see `generate`). `drs`: keep the
  samples by discriminator rejection sampling at this percentile
  (`rejection_sample`), D calibrated on the first `drs_round` images of the
  run's train_split against as many candidates."""
  _check_run(run, "evaluate_generator")
  config, data, task, state, step = run.config, run.data, run.task, run.state, run.step
  conditional = bool(task.num_classes)
  real = ref = None
  if reference:
    if save_reference or texture_features is not None:
      raise ValueError("--reference replaces the real images: it cannot go with "
                       "--save_reference or --texture_features.")
    ref = reference_lib.load_reference(reference)
    reference_lib.check_protocol(ref, extractor.protocol, split)
    if not ref.complete and ((conditional and not samples) or baseline_split):
      raise DataError(f"--reference {reference} holds only mu and sigma: enough for an "
                      "unconditional generator's FID, not for this evaluation; write a full "
                      "reference with --save_reference.")
    real_labels = ref.labels
    num_real = len(ref.features) if ref.complete else None
    reference_name = ref.protocol["reference"] if ref.protocol else "unknown (mu/sigma file)"
  else:
    split = split or config.eval_split
    real, real_labels = data.first_images(split, with_labels=True)
    num_real, reference_name = len(real), f"{config.dataset} {split}"
  if truncation is not None and (samples or baseline_split):
    raise ValueError("--truncation changes the generator's latents; it does not apply to "
                     "--samples or --baseline_split.")
  if drs is not None and (samples or baseline_split):
    raise ValueError("--drs filters the generator's samples; it does not apply to --samples or "
                     "--baseline_split.")
  if drs is not None:  # before reading the real images
    rejection.check_supported(task)
    rejection.check_settings(drs, drs_round)
  drs_info = None
  if samples:
    if baseline_split:
      raise ValueError("--samples and --baseline_split both name what to score; pass one.")
    fake, fake_labels = load_samples(samples)[:num_samples], None
    conditional = False
    source = f"samples read from {samples}"
  elif baseline_split:
    fake, fake_labels = data.first_images(baseline_split, num_samples, with_labels=True)
    source = f"real images of {baseline_split!r}"
  else:
    num = num_samples or num_real or 10_000
    # A conditional generator draws the reference's classes (cyclically when
    # more samples are asked for), so per-class sets match in size.
    fake_labels = np.resize(real_labels, num) if conditional else None
    if drs is None:
      fake = generate(task, state, num, config.seed, labels=fake_labels, truncation=truncation)
    else:
      fake, drs_info = rejection_sample(
          task, state, data.first_images(config.train_split, drs_round), num, config.seed,
          drs, round_size=drs_round, truncation=truncation)
      drs_info["calibration"]["real"] = f"{config.dataset} {config.train_split}"
    source = (f"generator at step {step}" + (" (parameter average)" if task.ema_decay else "")
              + ("" if not truncation else f", w truncated with psi {truncation}"
                 if task.truncation == "w" else
                 f", latents truncated to [-{truncation}, {truncation}]")
              + ("" if drs_info is None else
                 f", discriminator rejection sampling at percentile {drs:g} (kept "
                 f"{drs_info['kept']} of {drs_info['candidates']} candidates)"))
    if hasattr(task.generator, "noise_mode"):  # StyleGAN2's noise inputs
      source += f", noise inputs {task.generator.noise_mode!r}"
  writes = jax.process_index() == 0  # every process computes, process 0 writes
  if export and writes:
    export_samples(fake, export)
  if ref is None:
    real_f, real_p = extractor(real)
    if save_reference and writes:
      reference_lib.save_reference(save_reference, real_f, real_p, real_labels,
                                   {**extractor.protocol, "reference": reference_name,
                                    "num_real": num_real})
  else:
    real_f, real_p = ref.features, ref.probs
  fake_f, fake_p = extractor(fake)
  protocol = {**extractor.protocol, "reference": reference_name, "num_real": num_real,
              "num_generated": len(fake), "generated": source, "run": run.dir, "step": step}
  if ref is not None:
    protocol["reference_file"] = ref.path
  if drs_info is not None:
    protocol["rejection_sampling"] = drs_info
  if ref is not None and not ref.complete:  # a pytorch-fid / clean-fid mu/sigma file
    fid = metrics.frechet_distance(ref.mu, ref.sigma, *metrics.feature_statistics(fake_f))
    return {"fid": fid, "protocol": protocol}
  result = compare(real_f, real_p, fake_f, fake_p)
  extra_protocol = {}
  if conditional:
    result.update(conditional_metrics(real_f, real_p, real_labels, fake_f, fake_p, fake_labels,
                                      task.num_classes))
    extra_protocol = {"conditional": config.conditional,
                      "generated_labels": (f"the labels of {baseline_split!r}" if baseline_split
                                           else "the reference's labels, in order"),
                      "real_class_accuracy": result.pop("real_class_accuracy", None)}
  if texture_features is not None:
    rgb = lambda x: np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
    result["texture_distance"] = gram.texture_distance(
        texture_features, rgb((fake + 1.0) / 2.0), rgb((real + 1.0) / 2.0))
    result["texture_features"] = texture_features.spec
  result["protocol"] = {**protocol,
                        "knn_k": {"precision_recall": 3, "density_coverage": 5},
                        "kid": {"subsets": 100, "subset_size": kid_subset_size(num_real, len(fake)),
                                "kernel": "(x.y/d + 1)^3"}, **extra_protocol}
  return result


def conditional_metrics(real_f, real_p, real_labels, fake_f, fake_p, fake_labels,
                        num_classes: int) -> dict:
  """A conditional generator's metrics: `intra_fid` (mean per-class FID; the
  per-class values in `intra_fid_per_class`) and, when the extractor is a
  classifier over the same classes, `class_accuracy` (the share of samples
  it assigns to the class they were generated for) and, for scale,
  `real_class_accuracy` (its accuracy on the real reference images)."""
  mean, per_class = metrics.intra_fid(real_f, real_labels, fake_f, fake_labels)
  out = {"intra_fid": mean, "intra_fid_per_class": {str(c): v for c, v in per_class.items()}}
  if real_p.shape[1] == num_classes:
    out["class_accuracy"] = metrics.class_accuracy(fake_p, fake_labels)
    out["real_class_accuracy"] = metrics.class_accuracy(real_p, real_labels)
  return out


def check_cas_classifier(gan_dir: str, cas_dir: str, cas_config) -> None:
  """Refuses a classifier run (its config) that was not trained on the GAN
  run's samples alone."""
  source = cas_config.generated_data
  if not source or os.path.realpath(source) != os.path.realpath(gan_dir):
    raise ValueError(f"{cas_dir} was not trained on this run's samples (its "
                     f"generated_data is {source!r}, not {gan_dir!r}); train it with "
                     f"python -m experiments.classifier --config.generated_data={gan_dir}.")
  if cas_config.generated_fraction != 1.0:
    raise ValueError(f"{cas_dir} mixed real images into its batches (generated_fraction "
                     f"{cas_config.generated_fraction}); the CAS needs a classifier trained on "
                     "samples only (generated_fraction 1.0).")


def classification_accuracy_score(gan, cas, real=None, split: str | None = None) -> dict:
  """The Classification Accuracy Score (Ravuri & Vinyals 2019) of a
  conditional GAN run `gan`: the real-image accuracy on `split` (default: the
  GAN run's eval_split) of `cas`, a classifier trained on the GAN's samples
  only (`experiments.classifier --config.generated_data=GAN_RUN`), and, with
  `real`, of the same classifier trained on real images, for scale (each a
  `jaxgan.runs.Run`)."""
  for run in (gan, cas, real):
    _check_run(run, "classification_accuracy_score")
  check_cas_classifier(gan.dir, cas.dir, cas.config)
  split = split or gan.config.eval_split
  images, labels = gan.data.first_images(split, with_labels=True)
  accuracy = lambda run: metrics.class_accuracy(ClassifierExtractor(run)(images)[1], labels)
  result = {"cas": accuracy(cas)}
  protocol = {"cas_classifier": cas.dir, "cas_split": split,
              "cas_steps": cas.config.num_train_steps, "cas_batch_size": cas.config.batch_size}
  if real is not None:
    result["cas_real_accuracy"] = accuracy(real)
    protocol["cas_real_classifier"] = real.dir
  result["cas_protocol"] = protocol
  return result


def export_samples(images: np.ndarray, path: str) -> str:
  """`path` ending in .npz: one array `images` (uint8 [N, H, W, C]); otherwise
  a directory of PNG files 000000.png, 000001.png, ..."""
  pixels = image_lib.to_uint8(images)
  if path.endswith(".npz"):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, images=pixels)
    return path
  os.makedirs(path, exist_ok=True)
  for i, img in enumerate(pixels):
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
        os.path.join(path, f"{i:06d}.png"))
  return path


def load_samples(path: str) -> np.ndarray:
  """Images another program wrote, as `export_samples` writes them: an .npz
  holding one uint8 array [N, H, W, C] (`images`, or its only array), or a
  directory of PNG/JPEG files (sorted by name); returned in [-1, 1]."""
  if path.endswith(".npz"):
    if not os.path.isfile(path):
      raise DataError(f"--samples {path}: no such file.")
    try:
      with np.load(path, allow_pickle=False) as f:
        name = "images" if "images" in f.files else (f.files[0] if len(f.files) == 1 else None)
        if name is None:
          raise DataError(f"--samples {path}: holds {f.files}; expected one array `images` "
                          "(uint8 [N, H, W, C]).")
        pixels = f[name]
    except (OSError, ValueError) as e:
      raise DataError(f"--samples {path}: not a readable .npz file ({e}).") from None
  elif os.path.isdir(path):
    files = sorted(f for f in os.listdir(path) if f.lower().endswith((".png", ".jpg", ".jpeg")))
    if not files:
      raise DataError(f"--samples {path}: the directory holds no PNG/JPEG files.")
    arrays = []
    for name in files:
      try:
        arrays.append(image_lib.read_image(os.path.join(path, name), "auto"))
      except image_lib.ImageFileError as e:
        raise DataError(f"--samples: {e}") from None
    if len({a.shape for a in arrays}) > 1:
      raise DataError(f"--samples {path}: the images differ in size "
                      f"({sorted({a.shape for a in arrays})[:3]}...); write them at one size.")
    pixels = np.stack(arrays)
  else:
    raise DataError(f"--samples {path}: neither an .npz file nor a directory of images.")
  if pixels.ndim == 3:
    pixels = pixels[..., None]
  if (pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] not in (1, 3)
      or not len(pixels)):
    raise DataError(f"--samples {path}: expected uint8 images [N, H, W, 1 or 3], got "
                    f"{pixels.dtype} {pixels.shape}.")
  return pixels.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def format_table(results: dict[str, dict]) -> str:
  """{label: result} -> an aligned text table of the metrics."""
  keys = ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
          "inception_score", "class_mix_tv"]
  keys += [k for k in ("intra_fid", "class_accuracy", "cas", "cas_real_accuracy")
           if any(k in r for r in results.values())]
  width = max(len(label) for label in results) + 2
  cells = {label: [f"{r[k]:.4g}" if k in r else "-" for k in keys]
           for label, r in results.items()}
  widths = [max([len(k)] + [len(c[i]) for c in cells.values()]) + 2 for i, k in enumerate(keys)]
  lines = [f"{'':{width}s}" + "".join(f"{k:>{w}s}" for k, w in zip(keys, widths))]
  for label, row in cells.items():
    lines.append(f"{label:{width}s}" + "".join(f"{c:>{w}s}" for c, w in zip(row, widths)))
  return "\n".join(lines)
