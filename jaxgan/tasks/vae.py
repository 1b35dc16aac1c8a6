"""VAE train state and step functions: the ELBO, and the importance-weighted
estimate of -log p(x) (Burda et al. 2015) for evaluation.

All figures are in nats per image (and bits per dimension for the
discretized likelihoods):
  rec_nll  = -E_q log p(x|z)            (one posterior draw)
  kl       = KL(q(z|x) || N(0, I))       (analytic)
  neg_elbo = rec_nll + kl >= -log p(x)
  nll      = -log (1/k sum_i p(x, z_i) / q(z_i|x)),  z_i ~ q(z|x): the IWAE bound
             with k = num_importance_samples; k = 1 is a one-sample estimate
             of the ELBO, and it tightens towards -log p(x) as k grows.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import flat_random, likelihoods, provenance
from jaxgan.models.registry import make_vae
from jaxgan.tasks.base import apply_gradients, per_example_means

_EVAL_STREAM = 2**32 - 1
BINARIZATIONS = ("dynamic", "threshold", "none")
# Decoder outputs held at once by the importance-sampling loop, in elements.
_IWAE_BUDGET = 2**22


@flax.struct.dataclass
class VAEState:
  step: jax.Array  # int32 scalar: completed steps
  params: Any
  opt_state: Any
  key: jax.Array  # raw PRNG key; step keys are fold_in(key, step)


def _chunk_size(k: int, per_sample: int) -> int:
  """The largest divisor of k whose chunk of decoder outputs fits the budget."""
  limit = max(1, _IWAE_BUDGET // max(per_sample, 1))
  return max(d for d in range(1, min(k, limit) + 1) if k % d == 0)


SCHEDULES = ("constant", "cosine")


def _schedule(config):
  """Adam's learning rate: constant, or cosine-decayed to 0 over the run."""
  schedule = provenance.added_field(config, "schedule")
  if schedule == "constant":
    return config.learning_rate
  if schedule == "cosine":
    return optax.cosine_decay_schedule(config.learning_rate, max(config.num_train_steps, 1))
  raise ValueError(f"Unknown config.schedule {schedule!r}; use one of {', '.join(SCHEDULES)}.")


class VAETask:
  """A VAE trained by maximising the (beta-weighted, warmed-up) ELBO with Adam."""

  def __init__(self, config, image_shape: tuple[int, int, int], examples: np.ndarray):
    """examples: fixed real images in [-1, 1] for the reconstruction and
    interpolation figures (e.g. the first ones of the eval split)."""
    self.config = config
    self.image_shape = tuple(image_shape)
    self.likelihood = config.likelihood
    self.binarization = config.binarization
    if self.binarization not in BINARIZATIONS:
      raise ValueError(f"Unknown config.binarization {self.binarization!r}; use one of "
                       f"{', '.join(BINARIZATIONS)}.")
    channels = self.image_shape[-1]
    self.model = make_vae(config.model, self.image_shape, config.latent_dim,
                          likelihoods.decoder_channels(self.likelihood, channels),
                          config.base_features,
                          **dict(provenance.added_field(config, "model_options")))
    self.latent_dim = config.latent_dim
    self.beta = float(config.beta)
    self.kl_warmup_steps = int(config.kl_warmup_steps)
    self.free_bits = float(provenance.added_field(config, "free_bits"))
    if not self.free_bits >= 0.0:
      raise ValueError(f"config.free_bits must be >= 0 nats per latent dimension (0 is off); "
                       f"got {config.free_bits}.")
    self.num_importance_samples = int(config.num_importance_samples)
    if self.num_importance_samples < 1:
      raise ValueError("config.num_importance_samples must be >= 1 (1 gives the ELBO).")
    self.tx = optax.adam(_schedule(config))
    self.images_per_step = config.batch_size
    self.batches_per_step = 1
    self.progress_keys = ("neg_elbo", "kl")
    self.num_dims = int(np.prod(self.image_shape))
    self.prior_z = flat_random.normal(jax.random.PRNGKey(config.seed + 1),
                                      (config.num_sample_images, self.latent_dim))
    self.examples = jnp.asarray(examples[:32], jnp.float32)
    self._figures = jax.jit(self._make_figures)

  # -- data ---------------------------------------------------------------------
  def inputs(self, images: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pipeline images in [-1, 1] -> (encoder input, likelihood target).

    Bernoulli: the target is the pixel intensity p in [0, 1], binarized per
    `binarization` (`dynamic`: x ~ Bernoulli(p), fresh for every batch;
    `threshold`: p > 0.5; `none`: p itself, for which the Bernoulli "likelihood"
    is a cross-entropy, not a normalized density). Discretized likelihoods:
    the image snapped to its 8-bit bins. The encoder sees the target in [-1, 1].
    """
    if self.likelihood != "bernoulli":
      x = jnp.round((images + 1.0) * 127.5) / 127.5 - 1.0
      return x, x
    p = jnp.clip((images + 1.0) / 2.0, 0.0, 1.0)
    if self.binarization == "dynamic":
      p = flat_random.bernoulli(key, p).astype(jnp.float32)
    elif self.binarization == "threshold":
      p = (p > 0.5).astype(jnp.float32)
    return 2.0 * p - 1.0, p

  # -- state ---------------------------------------------------------------------
  def init_state(self, key: jax.Array) -> VAEState:
    init_key, noise_key, state_key = jax.random.split(key, 3)
    x = jnp.zeros((1, *self.image_shape))
    params = self.model.init(init_key, x, noise_key, train=False)["params"]
    return VAEState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=self.tx.init(params), key=state_key)

  def _elbo_terms(self, params, x_in, target, key, train: bool, per_dim: bool = False):
    """Per-example (log p(x|z) for one z ~ q(z|x), analytic KL); with
    per_dim, the KL of each latent dimension, shape (batch, latent_dim)."""
    out, mean, logvar, _ = self.model.apply({"params": params}, x_in, key, train=train)
    rec = likelihoods.log_prob(self.likelihood, out, target)
    kl = likelihoods.gaussian_kl_per_dim(mean, logvar)
    return rec, (kl if per_dim else jnp.sum(kl, axis=-1))

  def free_bits_kl(self, kl_dims: jax.Array) -> jax.Array:
    """The KL term of the loss under free bits, from per-dimension KLs of
    shape (batch, latent): sum_j max(lambda, mean over the batch of KL_j),
    lambda = free_bits (Kingma et al. 2016, one group per latent dimension).
    A dimension whose average KL is below lambda nats costs lambda and gets
    no gradient pulling its posterior to the prior, so the encoder can put
    that much information there for free."""
    return jnp.sum(jnp.maximum(self.free_bits, jnp.mean(kl_dims, axis=0)))

  def kl_weight(self, step: jax.Array) -> jax.Array:
    """beta, ramped linearly from 0 over the first kl_warmup_steps steps."""
    if self.kl_warmup_steps <= 0:
      return jnp.float32(self.beta)
    ramp = jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / self.kl_warmup_steps)
    return self.beta * ramp

  def train_step(self, state: VAEState, batch: dict) -> tuple[VAEState, dict]:
    key = jax.random.fold_in(state.key, state.step)
    data_key, noise_key = jax.random.split(key)
    x_in, target = self.inputs(batch["image"], data_key)
    weight = self.kl_weight(state.step)

    def loss_fn(params):
      rec, kl_dims = self._elbo_terms(params, x_in, target, noise_key, train=True, per_dim=True)
      if self.free_bits:
        return weight * self.free_bits_kl(kl_dims) - jnp.mean(rec), (rec, kl_dims)
      return jnp.mean(weight * jnp.sum(kl_dims, axis=-1) - rec), (rec, kl_dims)

    (loss, (rec, kl_dims)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    params, opt_state = apply_gradients(self.tx, state.params, state.opt_state, grads)
    kl = jnp.sum(kl_dims, axis=-1)
    metrics = {"loss": loss, "neg_elbo": jnp.mean(kl - rec), "rec_nll": -jnp.mean(rec),
               "kl": jnp.mean(kl), "kl_weight": weight}
    if self.free_bits:  # the share of latent dimensions held at the floor
      metrics["kl_floored"] = jnp.mean(jnp.mean(kl_dims, axis=0) < self.free_bits)
    if self.likelihood != "bernoulli":
      metrics["neg_elbo_bpd"] = metrics["neg_elbo"] / (self.num_dims * math.log(2))
    metrics["finite"] = jnp.isfinite(loss).astype(jnp.float32)
    return VAEState(step=state.step + 1, params=params, opt_state=opt_state,
                    key=state.key), metrics

  # -- evaluation -----------------------------------------------------------------
  def importance_weighted_nll(self, params, x_in: jax.Array, target: jax.Array,
                              key: jax.Array, k: int) -> jax.Array:
    """Per-example -log (1/k sum_i p(x|z_i) p(z_i) / q(z_i|x)), z_i ~ q(z|x),
    with the k samples drawn and decoded in chunks (memory stays bounded)."""
    mean, logvar = self.model.apply({"params": params}, x_in, method="encode")
    batch = x_in.shape[0]
    chunk = _chunk_size(k, batch * self.num_dims * 2)
    tile = lambda a: jnp.broadcast_to(a[None], (chunk, *a.shape)).reshape(
        (chunk * batch, *a.shape[1:]))
    targets, inputs = tile(target), tile(x_in)

    def log_weights(indices):
      # Sample i's noise comes from fold_in(key, i): the estimate does not
      # depend on how the k samples are chunked.
      eps = jax.vmap(lambda i: flat_random.normal(jax.random.fold_in(key, i),
                                                  (batch, self.latent_dim)))(indices)
      z = mean + jnp.exp(0.5 * logvar) * eps
      out = self.model.apply({"params": params}, z.reshape(chunk * batch, -1), inputs,
                             method="decode")
      log_px = likelihoods.log_prob(self.likelihood, out, targets).reshape(chunk, batch)
      zeros = jnp.zeros_like(mean)
      log_pz = likelihoods.diag_gaussian_log_prob(z, zeros, zeros)
      log_qz = likelihoods.diag_gaussian_log_prob(z, mean, logvar)
      return log_px + log_pz - log_qz

    def body(acc, indices):
      return jnp.logaddexp(acc, jax.nn.logsumexp(log_weights(indices), axis=0)), None

    indices = jnp.arange(k, dtype=jnp.uint32).reshape(k // chunk, chunk)
    total, _ = jax.lax.scan(body, jnp.full((batch,), -jnp.inf), indices)
    return -(total - math.log(k))

  def eval_step(self, state: VAEState, batch: dict, batch_index: jax.Array) -> dict:
    """Sums over the batch's real examples: neg_elbo, rec_nll, kl (nats per
    image), nll (the IWAE bound with num_importance_samples), and bits/dim for
    the discretized likelihoods. The eval noise and binarization depend only
    on the batch index, so successive evaluations see the same data."""
    mask = batch["mask"]
    key = jax.random.fold_in(jax.random.fold_in(state.key, _EVAL_STREAM), batch_index)
    data_key, elbo_key, iw_key = jax.random.split(key, 3)
    x_in, target = self.inputs(batch["image"], data_key)
    rec, kl = self._elbo_terms(state.params, x_in, target, elbo_key, train=False)
    nll = self.importance_weighted_nll(state.params, x_in, target, iw_key,
                                       self.num_importance_samples)
    sums = {"neg_elbo": jnp.sum((kl - rec) * mask), "rec_nll": jnp.sum(-rec * mask),
            "kl": jnp.sum(kl * mask), "nll": jnp.sum(nll * mask), "count": jnp.sum(mask)}
    if self.likelihood != "bernoulli":
      per_dim = self.num_dims * math.log(2)
      sums["neg_elbo_bpd"] = sums["neg_elbo"] / per_dim
      sums["nll_bpd"] = sums["nll"] / per_dim
    return sums

  def summarize_eval(self, totals: dict, step: int, outdir: str | None) -> dict:
    """Per-image averages, and `nll_k`: the importance samples behind `nll`."""
    return {**per_example_means(totals), "nll_k": self.num_importance_samples}

  # -- drawing images ------------------------------------------------------------------
  def generate(self, params, z: jax.Array, key: jax.Array) -> jax.Array:
    """Images in [-1, 1] for latents z [N, latent_dim]: the likelihood's
    location (its mode) for a factorised decoder; for an autoregressive one
    a draw, pixel by pixel in raster order, each from p(x_i | z, x_<i) given
    the pixels drawn before it (one pass of the head per pixel)."""
    apply = functools.partial(self.model.apply, {"params": params})
    if not self.model.autoregressive:
      return likelihoods.mode(self.likelihood, apply(z, method="decode"))
    features = apply(z, method="features")
    height, width, channels = self.image_shape
    # Pixel (i, j) depends on rows i - rows_above ... i only: each pass runs
    # the head on that strip (clamped inside the image, so its padding is the
    # full image's), not on the whole image.
    above = self.model.head.rows_above
    rows = min(above + 1, height)
    n = z.shape[0]

    def draw(t, x):
      i, j = t // width, t % width
      start = jnp.clip(i - above, 0, height - rows)
      strip = lambda a: jax.lax.dynamic_slice(a, (0, start, 0, 0), (n, rows, width, a.shape[-1]))
      out = apply(strip(features), strip(x), method="head_params")
      pixel = jax.lax.dynamic_slice(out, (0, i - start, j, 0), (n, 1, 1, out.shape[-1]))
      value = likelihoods.sample(self.likelihood, pixel, jax.random.fold_in(key, t))
      return jax.lax.dynamic_update_slice(x, value.astype(x.dtype), (0, i, j, 0))

    x = jnp.zeros((n, height, width, channels), jnp.float32)
    return jax.lax.fori_loop(0, height * width, draw, x)

  # -- figures -----------------------------------------------------------------------
  def _make_figures(self, params) -> dict:
    # Fixed examples as the model sees them (one fixed binarization).
    x_in, _ = self.inputs(self.examples, jax.random.PRNGKey(0))
    mean, _ = self.model.apply({"params": params}, x_in, method="encode")
    n = (x_in.shape[0] // 4) * 4  # rows of 4 input | reconstruction pairs
    rows = min(4, x_in.shape[0] // 2)  # strips between examples 2i and 2i+1
    a, b = mean[0:2 * rows:2], mean[1:2 * rows:2]
    t = jnp.linspace(0.0, 1.0, 8)[None, :, None]
    between = ((1.0 - t) * a[:, None] + t * b[:, None]).reshape(rows * 8, self.latent_dim)
    # One `generate` for all figures: one pixel loop for an autoregressive decoder.
    images = self.generate(params, jnp.concatenate([self.prior_z, mean[:n], between]),
                           jax.random.PRNGKey(1))
    samples, recon, mids = jnp.split(images, [len(self.prior_z), len(self.prior_z) + n])
    figures = {"samples": samples}
    if n:
      pairs = jnp.stack([x_in[:n], recon], axis=1)  # [n, 2, H, W, C]
      figures["reconstructions"] = pairs.reshape((n // 4, 8, *x_in.shape[1:]))
    if rows:  # input, 8 decodes, input
      mids = mids.reshape((rows, 8, *x_in.shape[1:]))
      figures["interpolation"] = jnp.concatenate(
          [x_in[0:2 * rows:2][:, None], mids, x_in[1:2 * rows:2][:, None]], axis=1)
    return figures

  def sample_images(self, state: VAEState) -> dict[str, np.ndarray]:
    """Prior samples; input | reconstruction pairs; latent interpolation strips."""
    return {k: np.asarray(v) for k, v in jax.device_get(self._figures(state.params)).items()}
