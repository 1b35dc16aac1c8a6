"""GAN objectives: pure functions of the discriminator's outputs.

Each objective maps D's outputs on a real and a fake batch (one value per
image, shape [batch]) to `Losses(d_loss, g_loss, metrics)`, all float32
scalars: means over the batch, or weighted means with `weights` (the eval
split's padding mask; top-k training's kept fakes, `topk_weights`). The train
step and the eval step call the same function. The generator update uses
`g_loss` of D's outputs on its fakes; no objective here reads the real
outputs for it (a relativistic one would).

`metrics` holds what is meaningful for that objective's D: probabilities
D(x), D(G(z)) only where D's output is a logit of a probability (`ns`,
`saturating`); raw outputs otherwise; and for `wasserstein` the critic's
values and the estimated distance E[D(x)] - E[D(G(z))]. The step logs the
entries ending in `_fake` a second time, after the D update, as `..._after`.

Choose one with `config.gan_loss` (see `OBJECTIVES`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Losses(NamedTuple):
  d_loss: jax.Array
  g_loss: jax.Array
  metrics: dict


def _mean(x: jax.Array, weights: jax.Array | None) -> jax.Array:
  x = x.astype(jnp.float32)
  if weights is None:
    return jnp.mean(x)
  return jnp.sum(x * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _probabilities(real, fake, w) -> dict:
  return {"d_real": _mean(jax.nn.sigmoid(real), w), "d_fake": _mean(jax.nn.sigmoid(fake), w)}


def non_saturating(real, fake, weights=None) -> Losses:
  """Goodfellow et al. 2014 with the non-saturating generator loss.

  D: binary cross-entropy, real -> 1, fake -> 0:
     -log sigmoid(r) - log(1 - sigmoid(f)) = softplus(-r) + softplus(f).
  G: -log D(G(z)) = softplus(-f).
  """
  d = _mean(jax.nn.softplus(-real), weights) + _mean(jax.nn.softplus(fake), weights)
  g = _mean(jax.nn.softplus(-fake), weights)
  return Losses(d, g, _probabilities(real, fake, weights))


def saturating(real, fake, weights=None) -> Losses:
  """The original minimax game (Goodfellow et al. 2014): D as in `ns`; G
  minimises log(1 - D(G(z))) = -softplus(f), whose gradient vanishes where D
  rejects the fakes confidently (kept for studies of exactly that)."""
  d = _mean(jax.nn.softplus(-real), weights) + _mean(jax.nn.softplus(fake), weights)
  g = -_mean(jax.nn.softplus(fake), weights)
  return Losses(d, g, _probabilities(real, fake, weights))


def least_squares(real, fake, weights=None) -> Losses:
  """LSGAN (Mao et al. 2017), targets a = 0 (fake), b = 1 (real), c = 1:
  D: 1/2 E(D(x) - 1)^2 + 1/2 E D(G(z))^2;  G: 1/2 E(D(G(z)) - 1)^2.
  D's raw outputs are logged (its targets are 1 and 0)."""
  d = 0.5 * _mean(jnp.square(real - 1.0), weights) + 0.5 * _mean(jnp.square(fake), weights)
  g = 0.5 * _mean(jnp.square(fake - 1.0), weights)
  return Losses(d, g, {"d_real": _mean(real, weights), "d_fake": _mean(fake, weights)})


def hinge(real, fake, weights=None) -> Losses:
  """Hinge loss (Lim & Ye 2017; Miyato et al. 2018, SNGAN):
  D: E relu(1 - D(x)) + E relu(1 + D(G(z)));  G: -E D(G(z))."""
  d = _mean(jax.nn.relu(1.0 - real), weights) + _mean(jax.nn.relu(1.0 + fake), weights)
  g = -_mean(fake, weights)
  return Losses(d, g, {"logit_real": _mean(real, weights), "logit_fake": _mean(fake, weights)})


def wasserstein(real, fake, weights=None) -> Losses:
  """WGAN critic (Arjovsky et al. 2017): D maximises E D(x) - E D(G(z)),
  G minimises -E D(G(z)). The critic must be kept Lipschitz by something
  else (`gradient_penalty`, `spectral_norm`). `w_distance` is the critic's
  estimate of the Wasserstein-1 distance (meaningful with that constraint)."""
  r, f = _mean(real, weights), _mean(fake, weights)
  return Losses(f - r, -f, {"critic_real": r, "critic_fake": f, "w_distance": r - f})


OBJECTIVES: dict[str, Callable[..., Losses]] = {
    "ns": non_saturating,
    "saturating": saturating,
    "ls": least_squares,
    "hinge": hinge,
    "wasserstein": wasserstein,
}


def topk_fraction(images_seen, epoch_images: int, nu: float, gamma: float) -> jax.Array:
  """The fraction of fakes top-k training keeps (Sinha et al. 2020): gamma
  per epoch from 1, never below nu; `images_seen / epoch_images` epochs
  (counted continuously rather than at epoch ends)."""
  epochs = jnp.asarray(images_seen, jnp.float32) / float(epoch_images)
  return jnp.maximum(jnp.float32(nu), jnp.float32(gamma) ** epochs)


def topk_weights(fake: jax.Array, fraction) -> jax.Array:
  """Weights [batch] that keep the k = max(1, floor(fraction * batch))
  fakes D scores highest (the most realistic; ties broken by position) and
  drop the rest: the generator's loss as a weighted mean over them is top-k
  training's (Sinha et al. 2020, "Top-k Training of GANs: Improving GAN
  Performance by Throwing Away Bad Samples")."""
  n = fake.shape[0]
  k = jnp.maximum(1, jnp.floor(jnp.asarray(fraction, jnp.float32) * n + 1e-4)).astype(jnp.int32)
  rank = jnp.argsort(jnp.argsort(-jax.lax.stop_gradient(fake), stable=True), stable=True)
  return (rank < k).astype(jnp.float32)


def get(name: str) -> Callable[..., Losses]:
  if name not in OBJECTIVES:
    raise ValueError(f"Unknown config.gan_loss {name!r}; use one of {', '.join(OBJECTIVES)}.")
  return OBJECTIVES[name]
