"""Class conditioning for GANs: conditional BatchNorm in the generator, and
the discriminator's output head (plain, projection, or ACGAN).

- `ConditionalBatchNorm` (de Vries et al. 2017; the generators of Miyato &
  Koyama 2018 and of StudioGAN's conditional models): BatchNorm without its
  own scale and offset, then a per-class scale (initialised to 1) and offset
  (0), looked up by the label.
- `conditional_output`: D's output from its logit and its features h [B, F]:
  - "" (unconditional): the logit;
  - "projection" (Miyato & Koyama 2018): logit + <embed(y), h>, the class
    embedding's inner product with the features;
  - "acgan" (Odena et al. 2017): (logit, class logits) from an auxiliary
    linear classifier on h.
  With spectral normalisation the embedding and the auxiliary classifier are
  normalised too (as the projection paper does).

Labels are int32 [B] in [0, num_classes). Lookups are one-hot matrix
products: the same values as a gather, and a gradient without XLA's
scatter-add.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import initializers
from jaxgan.models.layers import BatchNorm

CONDITIONALS = ("", "projection", "acgan")

_xavier = initializers.variance_scaling(1.0, "fan_avg", "uniform")


def one_hot(labels: jax.Array, num_classes: int, dtype=jnp.float32) -> jax.Array:
  return jax.nn.one_hot(labels, num_classes, dtype=dtype)


def spectral(layer: nn.Module, spectral_norm: bool, train: bool):
  """`layer`, or `layer` spectrally normalised (flax's `SpectralNorm`: one
  power iteration per training call; u and sigma in `batch_stats`)."""
  if not spectral_norm:
    return layer
  return lambda x: nn.SpectralNorm(layer)(x, update_stats=train)


class ConditionalBatchNorm(nn.Module):
  """BatchNorm over the last axis with a per-class scale and offset."""
  num_classes: int
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array, train: bool) -> jax.Array:
    x = BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=self.epsilon,
                  use_scale=False, use_bias=False, dtype=self.dtype)(x)
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones_init(), (self.num_classes, features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.num_classes, features))
    y = one_hot(labels, self.num_classes)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    scale, bias = (y @ scale).reshape(shape), (y @ bias).reshape(shape)
    return (x.astype(jnp.float32) * scale + bias).astype(x.dtype)


class Projection(nn.Module):
  """The projection term <embed(y), h> [B] (Miyato & Koyama 2018), added to
  D's logit; the embedding is spectrally normalised with the rest of D."""
  num_classes: int
  spectral_norm: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array, labels: jax.Array, train: bool) -> jax.Array:
    embed = spectral(nn.Dense(h.shape[-1], use_bias=False, kernel_init=_xavier,
                              dtype=self.dtype), self.spectral_norm, train)
    e = embed(one_hot(labels, self.num_classes, h.dtype))
    return jnp.sum((e * h).astype(jnp.float32), axis=-1)


class AuxiliaryClassifier(nn.Module):
  """ACGAN's auxiliary head (Odena et al. 2017): class logits [B, K] from D's
  features."""
  num_classes: int
  spectral_norm: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array, train: bool) -> jax.Array:
    dense = spectral(initializers.Dense(self.num_classes, dtype=self.dtype),
                     self.spectral_norm, train)
    return dense(h).astype(jnp.float32)


class DiscriminatorFields(nn.Module):
  """The fields every GAN discriminator has (the contract:
  `jaxgan.models.registry.Discriminator`); a discriminator subclasses this
  and ends its `__call__` with `conditional_output(...)` of them."""
  spectral_norm: bool = False  # spectral normalisation of every layer
  num_classes: int = 0  # classes of a conditional discriminator
  conditional: str = ""  # "", "projection" or "acgan" (CONDITIONALS)
  dtype: jnp.dtype = jnp.float32  # activations and matmuls (parameters stay float32)
  # "batch" | "layer" | "none" | "minibatch_std": does an output mix the batch's images?
  normalization = "none"


def conditional_output(logit: jax.Array, h: jax.Array, labels: jax.Array | None, *,
                       num_classes: int, conditional: str, spectral_norm: bool, train: bool,
                       dtype=jnp.float32):
  """A discriminator's output from its unconditional logit [B] and features h
  [B, F]: the logit; the logit plus the projection term ("projection"); or
  (logit, class logits) ("acgan"). Call inside the discriminator's compact
  `__call__` (the conditional parts are its submodules)."""
  if conditional == "projection":
    return logit + Projection(num_classes, spectral_norm, dtype)(h, labels, train)
  if conditional == "acgan":
    return logit, AuxiliaryClassifier(num_classes, spectral_norm, dtype)(h, train)
  return logit


def check_conditioning(num_classes: int, conditional: str) -> None:
  if conditional not in CONDITIONALS:
    raise ValueError(f"Unknown config.conditional {conditional!r}; use one of "
                     f"{', '.join(repr(c) for c in CONDITIONALS)} ('' is unconditional).")
  if conditional and num_classes < 2:
    raise ValueError(f"config.conditional={conditional!r} needs labelled data with at least 2 "
                     f"classes; this dataset has {num_classes} (folder: datasets need one "
                     "subfolder per class). Set --config.conditional='' for an unconditional "
                     "GAN.")
