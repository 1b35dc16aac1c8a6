"""GAN train state and step functions (DCGAN, non-saturating loss)."""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import flat_random, losses
from jaxgan.models.dcgan import make_dcgan

# Eval latents come from fold_in(key, _EVAL_STREAM), apart from the per-step
# keys fold_in(key, step) (steps stay far below 2**32 - 1).
_EVAL_STREAM = 2**32 - 1


@flax.struct.dataclass
class NetState:
  """One network's variables and optimizer state."""
  params: Any
  batch_stats: Any
  opt_state: Any


@flax.struct.dataclass
class GANState:
  step: jax.Array  # int32 scalar: number of completed steps
  g: NetState
  d: NetState
  key: jax.Array  # raw uint32 PRNG key; step keys are fold_in(key, step)
  # Exponential moving average of the generator's params (`ema_decay`), which
  # the sample grids use; equal to g.params when ema_decay is 0.
  g_ema: Any


def _apply(model: nn.Module, net: NetState, params, x, *, train: bool, key=None):
  """Applies `model`; returns (output, new batch_stats)."""
  variables = {"params": params}
  if net.batch_stats:
    variables["batch_stats"] = net.batch_stats
  rngs = {"dropout": key} if key is not None else {}
  if train and net.batch_stats:
    out, updates = model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
    return out, updates["batch_stats"]
  return model.apply(variables, x, train=train, rngs=rngs), net.batch_stats


def compute_dtype(config):
  """config.compute_dtype: "float32" (default) or "bfloat16" (activations and
  matmuls; parameters, optimizer states, BatchNorm statistics and losses stay
  float32)."""
  name = config.get("compute_dtype", "float32")
  if name not in ("float32", "bfloat16"):
    raise ValueError(f"config.compute_dtype must be 'float32' or 'bfloat16', got {name!r}.")
  return jnp.dtype(name)


class GANTask:
  """A DCGAN trained with Adam and the non-saturating loss.

  One step: draw z; run the generator once; update the discriminator on the
  real batch and the (stopped-gradient) fakes; then update the generator
  through the *updated* discriminator, back-propagating into the generator
  with the VJP saved from the single forward pass.
  """

  def __init__(self, config, image_shape: tuple[int, int, int]):
    self.config = config
    self.image_shape = tuple(image_shape)
    size, _, channels = self.image_shape
    self.generator, self.discriminator = make_dcgan(
        size, channels, ngf=config.get("ngf", 64), ndf=config.get("ndf", 64),
        dtype=compute_dtype(config))
    self.latent_dim = config.latent_dim
    self.ema_decay = float(config.get("ema_decay", 0.0))
    if not 0.0 <= self.ema_decay < 1.0:
      raise ValueError(f"config.ema_decay must be in [0, 1) (0 disables the "
                       f"generator average); got {self.ema_decay}.")
    make_tx = lambda: optax.adam(config.learning_rate, b1=config.beta1, b2=config.beta2)
    self.g_tx, self.d_tx = make_tx(), make_tx()
    self.images_per_step = config.batch_size
    self.progress_keys = ("d_loss", "g_loss")
    # A fixed latent batch, so successive sample grids show the same z.
    self.sample_z = flat_random.normal(jax.random.PRNGKey(config.seed + 1),
                                       (config.num_sample_images, self.latent_dim))
    self._fid_reference = self._fid_extractor = None  # built at the first evaluation
    self.sample_jit = jax.jit(self.sample, static_argnames="average")
    self._sample_fixed = jax.jit(lambda state: {
        "samples": self.sample(state, self.sample_z),
        "live": self.sample(state, self.sample_z, average=False)})

  # -- state ---------------------------------------------------------------
  def init_state(self, key: jax.Array) -> GANState:
    g_key, d_key, state_key = jax.random.split(key, 3)
    z = jnp.zeros((1, self.latent_dim))
    x = jnp.zeros((1, *self.image_shape))
    g_vars = self.generator.init(g_key, z, train=False)
    d_vars = self.discriminator.init(d_key, x, train=False)

    def net(variables, tx):
      return NetState(params=variables["params"],
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(variables["params"]))

    g = net(g_vars, self.g_tx)
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=net(d_vars, self.d_tx),
                    key=state_key, g_ema=g.params)

  # -- training --------------------------------------------------------------
  def train_step(self, state: GANState, batch: dict) -> tuple[GANState, dict]:
    real = batch["image"]
    key = jax.random.fold_in(state.key, state.step)
    z_key, drop_real, drop_fake, drop_g = jax.random.split(key, 4)
    z = flat_random.normal(z_key, (real.shape[0], self.latent_dim))

    # The generator's forward pass, once; its VJP is reused for the G update.
    def generate(g_params):
      return _apply(self.generator, state.g, g_params, z, train=True)

    fake, g_vjp, g_batch_stats = jax.vjp(generate, state.g.params, has_aux=True)

    # Discriminator update on real and (constant) fake images.
    def d_loss_fn(d_params):
      real_logits, stats = _apply(self.discriminator, state.d, d_params, real,
                                  train=True, key=drop_real)
      fake_logits, stats = _apply(self.discriminator, state.d.replace(batch_stats=stats),
                                  d_params, fake, train=True, key=drop_fake)
      loss = losses.gan_discriminator_loss(real_logits, fake_logits)
      return loss, (stats, real_logits, fake_logits)

    (d_loss, (d_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(state.d.params)
    d_updates, d_opt_state = self.d_tx.update(d_grads, state.d.opt_state, state.d.params)
    d = NetState(params=optax.apply_updates(state.d.params, d_updates),
                 batch_stats=d_stats, opt_state=d_opt_state)

    # Generator update through the updated discriminator.
    def g_loss_fn(fake_images):
      logits, stats = _apply(self.discriminator, d, d.params, fake_images, train=True,
                             key=drop_g)
      return losses.gan_generator_loss(logits), (stats, logits)

    (g_loss, (d_stats, fake_logits_after)), fake_grad = jax.value_and_grad(
        g_loss_fn, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grad)
    g_updates, g_opt_state = self.g_tx.update(g_grads, state.g.opt_state, state.g.params)
    g = NetState(params=optax.apply_updates(state.g.params, g_updates),
                 batch_stats=g_batch_stats, opt_state=g_opt_state)
    d = d.replace(batch_stats=d_stats)
    g_ema = self._update_ema(state.g_ema, g.params, state.step)

    metrics = {
        "d_loss": d_loss,
        "g_loss": g_loss,
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),  # D(x)
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),  # D(G(z)) before the D update
        "d_fake_after": jnp.mean(jax.nn.sigmoid(fake_logits_after)),  # ... and after
    }
    metrics["finite"] = jnp.isfinite(d_loss + g_loss).astype(jnp.float32)
    return GANState(step=state.step + 1, g=g, d=d, key=state.key, g_ema=g_ema), metrics

  def _update_ema(self, ema, params, step):
    """ema <- decay * ema + (1 - decay) * params, with the decay warmed up as
    min(ema_decay, (1 + step) / (10 + step)) so early averages are not
    dominated by the initialisation (as tf.train.ExponentialMovingAverage
    with num_updates)."""
    if not self.ema_decay:
      return params
    t = step.astype(jnp.float32)
    decay = jnp.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)

  # -- evaluation -----------------------------------------------------------------
  def eval_step(self, state: GANState, batch: dict, batch_index: jax.Array) -> dict:
    """The discriminator on held-out real images and on fresh fakes (eval mode).

    A growing gap between `eval_d_real` and the training `d_real` shows the
    discriminator memorising the training set.
    """
    real, mask = batch["image"], batch["mask"]
    key = jax.random.fold_in(jax.random.fold_in(state.key, _EVAL_STREAM), batch_index)
    z = flat_random.normal(key, (real.shape[0], self.latent_dim))
    fake, _ = _apply(self.generator, state.g, state.g.params, z, train=False)
    real_logits, _ = _apply(self.discriminator, state.d, state.d.params, real, train=False)
    fake_logits, _ = _apply(self.discriminator, state.d, state.d.params, fake, train=False)
    d_loss = jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)
    return {
        "d_loss": jnp.sum(d_loss * mask),
        "d_real": jnp.sum(jax.nn.sigmoid(real_logits) * mask),
        "d_fake": jnp.sum(jax.nn.sigmoid(fake_logits) * mask),
        "count": jnp.sum(mask),
    }

  def sample_metrics(self, state: GANState, data) -> dict:
    """FID and KID of `num_eval_samples` samples against the eval split, in
    the features `fid_features` names: a classifier run directory, or
    "inception[:WEIGHTS]" (nothing when unset)."""
    if not self.config.get("fid_features") or not self.config.eval_split:
      return {}
    from jaxgan import evaluation, metrics
    if self._fid_reference is None:
      self._fid_extractor = evaluation.make_extractor(self.config.fid_features)
      real = data.first_images(self.config.eval_split)
      self._fid_reference = self._fid_extractor(real)[0]
    num = self.config.get("num_eval_samples", 1000)
    fake = self._fid_extractor(evaluation.generate(self, state, num, self.config.seed))[0]
    real = self._fid_reference
    kid_mean, kid_std = metrics.kernel_inception_distance(
        real, fake, num_subsets=100,
        subset_size=evaluation.kid_subset_size(len(real), len(fake)))
    return {"fid": metrics.fid_from_features(real, fake), "kid_mean": kid_mean,
            "kid_std": kid_std}

  # -- artifacts ---------------------------------------------------------------------
  def sample(self, state: GANState, z: jax.Array, average: bool = True) -> jax.Array:
    """Generator images in [-1, 1] for latents z, BatchNorm in inference mode.

    average: use the parameter average `g_ema` (the generator to judge and
    evaluate) rather than the live training parameters. The running BatchNorm
    statistics are the live network's in both cases.
    """
    params = state.g_ema if average else state.g.params
    return _apply(self.generator, state.g, params, z, train=False)[0]

  def sample_images(self, state: GANState) -> dict[str, np.ndarray]:
    """The grids the loop saves, on a fixed latent batch: "samples" from the
    averaged generator and, when averaging is on, "live" from the training one."""
    grids = jax.device_get(self._sample_fixed(state))
    if not self.ema_decay:
      del grids["live"]
    return {name: np.asarray(x) for name, x in grids.items()}
