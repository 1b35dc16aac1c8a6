"""Loss functions. Each returns a scalar mean over the batch (or per-example
values where the name says so), computed in float32."""

import jax
import jax.numpy as jnp


def gan_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Binary cross-entropy of the discriminator: real -> 1, fake -> 0.

  -log sigmoid(r) - log(1 - sigmoid(f)) = softplus(-r) + softplus(f).
  """
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def gan_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """Non-saturating generator loss (Goodfellow et al. 2014): -log D(G(z))."""
  return jnp.mean(jax.nn.softplus(-fake_logits))
