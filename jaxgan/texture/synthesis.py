"""Texture synthesis (Gatys et al. 2015) and style transfer (Gatys et al.
2016) by optimising an image's pixels.

The image is parametrised as x = sigmoid(u), so that it stays in [0, 1]
whatever the optimiser does, and u is optimised with L-BFGS (optax's, with
its zoom line search: Gatys et al.'s choice) or Adam. Everything is a pure,
jitted function of (u, optimizer state); the same seed gives the same image.

- `texture_objective`: the texture loss between the image's Gram matrices and
  the source's, per layer (`jaxgan.texture.gram`).
- `style_objective`: content loss (mean squared difference of one layer's
  activations with the content image's, relative to the content's mean
  square) + style_weight x texture loss against the style image + tv_weight
  x total variation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan.texture import gram

OPTIMIZERS = ("lbfgs", "adam")


def texture_objective(features_fn: Callable, source: jax.Array, layers) -> Callable:
  """x [1, H, W, 3] -> (loss, {layer: loss}) against `source` [1, h, w, 3]
  (sizes may differ: Gram matrices do not depend on the size)."""
  targets = jax.tree.map(jax.lax.stop_gradient,
                         gram.descriptor(features_fn(source), layers))

  def objective(x):
    return gram.texture_loss(gram.descriptor(features_fn(x), layers), targets)

  return objective


def total_variation(x: jax.Array) -> jax.Array:
  """Mean squared difference of neighbouring pixels (both axes)."""
  return (jnp.mean(jnp.square(x[:, 1:] - x[:, :-1])) +
          jnp.mean(jnp.square(x[:, :, 1:] - x[:, :, :-1])))


def style_objective(features_fn: Callable, content: jax.Array, style: jax.Array,
                    content_layer: str, style_layers, style_weight: float,
                    tv_weight: float) -> Callable:
  """x -> (loss, {"content", "style", "tv", "style/<layer>"...})."""
  content_target = jax.lax.stop_gradient(features_fn(content)[content_layer])
  texture = texture_objective(features_fn, style, style_layers)

  def objective(x):
    c = (jnp.mean(jnp.square(features_fn(x)[content_layer] - content_target)) /
         jnp.maximum(jnp.mean(jnp.square(content_target)), 1e-30))
    s, per_layer = texture(x)
    tv = total_variation(x)
    parts = {"content": c, "style": s, "tv": tv,
             **{f"style/{k}": v for k, v in per_layer.items()}}
    return c + style_weight * s + tv_weight * tv, parts

  return objective


def to_logits(x: np.ndarray, eps: float = 1e-3) -> jax.Array:
  x = jnp.clip(jnp.asarray(x, jnp.float32), eps, 1.0 - eps)
  return jnp.log(x) - jnp.log1p(-x)


def noise_image(key: jax.Array, shape) -> jax.Array:
  """The starting image of a synthesis: grey plus white noise (std 0.1)."""
  return jnp.clip(0.5 + 0.1 * jax.random.normal(key, shape), 0.0, 1.0)


def optimize(objective: Callable, x0: jax.Array, steps: int, optimizer: str = "lbfgs",
             learning_rate: float = 0.05, callback: Callable | None = None,
             every: int = 10) -> jax.Array:
  """Minimises objective(sigmoid(u)) over u from u0 = logit(x0) for `steps`
  optimiser steps; calls callback(step, x, loss, parts) every `every` steps
  and at the last. Returns the final image x in [0, 1]."""
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"Unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}.")
  if steps < 1:
    raise ValueError(f"--steps must be >= 1, got {steps}.")
  loss_of_u = lambda u: objective(jax.nn.sigmoid(u))[0]
  evaluate = jax.jit(lambda u: objective(jax.nn.sigmoid(u)))
  if optimizer == "lbfgs":
    tx = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss_of_u)

    def step(u, state):
      value, grad = value_and_grad(u, state=state)
      updates, state = tx.update(grad, state, u, value=value, grad=grad, value_fn=loss_of_u)
      return optax.apply_updates(u, updates), state
  else:
    tx = optax.adam(learning_rate)

    def step(u, state):
      grad = jax.grad(loss_of_u)(u)
      updates, state = tx.update(grad, state, u)
      return optax.apply_updates(u, updates), state

  step = jax.jit(step, donate_argnums=0)
  u = to_logits(x0)
  state = tx.init(u)
  if callback is not None:
    loss, parts = evaluate(u)
    callback(0, jax.nn.sigmoid(u), float(loss), parts)
  for i in range(1, steps + 1):
    u, state = step(u, state)
    if callback is not None and (i % every == 0 or i == steps):
      loss, parts = evaluate(u)
      if not np.isfinite(float(loss)):
        raise FloatingPointError(f"The loss became {float(loss)} at step {i}; lower the "
                                 "learning rate or use --optimizer adam.")
      callback(i, jax.nn.sigmoid(u), float(loss), parts)
  return jax.nn.sigmoid(u)
