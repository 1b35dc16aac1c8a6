"""Classifier train state and step functions (softmax cross-entropy).

Evaluation sums a confusion matrix over the eval split; `summarize_eval`
turns it into top-1 accuracy, per-class precision / recall / F1 and their
macro averages, and writes the per-class table (JSON) and a confusion-matrix
PNG under `eval/` in the run directory.

With `generated_data` (a class-conditional GAN run), a share
`generated_fraction` of every training batch is drawn inside the step from
that run's averaged generator, with uniform labels (all of it with 1.0:
trained on samples only, the held-out real accuracy is the Classification
Accuracy Score, Ravuri & Vinyals 2019). The generator's variables are part
of the train state (`GeneratedDataState`), so a resumed run uses exactly the
generator it started with, and the draws follow from the step's key.
"""

from __future__ import annotations

import json
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import flat_random, images, provenance
from jaxgan.models.registry import make_classifier
from jaxgan.tasks.base import apply_gradients, apply_model

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")


@flax.struct.dataclass
class ClassifierState:
  step: jax.Array  # int32 scalar: completed steps
  params: Any
  batch_stats: Any
  opt_state: Any
  key: jax.Array  # raw PRNG key; step keys are fold_in(key, step)


@flax.struct.dataclass
class GeneratedDataState(ClassifierState):
  generator: Any  # the GAN's averaged generator: {"params", "batch_stats"}, never trained


# Generated batches draw from fold_in(step key, _GENERATED_STREAM).
_GENERATED_STREAM = 2**31 - 7


class GeneratedData:
  """Class-conditional training images from a GAN run's generator (`gan`: a
  restored `jaxgan.runs.Run` whose task follows `jaxgan.gan.sampler.Sampler`)."""

  def __init__(self, gan, fraction: float, image_shape, num_classes: int):
    if not 0.0 < fraction <= 1.0:
      raise ValueError(f"config.generated_fraction must be in (0, 1] (the share of each batch "
                       f"drawn from the generator), got {fraction}.")
    if not gan.task.num_classes:
      raise ValueError(f"config.generated_data={gan.dir!r} is not a class-conditional GAN run "
                       "(its config has no `conditional`, or conditions on clusters or "
                       "InfoGAN codes, not classes); train one with "
                       "experiments/configs/gan.py:cgan_projection (or acgan).")
    self.run_dir, self.fraction = gan.dir, fraction
    self.task, self.step = gan.task, gan.step
    if self.task.image_shape != tuple(image_shape) or self.task.num_classes != num_classes:
      raise ValueError(
          f"The GAN run {gan.dir} makes {self.task.num_classes}-class images of shape "
          f"{self.task.image_shape}; this classifier's data has {num_classes} classes of "
          f"shape {tuple(image_shape)}. Use a GAN trained on the same dataset and image_size.")
    self.num_classes = num_classes
    self._variables = jax.device_get(gan.state.g_ema)

  def variables(self):
    """The averaged generator's variables ({"params", "batch_stats"})."""
    return self._variables

  def count(self, batch_size: int) -> int:
    return min(batch_size, max(1, round(self.fraction * batch_size)))

  def draw(self, variables, key, n: int):
    """(images [n, H, W, C] in [-1, 1], labels [n]) from the generator."""
    task = self.task
    z_key, label_key = jax.random.split(key)
    labels = jax.random.randint(label_key, (n,), 0, self.num_classes, dtype=jnp.int32)
    z = flat_random.normal(z_key, (n, task.latent_dim))
    images = apply_model(task.generator, variables["params"], variables["batch_stats"], z,
                         train=False, labels=labels)[0]
    return jax.lax.stop_gradient(images), labels


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam or SGD with momentum, with an optional linear warm-up and a cosine
  decay to 0 over num_train_steps, and optional decoupled weight decay."""
  steps, warmup = config.num_train_steps, config.warmup_steps
  lr = config.learning_rate
  if config.schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(0.0 if warmup else lr, lr, warmup,
                                                  max(steps, warmup + 1))
  elif config.schedule == "constant":
    schedule = (optax.linear_schedule(0.0, lr, warmup) if warmup else optax.constant_schedule(lr))
  else:
    raise ValueError(f"Unknown config.schedule {config.schedule!r}; use one of "
                     f"{', '.join(SCHEDULES)}.")
  wd = config.weight_decay
  if config.optimizer == "adam":
    return optax.adamw(schedule, weight_decay=wd) if wd else optax.adam(schedule)
  if config.optimizer == "sgd":
    sgd = optax.sgd(schedule, momentum=config.momentum, nesterov=True)
    return optax.chain(optax.add_decayed_weights(wd), sgd) if wd else sgd
  raise ValueError(f"Unknown config.optimizer {config.optimizer!r}; use one of "
                   f"{', '.join(OPTIMIZERS)}.")


def classification_report(confusion: np.ndarray, class_names=None) -> dict:
  """confusion[true, predicted] counts -> accuracy, per-class precision,
  recall, F1 and support, and their macro averages (a class never predicted
  has precision 0; one absent from the labels is left out of the averages);
  with `class_names`, each class's entry carries its `name`."""
  confusion = np.asarray(confusion, np.float64)
  tp = np.diag(confusion)
  predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
  precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
  recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
  present = support > 0
  return {
      "accuracy": float(tp.sum() / max(confusion.sum(), 1.0)),
      "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
      "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
      "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
      "per_class": [{"class": i, **({"name": class_names[i]} if class_names else {}),
                     "precision": float(p), "recall": float(r), "f1": float(f),
                     "support": int(s)}
                    for i, (p, r, f, s) in enumerate(zip(precision, recall, f1, support))],
  }


def shift_images(x: jax.Array, dy: int, dx: int) -> jax.Array:
  """Images [B, H, W, C] in [-1, 1] moved down by dy and right by dx pixels
  (negative: up, left), the uncovered border black (-1)."""
  p = max(abs(dy), abs(dx))
  h, w = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=-1.0)
  return padded[:, p - dy:p - dy + h, p - dx:p - dx + w]


class ClassifierTask:
  """Trains one of `jaxgan.models.classifiers` with softmax cross-entropy
  (`generated`: the `GeneratedData` of `config.generated_data`, built by
  `jaxgan.runs`, or None)."""

  def __init__(self, config, image_shape: tuple[int, int, int], num_classes: int,
               generated: GeneratedData | None = None, class_names=None):
    if num_classes < 2:
      raise ValueError(f"Dataset {config.dataset!r} has {num_classes} classes; a classifier "
                       "needs labelled data with at least 2 (folder: datasets need one "
                       "subfolder per class).")
    self.config = config
    self.image_shape = tuple(image_shape)
    self.num_classes = num_classes
    self.class_names = tuple(class_names) if class_names else None  # label order
    self.model = make_classifier(config.model, num_classes)
    self.generated = generated
    self.tx = make_optimizer(config)
    self.label_smoothing = float(provenance.added_field(config, "label_smoothing"))
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f"config.label_smoothing must be in [0, 1), got {self.label_smoothing}.")
    self.flip_tta = bool(provenance.added_field(config, "eval_flip_tta"))
    self.shift_tta = int(provenance.added_field(config, "eval_shift_tta"))
    if self.shift_tta < 0:
      raise ValueError(f"config.eval_shift_tta must be >= 0 (pixels; 0: off), got "
                       f"{self.shift_tta}.")
    self.images_per_step = config.batch_size
    self.batches_per_step = 1
    self.progress_keys = ("loss", "accuracy")

  def init_state(self, key: jax.Array) -> ClassifierState:
    init_key, state_key = jax.random.split(key)
    variables = self.model.init(init_key, jnp.zeros((1, *self.image_shape)), train=False)
    params = variables["params"]
    fields = dict(step=jnp.zeros((), jnp.int32), params=params,
                  batch_stats=variables.get("batch_stats", {}), opt_state=self.tx.init(params),
                  key=state_key)
    if self.generated is not None:
      return GeneratedDataState(**fields, generator=self.generated.variables())
    return ClassifierState(**fields)

  def apply(self, state: ClassifierState, x: jax.Array, return_features: bool = False):
    """Inference: logits (and penultimate features) with running statistics."""
    return apply_model(self.model, state.params, state.batch_stats, x, train=False,
                       return_features=return_features)[0]

  def _mix_generated(self, state, batch: dict, key) -> tuple[jax.Array, jax.Array]:
    """The batch's (images, labels), the first `generated.count(B)` of them
    replaced by the generator's samples when training on generated data."""
    images, labels = batch["image"], batch["label"]
    if self.generated is None:
      return images, labels
    n = self.generated.count(images.shape[0])
    fake, fake_labels = self.generated.draw(state.generator,
                                            jax.random.fold_in(key, _GENERATED_STREAM), n)
    return (jnp.concatenate([fake, images[n:]]), jnp.concatenate([fake_labels, labels[n:]]))

  def _loss(self, logits, labels):
    """Cross-entropy against the labels, smoothed by `label_smoothing`."""
    if not self.label_smoothing:
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, self.num_classes), self.label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)

  def train_step(self, state: ClassifierState, batch: dict):
    key = jax.random.fold_in(state.key, state.step)
    images, labels = self._mix_generated(state, batch, key)

    def loss_fn(params):
      logits, stats = apply_model(self.model, params, state.batch_stats, images,
                                  train=True, rngs={"dropout": key})
      loss = self._loss(logits, labels).mean()
      return loss, (logits, stats)

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    params, opt_state = apply_gradients(self.tx, state.params, state.opt_state, grads)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
               "finite": jnp.isfinite(loss).astype(jnp.float32)}
    return state.replace(step=state.step + 1, params=params, batch_stats=stats,
                         opt_state=opt_state), metrics

  def eval_step(self, state: ClassifierState, batch: dict, batch_index: jax.Array) -> dict:
    mask, labels = batch["mask"], batch["label"]
    views = self.tta_views(batch["image"])
    logits = self.apply(state, jnp.concatenate(views) if len(views) > 1 else views[0])
    if len(views) > 1:  # the mean of the views' probabilities, all views in one forward pass
      probs = jax.nn.softmax(logits).reshape(len(views), -1, logits.shape[-1])
      logits = jnp.log(jnp.mean(probs, axis=0))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    predicted = jnp.argmax(logits, -1)
    one_hot = lambda v: jax.nn.one_hot(v, self.num_classes) * mask[:, None]
    confusion = jnp.einsum("bi,bj->ij", one_hot(labels), jax.nn.one_hot(predicted,
                                                                          self.num_classes))
    return {"loss": jnp.sum(loss * mask), "confusion": confusion, "count": jnp.sum(mask)}

  def tta_views(self, x: jax.Array) -> list[jax.Array]:
    """The images evaluation averages over, `x` first: with `eval_flip_tta`
    its mirror image too, and with `eval_shift_tta` = s each of those moved
    by (s, s) and (-s, -s) pixels, the uncovered border black as in the
    training crops."""
    views = [x, x[:, :, ::-1]] if self.flip_tta else [x]
    s = self.shift_tta
    if s:
      views += [shift_images(v, d * s, d * s) for v in views for d in (1, -1)]
    return views

  def summarize_eval(self, totals: dict, step: int, outdir: str | None) -> dict:
    """Scalars for metrics.jsonl (accuracy, loss, macro precision / recall /
    F1); with `outdir`, also eval/report_step_<step>.json (per class) and
    eval/confusion_step_<step>.png."""
    report = classification_report(totals["confusion"], self.class_names)
    scalars = {"accuracy": report["accuracy"],
               "loss": float(totals["loss"]) / max(float(totals["count"]), 1.0),
               **{k: report[k] for k in ("macro_precision", "macro_recall", "macro_f1")}}
    if outdir is not None:
      os.makedirs(os.path.join(outdir, "eval"), exist_ok=True)
      path = os.path.join(outdir, "eval", f"report_step_{step:07d}.json")
      with open(path + ".tmp", "w") as f:
        json.dump({"step": step, **report,
                   "confusion": np.asarray(totals["confusion"]).astype(int).tolist()}, f,
                  indent=1)
      os.replace(path + ".tmp", path)
      images.save_confusion_matrix(np.asarray(totals["confusion"]),
                                   os.path.join(outdir, "eval", f"confusion_step_{step:07d}.png"),
                                   class_names=self.class_names)
    return scalars

  def sample_images(self, state: ClassifierState) -> dict:
    """A classifier draws no samples; its figure is the confusion matrix."""
    return {}
