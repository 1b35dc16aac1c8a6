"""Super-resolution train state and step functions.

A batch's images are the high-resolution targets; the inputs are made from
them on the device by area down-sampling by `scale`. Trained with L1 (or
MSE) on [-1, 1] images, optionally plus
- `perceptual_weight` x a feature loss: the mean squared difference of a
  trained classifier's penultimate features (`perceptual_classifier`, an
  `experiments.classifier` run on the same images) between SR and HR images
  (Johnson et al. 2016 / SRGAN's content loss, with the project's own network
  in place of VGG);
- `adversarial_weight` x the generator loss of a GAN objective (`gan_loss`,
  `jaxgan.gan.objectives`) against the discriminator of GAN architecture
  `discriminator` (`jaxgan.models.registry`; default dcgan) for the image size
  trained alongside on HR (real) vs SR (fake) images (SRGAN, Ledig et al.
  2017). Evaluation sums PSNR and SSIM (images in [0, 1],
`jaxgan.restoration.quality`) of the network's output and of bicubic
up-sampling, the baseline every super-resolution paper reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import provenance
from jaxgan.gan import objectives
from jaxgan.models.registry import make_gan
from jaxgan.models.superres import SRResNet, area_downsample, bicubic_upsample
from jaxgan.restoration import quality
from jaxgan.tasks.base import apply_gradients, apply_model, per_example_means

LOSSES = ("l1", "mse")


@flax.struct.dataclass
class SRState:
  step: jax.Array
  params: Any
  opt_state: Any
  key: jax.Array
  # The adversarial loss's discriminator: (params, batch_stats, opt_state),
  # or None without one.
  d: Any = None


class SuperResolutionTask:
  def __init__(self, config, image_shape: tuple[int, int, int], examples: np.ndarray,
               perceptual=None):
    """examples: fixed high-resolution images in [-1, 1] for the figures;
    perceptual: the restored `perceptual_classifier` run (a `jaxgan.runs.Run`
    of a classifier) when `perceptual_weight` > 0."""
    size, _, channels = image_shape
    scale = config.scale
    if not isinstance(scale, int) or scale < 2 or scale & (scale - 1):
      raise ValueError(f"config.scale must be a power of 2 (2, 4, 8), got {scale!r}.")
    if size % scale:
      raise ValueError(f"config.scale={scale} does not divide image_size={size}; the "
                       f"low-resolution input would be {size / scale:g} pixels wide.")
    if config.loss not in LOSSES:
      raise ValueError(f"Unknown config.loss {config.loss!r}; use one of {', '.join(LOSSES)}.")
    self.config, self.scale, self.image_shape = config, scale, tuple(image_shape)
    self.model = SRResNet(scale=scale, channels=channels, features=config.features,
                          num_blocks=config.num_blocks)
    # A constant rate (as SRResNet): a schedule over num_train_steps would
    # change when a resume raises num_train_steps, which the config allows.
    self.tx = optax.adam(config.learning_rate)
    self.images_per_step, self.batches_per_step = config.batch_size, 1
    self.progress_keys = ("loss", "psnr")
    self.examples = jnp.asarray(examples[:8])
    self._figures = jax.jit(self._strips)
    self.perceptual_weight = float(config.perceptual_weight)
    self._features = None
    if self.perceptual_weight:
      if perceptual is None:
        raise ValueError("config.perceptual_weight > 0 needs config.perceptual_classifier (an "
                         "experiments.classifier run directory on the same images).")
      self._features = _classifier_features(perceptual, self.image_shape)
    self.adversarial_weight = float(config.adversarial_weight)
    if self.adversarial_weight:
      self.objective = objectives.get(config.gan_loss)
      self.discriminator = make_gan(provenance.added_field(config, "discriminator"), size,
                                    channels)[1]
      self.d_tx = optax.adam(config.d_learning_rate, b1=0.5, b2=0.999)

  def init_state(self, key: jax.Array) -> SRState:
    init_key, state_key = jax.random.split(key)
    size = self.image_shape[0] // self.scale
    params = self.model.init(init_key, jnp.zeros((1, size, size, self.image_shape[-1])))["params"]
    d = None
    if self.adversarial_weight:
      variables = self.discriminator.init(jax.random.fold_in(init_key, 1),
                                          jnp.zeros((1, *self.image_shape)), train=False)
      d = (variables["params"], variables.get("batch_stats", {}),
           self.d_tx.init(variables["params"]))
    return SRState(step=jnp.zeros((), jnp.int32), params=params,
                   opt_state=self.tx.init(params), key=state_key, d=d)

  def upscale(self, state: SRState, lr: jax.Array) -> jax.Array:
    """Low-resolution images in [-1, 1] -> the network's, clipped to [-1, 1]."""
    return jnp.clip(self.model.apply({"params": state.params}, lr), -1.0, 1.0)

  def _d(self, params, stats, x, key):
    return apply_model(self.discriminator, params, stats, x, train=True, rngs={"dropout": key})

  def train_step(self, state: SRState, batch: dict):
    """One forward pass of the network, its VJP kept: the discriminator (with
    the adversarial loss) updates on HR vs the (constant) SR images, then
    the network's losses are differentiated with respect to its output and
    back-propagated through that VJP."""
    hr = batch["image"]
    lr = area_downsample(hr, self.scale)
    key = jax.random.fold_in(state.key, state.step)
    k_real, k_fake, k_g = jax.random.split(key, 3)
    sr, vjp = jax.vjp(lambda p: self.model.apply({"params": p}, lr, train=True), state.params)
    out, d = {}, state.d
    if self.adversarial_weight:
      d_params, d_stats, d_opt = state.d

      def d_loss_fn(p):
        real_out, stats = self._d(p, d_stats, hr, k_real)
        fake_out, stats = self._d(p, stats, sr, k_fake)
        return self.objective(real_out, fake_out).d_loss, (stats, real_out)

      (d_loss, (d_stats, real_out)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
          d_params)
      d_params, d_opt = apply_gradients(self.d_tx, d_params, d_opt, grads)
      d, out["d_loss"] = (d_params, d_stats, d_opt), d_loss
    hr_features = self._features(hr) if self._features is not None else None

    def loss_fn(sr):
      err = sr - hr
      pixel = jnp.mean(jnp.abs(err)) if self.config.loss == "l1" else jnp.mean(err * err)
      loss, parts = pixel, {"pixel_loss": pixel}
      if hr_features is not None:
        parts["perceptual_loss"] = jnp.mean(jnp.square(self._features(sr) - hr_features))
        loss = loss + self.perceptual_weight * parts["perceptual_loss"]
      if self.adversarial_weight:
        fake_out, _ = self._d(d[0], d[1], sr, k_g)
        parts["adversarial_loss"] = self.objective(real_out, fake_out).g_loss
        loss = loss + self.adversarial_weight * parts["adversarial_loss"]
      return loss, parts

    (loss, parts), sr_grad = jax.value_and_grad(loss_fn, has_aux=True)(sr)
    (grads,) = vjp(sr_grad)
    params, opt_state = apply_gradients(self.tx, state.params, state.opt_state, grads)
    mse01 = jnp.mean(jnp.square((jnp.clip(sr, -1, 1) - hr) / 2.0))
    out = {"loss": loss, "psnr": -10.0 * jnp.log10(mse01), **parts, **out}
    out["finite"] = jnp.isfinite(sum(out.values())).astype(jnp.float32)
    return SRState(step=state.step + 1, params=params, opt_state=opt_state, key=state.key,
                   d=d), out

  def eval_step(self, state: SRState, batch: dict, batch_index: jax.Array) -> dict:
    hr, mask = batch["image"], batch["mask"]
    lr = area_downsample(hr, self.scale)
    to01 = lambda x: (jnp.clip(x, -1.0, 1.0) + 1.0) / 2.0
    sr, bicubic = to01(self.upscale(state, lr)), to01(bicubic_upsample(lr, self.scale))
    target = to01(hr)
    sums = {"count": jnp.sum(mask)}
    # (where, not a product: a padding row that bicubic up-sampling restores
    # exactly has an infinite PSNR, and inf * 0 is NaN)
    kept = lambda v: jnp.sum(jnp.where(mask > 0, v, 0.0))
    for name, x in (("", sr), ("_bicubic", bicubic)):
      sums[f"psnr{name}"] = kept(quality.psnr(x, target))
      sums[f"ssim{name}"] = kept(quality.ssim(x, target))
    return sums

  def summarize_eval(self, totals: dict, step: int, outdir: str | None) -> dict:
    return per_example_means(totals)

  def _strips(self, state: SRState) -> jax.Array:
    hr = self.examples
    lr = area_downsample(hr, self.scale)
    nearest = jnp.repeat(jnp.repeat(lr, self.scale, axis=1), self.scale, axis=2)
    cols = [nearest, jnp.clip(bicubic_upsample(lr, self.scale), -1, 1),
            self.upscale(state, lr), hr]
    return jnp.stack(cols, axis=1)  # [rows, 4, H, W, C]: LR | bicubic | SR | HR

  def sample_images(self, state: SRState) -> dict:
    """Strips LR (nearest) | bicubic | SR | HR for the first eval images."""
    return {"strips": np.asarray(jax.device_get(self._figures(state)))}


def _classifier_features(run, image_shape) -> Callable:
  """x in [-1, 1] -> the penultimate features of a classifier run (its
  parameters frozen, inference mode)."""
  task, state = run.task, run.state
  if tuple(task.image_shape) != tuple(image_shape):
    raise ValueError(f"config.perceptual_classifier was trained on {task.image_shape} images; "
                     f"this task's are {tuple(image_shape)}.")
  return lambda x: task.apply(state, x, return_features=True)[1]
