"""Super-resolution train state and step functions.

A batch's images are the high-resolution targets; the inputs are made from
them on the device by area down-sampling by `scale`. Trained with L1 (or
MSE) on [-1, 1] images. Evaluation sums PSNR and SSIM (images in [0, 1],
`jaxgan.restoration.metrics`) of the network's output and of bicubic
up-sampling, the baseline every super-resolution paper reports.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan.models.superres import SRResNet, area_downsample, bicubic_upsample
from jaxgan.restoration import metrics
from jaxgan.tasks.base import apply_gradients, per_example_means

LOSSES = ("l1", "mse")


@flax.struct.dataclass
class SRState:
  step: jax.Array
  params: Any
  opt_state: Any
  key: jax.Array


class SuperResolutionTask:
  def __init__(self, config, image_shape: tuple[int, int, int], examples: np.ndarray):
    """examples: fixed high-resolution images in [-1, 1] for the figures."""
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

  def init_state(self, key: jax.Array) -> SRState:
    init_key, state_key = jax.random.split(key)
    size = self.image_shape[0] // self.scale
    params = self.model.init(init_key, jnp.zeros((1, size, size, self.image_shape[-1])))["params"]
    return SRState(step=jnp.zeros((), jnp.int32), params=params,
                   opt_state=self.tx.init(params), key=state_key)

  def upscale(self, state: SRState, lr: jax.Array) -> jax.Array:
    """Low-resolution images in [-1, 1] -> the network's, clipped to [-1, 1]."""
    return jnp.clip(self.model.apply({"params": state.params}, lr), -1.0, 1.0)

  def train_step(self, state: SRState, batch: dict):
    hr = batch["image"]
    lr = area_downsample(hr, self.scale)

    def loss_fn(params):
      sr = self.model.apply({"params": params}, lr, train=True)
      err = sr - hr
      loss = jnp.mean(jnp.abs(err)) if self.config.loss == "l1" else jnp.mean(err * err)
      return loss, sr

    (loss, sr), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    params, opt_state = apply_gradients(self.tx, state.params, state.opt_state, grads)
    mse01 = jnp.mean(jnp.square((jnp.clip(sr, -1, 1) - hr) / 2.0))
    out = {"loss": loss, "psnr": -10.0 * jnp.log10(mse01),
           "finite": jnp.isfinite(loss).astype(jnp.float32)}
    return SRState(step=state.step + 1, params=params, opt_state=opt_state, key=state.key), out

  def eval_step(self, state: SRState, batch: dict, batch_index: jax.Array) -> dict:
    hr, mask = batch["image"], batch["mask"]
    lr = area_downsample(hr, self.scale)
    to01 = lambda x: (jnp.clip(x, -1.0, 1.0) + 1.0) / 2.0
    sr, bicubic = to01(self.upscale(state, lr)), to01(bicubic_upsample(lr, self.scale))
    target = to01(hr)
    sums = {"count": jnp.sum(mask)}
    for name, x in (("", sr), ("_bicubic", bicubic)):
      sums[f"psnr{name}"] = jnp.sum(metrics.psnr(x, target) * mask)
      sums[f"ssim{name}"] = jnp.sum(metrics.ssim(x, target) * mask)
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

