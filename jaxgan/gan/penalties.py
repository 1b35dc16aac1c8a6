"""Regularisers of the discriminator (gradient penalties, LeCam) and of the
generator (orthogonal).

The gradient penalties take `d_fn(x) -> outputs [batch]`, a discriminator whose output for one
image does not depend on the other images of the batch (no BatchNorm: the
GAN task refuses that pairing), so the gradient of sum(d_fn(x)) with respect
to x holds each image's own input gradient. They are differentiated again,
with respect to D's parameters, by the train step: jaxgan's custom-VJP
layers (`Conv`, `BatchNorm`) have differentiable backward passes, so second
derivatives go through them (tests/test_gan_family.py checks them against
flax's layers).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _input_gradients(d_fn: Callable, x: jax.Array) -> jax.Array:
  """Per-image gradients of D's output, flattened: [batch, pixels]."""
  grads = jax.grad(lambda v: jnp.sum(d_fn(v).astype(jnp.float32)))(x)
  return grads.reshape(x.shape[0], -1).astype(jnp.float32)


def gradient_penalty(d_fn: Callable, real: jax.Array, fake: jax.Array,
                     eps: jax.Array) -> jax.Array:
  """WGAN-GP (Gulrajani et al. 2017): E (||grad D(x_hat)||_2 - 1)^2 at
  x_hat = eps * real + (1 - eps) * fake, eps [batch] ~ U[0, 1] per image.
  (The caller multiplies by lambda.)"""
  e = eps.reshape((-1,) + (1,) * (real.ndim - 1)).astype(real.dtype)
  x_hat = e * real + (1.0 - e) * fake
  g = _input_gradients(d_fn, x_hat)
  # The small constant keeps the norm's gradient finite where grad D is 0.
  norms = jnp.sqrt(jnp.sum(g * g, axis=1) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))


def r1_penalty(d_fn: Callable, real: jax.Array) -> jax.Array:
  """R1 (Mescheder et al. 2018): E ||grad D(x)||^2 on real images. (The
  caller multiplies by gamma / 2.)"""
  g = _input_gradients(d_fn, real)
  return jnp.mean(jnp.sum(g * g, axis=1))


def orthogonal_penalty(params) -> jax.Array:
  """BigGAN's orthogonal regularisation (Brock et al. 2019, eq. 3, without
  beta): sum over every `kernel` W of ||W^T W (.) (1 - I)||_F^2, W reshaped to
  [fan_in, filters], so the filters are pushed towards orthogonality but not
  towards unit norm. Embedding tables (not named `kernel`) are left out, as
  the paper leaves out the shared class embedding."""
  total = jnp.zeros((), jnp.float32)
  for path, w in jax.tree_util.tree_flatten_with_path(params)[0]:
    if getattr(path[-1], "key", None) != "kernel" or w.ndim < 2:
      continue
    w = w.reshape(-1, w.shape[-1]).astype(jnp.float32)
    gram = w.T @ w
    off = gram * (1.0 - jnp.eye(gram.shape[0], dtype=gram.dtype))
    total = total + jnp.sum(off * off)
  return total


def lecam_anchors(anchors: dict, real_out: jax.Array, fake_out: jax.Array,
                  decay: float) -> dict:
  """LeCam's anchors after one D step (Tseng et al. 2021): exponential moving
  averages, with this decay, of D's mean output on real ("real") and on
  generated ("fake") images, this batch included; constants to the gradient."""
  mean = lambda x: jax.lax.stop_gradient(jnp.mean(x.astype(jnp.float32)))
  return {"real": decay * anchors["real"] + (1.0 - decay) * mean(real_out),
          "fake": decay * anchors["fake"] + (1.0 - decay) * mean(fake_out)}


def lecam_penalty(real_out: jax.Array, fake_out: jax.Array, anchors: dict) -> jax.Array:
  """The LeCam regulariser (Tseng et al. 2021, "Regularizing Generative
  Adversarial Networks under Limited Data"): E relu(D(x) - a_fake)^2 +
  E relu(a_real - D(G(z)))^2, a_real and a_fake the moving averages of D's
  outputs (`lecam_anchors`). It keeps D's outputs on real images from
  running away above what it gives fakes on average, and the other way
  round, which bounds how far D can overfit a small training set; the
  paper relates the regularised loss to the LeCam divergence. (The caller
  multiplies by lambda.)"""
  real_out, fake_out = real_out.astype(jnp.float32), fake_out.astype(jnp.float32)
  return (jnp.mean(jnp.square(jax.nn.relu(real_out - anchors["fake"]))) +
          jnp.mean(jnp.square(jax.nn.relu(anchors["real"] - fake_out))))
