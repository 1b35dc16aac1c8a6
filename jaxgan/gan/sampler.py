"""What code outside the GAN task may use of a trained GAN: the `Sampler`
contract. `jaxgan.tasks.gan.GANTask` implements it; evaluation
(`jaxgan.evaluation.generators`), inpainting (`jaxgan.restoration.inpainting`)
and classifiers trained on generated data (`jaxgan.tasks.classifier`) rely
on nothing else, so another GAN task that provides it works with all of them.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import flax.linen as nn
import jax


@runtime_checkable
class Sampler(Protocol):
  image_shape: tuple[int, int, int]
  """(H, W, C) of the images it makes."""
  latent_dim: int
  """The size of the latents callers draw for `sample` (N(0, 1))."""
  g_latent_dim: int
  """The generator's own latent: the last g_latent_dim coordinates of z (a
  self-conditioned generator's first coordinate picks its cluster); what the
  truncation trick truncates."""
  truncation: str
  """What the truncation trick acts on: "latent" (BigGAN's: z drawn from a
  truncated normal) or "w" (StyleGAN's: `sample(..., psi=)` pulls the
  intermediate latent towards its running mean)."""
  num_classes: int
  """Classes a caller passes labels for (0: unconditional, or self-conditioned)."""
  ema_decay: float
  """> 0 when `sample` uses a moving average of the generator."""
  generator: nn.Module
  """The generator module (`jaxgan.models.registry.Generator`)."""
  objective: Any
  """The GAN objective (`jaxgan.gan.objectives`): D's outputs -> losses."""

  def sample(self, state: Any, z: jax.Array, labels: jax.Array | None = None,
             average: bool = True, psi: float | None = None) -> jax.Array:
    """Images in [-1, 1] [N, H, W, C] for latents z [N, latent_dim] (and
    labels); `psi` only where `truncation` is "w"."""

  def sample_jit(self, state: Any, z: jax.Array, labels: jax.Array | None = None,
                 average: bool = True, psi: float | None = None) -> jax.Array:
    """`sample`, compiled once per task."""

  def discriminate(self, state: Any, x: jax.Array,
                   labels: jax.Array | None = None) -> jax.Array:
    """D's outputs [N] for images in [-1, 1] (eval mode)."""
