"""Log-densities for VAEs, in nats, summed over each example's pixels.

Data conventions: Bernoulli targets are pixel intensities in [0, 1]
(binarized to {0, 1} for a true likelihood); the discretized likelihoods take
8-bit images scaled to [-1, 1] (the pipeline's range), i.e. 256 bins of width
2/255, and give the probability of the bin, so their negative log-likelihood
in bits per dimension is comparable with published figures.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from jaxgan import flat_random

LIKELIHOODS = ("bernoulli", "gaussian", "logistic", "logistic_ar")

_HALF_BIN = 1.0 / 255.0  # half the width of a bin on [-1, 1]
_MIN_LOG_SCALE = -7.0


def _sum_per_example(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def decoder_channels(likelihood: str, channels: int) -> int:
  """How many outputs per pixel the decoder needs for `likelihood`."""
  if likelihood == "bernoulli":
    return channels
  if likelihood in ("gaussian", "logistic"):
    return 2 * channels  # means and log-scales
  if likelihood == "logistic_ar":
    return 2 * channels + _num_couplings(channels)  # ... and each channel's coupling to earlier ones
  raise ValueError(f"Unknown likelihood {likelihood!r}; use one of {', '.join(LIKELIHOODS)}.")


def bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
  """sum_i x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i), per example.

  A normalized log-likelihood for binary x; for continuous x in [0, 1] it is
  the usual cross-entropy, not a normalized density.
  """
  return _sum_per_example(x * jax.nn.log_sigmoid(logits)
                          + (1.0 - x) * jax.nn.log_sigmoid(-logits))


def _discretized_log_prob(x, mean, log_scale, log_cdf, log_sf, log_pdf):
  """log P(bin of x) for a continuous distribution with location `mean` and
  scale exp(log_scale), the two edge bins taking the tails (PixelCNN++)."""
  log_scale = jnp.maximum(log_scale, _MIN_LOG_SCALE)
  inv_scale = jnp.exp(-log_scale)
  centered = x - mean
  upper = inv_scale * (centered + _HALF_BIN)
  lower = inv_scale * (centered - _HALF_BIN)
  log_cdf_upper = log_cdf(upper)  # log P(X <= x + half bin)
  log_sf_lower = log_sf(lower)  # log P(X > x - half bin)
  # log(cdf(upper) - cdf(lower)) = log_cdf(upper) + log(1 - exp(log_cdf(lower) - log_cdf(upper))),
  # computed stably; where the bin's mass underflows, use the density at the centre.
  log_cdf_lower = log_cdf(lower)
  diff = jnp.minimum(log_cdf_lower - log_cdf_upper, -1e-12)
  log_mid = log_cdf_upper + jnp.log(-jnp.expm1(diff))
  log_mid_approx = log_pdf(inv_scale * centered) - log_scale + math.log(2 * _HALF_BIN)
  log_mid = jnp.where(log_mid > -20.0, log_mid, log_mid_approx)
  return jnp.where(x < -1.0 + _HALF_BIN, log_cdf_upper,
                   jnp.where(x > 1.0 - _HALF_BIN, log_sf_lower, log_mid))


def discretized_gaussian_log_prob(params: jax.Array, x: jax.Array) -> jax.Array:
  """params [..., 2C] (means, log-std), x [..., C] in [-1, 1]: per-example
  log-probability of x's 8-bit bins under a per-pixel Gaussian."""
  mean, log_scale = jnp.split(params, 2, axis=-1)
  log_pdf = lambda t: -0.5 * t * t - 0.5 * math.log(2 * math.pi)
  return _sum_per_example(_discretized_log_prob(
      x, mean, log_scale, log_ndtr, lambda t: log_ndtr(-t), log_pdf))


def discretized_logistic_log_prob(params: jax.Array, x: jax.Array) -> jax.Array:
  """params [..., 2C] (means, log-scales), x [..., C] in [-1, 1]: per-example
  log-probability of x's 8-bit bins under a per-pixel logistic."""
  mean, log_scale = jnp.split(params, 2, axis=-1)
  log_pdf = lambda t: -t - 2.0 * jax.nn.softplus(-t)
  return _sum_per_example(_discretized_log_prob(
      x, mean, log_scale, jax.nn.log_sigmoid, lambda t: jax.nn.log_sigmoid(-t), log_pdf))


def _num_couplings(channels: int) -> int:
  return channels * (channels - 1) // 2


def _coupled_means(params: jax.Array, value):
  """(means, log-scales, values) of the channel-autoregressive logistic:
  channel c's mean is mu_c + sum_{j<c} tanh(a_cj) v_j (PixelCNN++'s linear
  coupling), where v_j = value(j, mean_j, log_scale_j) is the value channel j
  takes: the observed x_j when scoring, a draw when sampling, the mean
  clipped to [-1, 1] for display."""
  c = (math.isqrt(9 + 8 * params.shape[-1]) - 3) // 2  # solves 2c + c(c-1)/2 = outputs
  if 2 * c + _num_couplings(c) != params.shape[-1]:
    raise ValueError(f"logistic_ar needs 2C + C(C-1)/2 outputs per pixel, got {params.shape[-1]}.")
  mu, log_scale, coupling = jnp.split(params, [c, 2 * c], axis=-1)
  coupling = jnp.tanh(coupling)
  means, values, k = [], [], 0
  for i in range(c):
    m = mu[..., i]
    for j in range(i):
      m = m + coupling[..., k] * values[j]
      k += 1
    means.append(m)
    values.append(value(i, m, log_scale[..., i]))
  return jnp.stack(means, axis=-1), log_scale, jnp.stack(values, axis=-1)


def coupled_logistic_log_prob(params: jax.Array, x: jax.Array) -> jax.Array:
  """params [..., 2C + C(C-1)/2] (means, log-scales, couplings), x [..., C]
  in [-1, 1]: log p(x_1) p(x_2 | x_1) ... p(x_C | x_<C), each factor a
  discretized logistic whose mean moves linearly with the earlier channels'
  values (for RGB: green given red, blue given both)."""
  mean, log_scale, _ = _coupled_means(params, lambda i, m, s: x[..., i])
  return discretized_logistic_log_prob(jnp.concatenate([mean, log_scale], -1), x)


def log_prob(likelihood: str, params: jax.Array, x: jax.Array) -> jax.Array:
  """log p(x | decoder output `params`) per example. x: [0, 1] for
  'bernoulli', [-1, 1] for the discretized likelihoods."""
  if likelihood == "bernoulli":
    return bernoulli_log_prob(params, x)
  if likelihood == "gaussian":
    return discretized_gaussian_log_prob(params, x)
  if likelihood == "logistic":
    return discretized_logistic_log_prob(params, x)
  if likelihood == "logistic_ar":
    return coupled_logistic_log_prob(params, x)
  raise ValueError(f"Unknown likelihood {likelihood!r}; use one of {', '.join(LIKELIHOODS)}.")


def mode(likelihood: str, params: jax.Array) -> jax.Array:
  """The decoder's image for display, in [-1, 1]: Bernoulli means, or the
  location of the discretized distributions."""
  if likelihood == "bernoulli":
    return 2.0 * jax.nn.sigmoid(params) - 1.0
  if likelihood == "logistic_ar":  # each channel's location given the earlier locations
    return _coupled_means(params, lambda i, m, s: jnp.clip(m, -1.0, 1.0))[2]
  return jnp.clip(jnp.split(params, 2, axis=-1)[0], -1.0, 1.0)


def _to_bins(v: jax.Array) -> jax.Array:
  """Continuous values -> the nearest of the 256 8-bit values on [-1, 1]
  (the edge bins take the tails, as the discretized likelihoods do)."""
  return jnp.round((jnp.clip(v, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def sample(likelihood: str, params: jax.Array, key: jax.Array) -> jax.Array:
  """x ~ p(x | params), independently per pixel, in [-1, 1]: Bernoulli
  draws as -1 / 1, the discretized likelihoods on their 8-bit grid
  (`logistic_ar`: each channel drawn given the earlier channels' draws)."""
  if likelihood == "bernoulli":
    return 2.0 * flat_random.bernoulli(key, jax.nn.sigmoid(params)).astype(params.dtype) - 1.0
  tiny = 1e-6

  def logistic(key, mean, log_scale):
    u = flat_random.uniform(key, mean.shape, mean.dtype, tiny, 1.0 - tiny)
    scale = jnp.exp(jnp.maximum(log_scale, _MIN_LOG_SCALE))
    return _to_bins(mean + scale * (jnp.log(u) - jnp.log1p(-u)))

  if likelihood == "logistic_ar":
    keys = jax.random.split(key, params.shape[-1])
    return _coupled_means(params, lambda i, m, s: logistic(keys[i], m, s))[2]
  mean, log_scale = jnp.split(params, 2, axis=-1)
  if likelihood == "logistic":
    return logistic(key, mean, log_scale)
  if likelihood == "gaussian":
    scale = jnp.exp(jnp.maximum(log_scale, _MIN_LOG_SCALE))
    return _to_bins(mean + scale * flat_random.normal(key, mean.shape, mean.dtype))
  raise ValueError(f"Unknown likelihood {likelihood!r}; use one of {', '.join(LIKELIHOODS)}.")


def gaussian_kl_per_dim(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, 1)) of each dimension, elementwise."""
  return 0.5 * (mean**2 + jnp.exp(logvar) - 1.0 - logvar)


def gaussian_kl_to_standard(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, I)) per example, summed over dimensions."""
  return jnp.sum(gaussian_kl_per_dim(mean, logvar), axis=-1)


def diag_gaussian_log_prob(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """log N(z; mean, diag(exp(logvar))), summed over the last axis."""
  return -0.5 * jnp.sum(math.log(2 * math.pi) + logvar + (z - mean)**2 * jnp.exp(-logvar),
                        axis=-1)
