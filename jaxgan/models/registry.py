"""Architectures by name (`config.model`), one registry per family, and the
contracts the tasks, evaluation, inpainting and super-resolution rely on.

Adding an architecture: its modules (a file under jaxgan/models/) following
the family's contract below, and one line in the family's registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import classifiers, dcgan, sngan, vae


class Generator(Protocol):
  """A GAN generator (a flax Module): latents z [B, latent_dim] (and class
  labels [B], int, when built with num_classes > 0) -> images [B, H, W, C]
  in [-1, 1]. `train` switches BatchNorm to batch statistics (updating the
  `batch_stats` collection)."""

  def __call__(self, z: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
    ...


class Discriminator(Protocol):
  """A GAN discriminator (a flax Module): images [B, H, W, C] in [-1, 1] (and
  labels [B] when conditional) -> logits [B], or with conditional="acgan"
  (logits [B], class logits [B, K]). Dropout draws from the "dropout" rng;
  spectral normalisation keeps its vectors in `batch_stats`.

  `normalization` ("batch", "layer" or "none") says whether the outputs
  mix the images of a batch: per-image penalties (WGAN-GP, R1) refuse
  "batch"."""

  normalization: str

  def __call__(self, x: jax.Array, train: bool,
               labels: jax.Array | None = None) -> jax.Array | tuple[jax.Array, jax.Array]:
    ...


class GANArchitecture(Protocol):
  """(image_size, channels, ngf=, ndf=, d_normalization=, spectral_norm=,
  num_classes=, conditional=, dtype=) -> (Generator, Discriminator); raises
  ValueError for sizes or options it does not support."""

  def __call__(self, image_size: int, channels: int, *, ngf: int, ndf: int,
               d_normalization: str | None, spectral_norm: bool, num_classes: int,
               conditional: str, dtype: Any) -> tuple[nn.Module, nn.Module]:
    ...


GAN_ARCHITECTURES: dict[str, GANArchitecture] = {
    "dcgan": dcgan.make_dcgan,  # the seeds' 28x28 model; Radford et al.'s at 4 * 2**k
    "sngan": sngan.make_sngan,  # the SNGAN ResNet (32, 48, 64)
}

# Classifiers: num_classes -> a Module mapping images [B, H, W, C] to logits
# [B, K] (`return_features=True`: also the penultimate features [B, D]).
CLASSIFIERS: dict[str, Callable[[int], nn.Module]] = {
    "small_cnn": classifiers.SmallCNN,
    "seed_cifar_cnn": lambda k: classifiers.SmallCNN(k, (32, 64, 128), padding="VALID"),
    "lenet5": classifiers.LeNet5,
    "resnet20": lambda k: classifiers.ResNet(k, (3, 3, 3), (16, 32, 64)),
    "resnet18": lambda k: classifiers.ResNet(k, (2, 2, 2, 2), (64, 128, 256, 512)),
}

# VAEs: (image_shape, latent_dim, out_channels, base_features) -> vae.VAE.
VAES: dict[str, Callable[..., vae.VAE]] = {
    "mlp": vae.mlp_vae,
    "conv": vae.conv_vae,
    "resnet": vae.resnet_vae,  # spatial latent, for the discretized RGB likelihoods
}


def lookup(registry: dict, name: str, what: str):
  """registry[name], or a ValueError naming the choices."""
  if name not in registry:
    raise ValueError(f"Unknown {what} {name!r}; use one of {', '.join(registry)}.")
  return registry[name]


def make_classifier(name: str, num_classes: int) -> nn.Module:
  return lookup(CLASSIFIERS, name, "config.model (classifier)")(num_classes)


def make_vae(name: str, image_shape: tuple[int, int, int], latent_dim: int,
             out_channels: int, base_features: int = 32) -> vae.VAE:
  return lookup(VAES, name, "config.model (VAE)")(tuple(image_shape), latent_dim,
                                                  out_channels, base_features)


def make_gan(name: str, image_size: int, channels: int, *, dtype=jnp.float32, **options):
  """(generator, discriminator) of GAN architecture `name`."""
  return lookup(GAN_ARCHITECTURES, name, "config.model (GAN)")(image_size, channels,
                                                              dtype=dtype, **options)
