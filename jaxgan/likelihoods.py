"""Log-densities for VAEs, in nats, summed over each example's pixels.

Data conventions: Bernoulli targets are pixel intensities in [0, 1]
(binarized to {0, 1} for a true likelihood); the discretized likelihoods take
8-bit images scaled to [-1, 1] (the pipeline's range), i.e. 256 bins of width
2/255, and give the probability of the bin, so their negative log-likelihood
in bits per dimension is comparable with published figures.

Each likelihood is chosen by name (`config.likelihood`) from `REGISTRY`; its
contract is the `Likelihood` protocol (decoder outputs per pixel, log p, the
image for display, a draw). To add one, implement the protocol and register
it, e.g. `REGISTRY["logistic_mix5"] = _LogisticMixture(components=5)`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from jaxgan import flat_random

_HALF_BIN = 1.0 / 255.0  # half the width of a bin on [-1, 1]
_MIN_LOG_SCALE = -7.0


def _sum_per_example(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


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
  return _sum_per_example(_logistic_bins(x, *jnp.split(params, 2, axis=-1)))


def _logistic_bins(x: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
  """log P(bin of x) under a logistic, elementwise."""
  log_pdf = lambda t: -t - 2.0 * jax.nn.softplus(-t)
  return _discretized_log_prob(x, mean, log_scale, jax.nn.log_sigmoid,
                               lambda t: jax.nn.log_sigmoid(-t), log_pdf)


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


def _logistic_draw(key: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
  """A logistic draw at (mean, exp(log_scale)), snapped to the 8-bit grid."""
  tiny = 1e-6
  u = flat_random.uniform(key, mean.shape, mean.dtype, tiny, 1.0 - tiny)
  scale = jnp.exp(jnp.maximum(log_scale, _MIN_LOG_SCALE))
  return _to_bins(mean + scale * (jnp.log(u) - jnp.log1p(-u)))


def _to_bins(v: jax.Array) -> jax.Array:
  """Continuous values -> the nearest of the 256 8-bit values on [-1, 1]
  (the edge bins take the tails, as the discretized likelihoods do)."""
  return jnp.round((jnp.clip(v, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


# -- Mixture of logistics ------------------------------------------------------------

def _mixture_parts(params: jax.Array, components: int) -> tuple[jax.Array, jax.Array]:
  """params [..., K * (1 + 2C + C(C-1)/2)] -> (mixture logits [..., K],
  each component's coupled-logistic parameters [..., K, 2C + C(C-1)/2])."""
  if params.shape[-1] % components:
    raise ValueError(f"A mixture of {components} logistics needs a multiple of {components} "
                     f"outputs per pixel, got {params.shape[-1]}.")
  p = params.reshape(*params.shape[:-1], components, params.shape[-1] // components)
  return p[..., 0], p[..., 1:]


def mixture_logistic_log_prob(params: jax.Array, x: jax.Array, components: int) -> jax.Array:
  """PixelCNN++'s discretized mixture of logistics (Salimans et al. 2017):
  per pixel, log sum_k pi_k p_k(x), each component p_k a channel-coupled
  logistic (`coupled_logistic_log_prob`'s factors) with its own locations,
  scales and couplings; pi = softmax of the K mixture logits. params
  [..., K * (1 + 2C + C(C-1)/2)], x [..., C] in [-1, 1]."""
  logits, comp = _mixture_parts(params, components)
  xk = x[..., None, :]  # broadcast over the components
  mean, log_scale, _ = _coupled_means(comp, lambda i, m, s: xk[..., i])
  per_component = jnp.sum(_logistic_bins(xk, mean, log_scale), -1)
  return _sum_per_example(jax.nn.logsumexp(jax.nn.log_softmax(logits) + per_component, -1))


def _mixture_mean(params: jax.Array, components: int) -> jax.Array:
  """The mixture's mean per channel, clipped to [-1, 1]: sum_k pi_k m_k, where
  m_k is component k's mean (its locations, each moved by the couplings times
  the earlier channels' means: the coupling is linear, so this is exact for
  the continuous mixture)."""
  logits, comp = _mixture_parts(params, components)
  means = _coupled_means(comp, lambda i, m, s: m)[2]
  return jnp.clip(jnp.sum(jax.nn.softmax(logits)[..., None] * means, -2), -1.0, 1.0)


def _mixture_sample(params: jax.Array, key: jax.Array, components: int) -> jax.Array:
  """A component per pixel (Gumbel-max over the mixture logits), then that
  component's coupled-logistic draw."""
  logits, comp = _mixture_parts(params, components)
  pick_key, draw_key = jax.random.split(key)
  u = flat_random.uniform(pick_key, logits.shape, logits.dtype, 1e-6, 1.0 - 1e-6)
  chosen = jax.nn.one_hot(jnp.argmax(logits - jnp.log(-jnp.log(u)), -1), components,
                          dtype=comp.dtype)
  return _coupled_sample(jnp.sum(chosen[..., None] * comp, -2), draw_key)


def _coupled_sample(params: jax.Array, key: jax.Array) -> jax.Array:
  keys = jax.random.split(key, params.shape[-1])
  return _coupled_means(params, lambda i, m, s: _logistic_draw(keys[i], m, s))[2]


# -- The registry ---------------------------------------------------------------------

class Likelihood(Protocol):
  """The contract of a likelihood p(x | decoder output), chosen by name
  (`config.likelihood`) from `REGISTRY`. `params` is the decoder's output
  [..., outputs(C)]; x is [..., C], in [0, 1] for 'bernoulli' targets and
  on the 8-bit grid of [-1, 1] for the discretized ones; the images returned
  are [..., C] in [-1, 1].
  Channels within a pixel may depend on each other (in channel order), never
  pixels on each other: an autoregressive head over pixels lives in the
  model (`jaxgan.models.vae.PixelHead`)."""

  def outputs(self, channels: int) -> int:
    """Decoder outputs per pixel for an image with `channels` channels."""

  def log_prob(self, params: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x | params) in nats, summed over each example's pixels: [batch]."""

  def mode(self, params: jax.Array) -> jax.Array:
    """The decoder's image for display, in [-1, 1]."""

  def sample(self, params: jax.Array, key: jax.Array) -> jax.Array:
    """x ~ p(x | params), each pixel independently, in [-1, 1]."""


@dataclasses.dataclass(frozen=True)
class _Bernoulli:
  def outputs(self, channels):
    return channels

  def log_prob(self, params, x):
    return bernoulli_log_prob(params, x)

  def mode(self, params):
    return 2.0 * jax.nn.sigmoid(params) - 1.0

  def sample(self, params, key):
    return 2.0 * flat_random.bernoulli(key, jax.nn.sigmoid(params)).astype(params.dtype) - 1.0


@dataclasses.dataclass(frozen=True)
class _Discretized:
  """Per-pixel, per-channel location and log-scale (Gaussian or logistic)."""
  log_prob_fn: Callable[[jax.Array, jax.Array], jax.Array]
  draw: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

  def outputs(self, channels):
    return 2 * channels  # means and log-scales

  def log_prob(self, params, x):
    return self.log_prob_fn(params, x)

  def mode(self, params):
    return jnp.clip(jnp.split(params, 2, axis=-1)[0], -1.0, 1.0)

  def sample(self, params, key):
    return self.draw(key, *jnp.split(params, 2, axis=-1))


def _gaussian_draw(key, mean, log_scale):
  scale = jnp.exp(jnp.maximum(log_scale, _MIN_LOG_SCALE))
  return _to_bins(mean + scale * flat_random.normal(key, mean.shape, mean.dtype))


@dataclasses.dataclass(frozen=True)
class _CoupledLogistic:
  def outputs(self, channels):
    return 2 * channels + _num_couplings(channels)  # ... and each channel's coupling to earlier ones

  def log_prob(self, params, x):
    return coupled_logistic_log_prob(params, x)

  def mode(self, params):  # each channel's location given the earlier locations
    return _coupled_means(params, lambda i, m, s: jnp.clip(m, -1.0, 1.0))[2]

  def sample(self, params, key):  # each channel drawn given the earlier channels' draws
    return _coupled_sample(params, key)


@dataclasses.dataclass(frozen=True)
class _LogisticMixture:
  components: int

  def outputs(self, channels):
    return self.components * (1 + 2 * channels + _num_couplings(channels))

  def log_prob(self, params, x):
    return mixture_logistic_log_prob(params, x, self.components)

  def mode(self, params):
    return _mixture_mean(params, self.components)

  def sample(self, params, key):
    return _mixture_sample(params, key, self.components)


REGISTRY: dict[str, Likelihood] = {
    "bernoulli": _Bernoulli(),
    "gaussian": _Discretized(discretized_gaussian_log_prob, _gaussian_draw),
    "logistic": _Discretized(discretized_logistic_log_prob, _logistic_draw),
    "logistic_ar": _CoupledLogistic(),
    "logistic_mix": _LogisticMixture(components=10),  # PixelCNN++'s CIFAR-10 mixture
}
LIKELIHOODS = tuple(REGISTRY)


def get(likelihood: str) -> Likelihood:
  """The likelihood named `likelihood`, or a one-line error naming the choices."""
  try:
    return REGISTRY[likelihood]
  except KeyError:
    raise ValueError(f"Unknown likelihood {likelihood!r}; use one of "
                     f"{', '.join(LIKELIHOODS)}.") from None


def decoder_channels(likelihood: str, channels: int) -> int:
  """How many outputs per pixel the decoder needs for `likelihood`."""
  return get(likelihood).outputs(channels)


def log_prob(likelihood: str, params: jax.Array, x: jax.Array) -> jax.Array:
  """log p(x | decoder output `params`) per example. x: [0, 1] for
  'bernoulli', [-1, 1] for the discretized likelihoods."""
  return get(likelihood).log_prob(params, x)


def mode(likelihood: str, params: jax.Array) -> jax.Array:
  """The decoder's image for display, in [-1, 1]: Bernoulli means, the
  location of the discretized distributions, the mixture's mean."""
  return get(likelihood).mode(params)


def sample(likelihood: str, params: jax.Array, key: jax.Array) -> jax.Array:
  """x ~ p(x | params), independently per pixel, in [-1, 1]: Bernoulli
  draws as -1 / 1, the discretized likelihoods on their 8-bit grid
  (`logistic_ar`: each channel drawn given the earlier channels' draws;
  `logistic_mix`: a component, then its channels so)."""
  return get(likelihood).sample(params, key)


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
