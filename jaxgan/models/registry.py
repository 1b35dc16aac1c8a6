"""Architectures by name (`config.model`), one registry per family, and the
contracts the tasks, evaluation, inpainting and super-resolution rely on.

Adding an architecture: its modules (a file under jaxgan/models/) following
the family's contract below, and one line in the family's registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import biggan, classifiers, dcgan, sngan, stylegan2, vae


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

  `normalization` ("batch", "layer", "none" or "minibatch_std") says whether
  the outputs mix the images of a batch: per-image penalties (WGAN-GP, R1)
  refuse "batch"; "minibatch_std" (StyleGAN2) mixes them only through one
  feature, the spread of a group of images, which the papers regularise with
  R1 all the same."""

  normalization: str

  def __call__(self, x: jax.Array, train: bool,
               labels: jax.Array | None = None) -> jax.Array | tuple[jax.Array, jax.Array]:
    ...


class GANArchitecture(Protocol):
  """(image_size, channels, ngf=, ndf=, d_normalization=, spectral_norm=,
  num_classes=, conditional=, dtype=, and its own keyword options from
  `config.model_options`) -> (Generator, Discriminator); raises ValueError
  for sizes or options it does not support."""

  def __call__(self, image_size: int, channels: int, *, ngf: int, ndf: int,
               d_normalization: str | None, spectral_norm: bool, num_classes: int,
               conditional: str, dtype: Any) -> tuple[nn.Module, nn.Module]:
    ...


GAN_ARCHITECTURES: dict[str, GANArchitecture] = {
    "dcgan": dcgan.make_dcgan,  # the seeds' 28x28 model; Radford et al.'s at 4 * 2**k
    "sngan": sngan.make_sngan,  # the SNGAN ResNet (32, 48, 64)
    "biggan": biggan.make_biggan,  # BigGAN (32, 64)
    "stylegan2": stylegan2.make_stylegan2,  # StyleGAN2 (powers of two >= 8)
}

# Classifiers: num_classes -> a Module mapping images [B, H, W, C] to logits
# [B, K] (`return_features=True`: also the penultimate features [B, D]).
CLASSIFIERS: dict[str, Callable[[int], nn.Module]] = {
    "small_cnn": classifiers.SmallCNN,
    "seed_cifar_cnn": lambda k: classifiers.SmallCNN(k, (32, 64, 128), padding="VALID"),
    "lenet5": classifiers.LeNet5,
    "resnet20": lambda k: classifiers.ResNet(k, (3, 3, 3), (16, 32, 64)),
    "resnet18": lambda k: classifiers.ResNet(k, (2, 2, 2, 2), (64, 128, 256, 512)),
    "fast_cnn": classifiers.FastCNN,  # conv-pool stages 64/128/128, for fast CIFAR-10 training
}

# VAEs: (image_shape, latent_dim, out_channels, base_features, and the model's own
# keyword options from `config.model_options`) -> vae.VAE.
VAES: dict[str, Callable[..., vae.VAE]] = {
    "mlp": vae.mlp_vae,
    "conv": vae.conv_vae,
    "resnet": vae.resnet_vae,  # spatial latent, for the discretized RGB likelihoods
    "resnet_pixel": vae.pixel_vae,  # ... with an autoregressive head (PixelVAE)
}


def lookup(registry: dict, name: str, what: str):
  """registry[name], or a ValueError naming the choices."""
  if name not in registry:
    raise ValueError(f"Unknown {what} {name!r}; use one of {', '.join(registry)}.")
  return registry[name]


def make_classifier(name: str, num_classes: int) -> nn.Module:
  return lookup(CLASSIFIERS, name, "config.model (classifier)")(num_classes)


def _check_options(factory, options: dict, name: str, fixed: tuple[str, ...]) -> None:
  """A ValueError naming the options (config.model_options) that `factory`,
  model `name`'s, does not take, and those it does (beyond `fixed`)."""
  accepted = inspect.signature(factory).parameters
  unknown = sorted(k for k in options if k not in fixed and k not in accepted)
  if unknown:
    extra = [k for k in accepted if k not in fixed]
    raise ValueError(f"config.model_options {', '.join(unknown)} not known to model {name!r}; "
                     f"it takes {', '.join(extra) or 'none'}.")


def make_vae(name: str, image_shape: tuple[int, int, int], latent_dim: int,
             out_channels: int, base_features: int = 32, **options) -> vae.VAE:
  """VAE `name`; options (`config.model_options`, e.g. resnet_pixel's
  head_blocks) must be keyword parameters of its factory."""
  factory = lookup(VAES, name, "config.model (VAE)")
  _check_options(factory, options, name,
                 ("image_shape", "latent_dim", "out_channels", "base_features"))
  return factory(tuple(image_shape), latent_dim, out_channels, base_features, **options)


_CONTRACT_OPTIONS = ("ngf", "ndf", "d_normalization", "spectral_norm", "num_classes",
                     "conditional")


def make_gan(name: str, image_size: int, channels: int, *, dtype=jnp.float32, **options):
  """(generator, discriminator) of GAN architecture `name`. Options beyond
  the contract's (`config.model_options`, e.g. StyleGAN2's mapping_layers)
  must be keyword parameters of that architecture's factory."""
  factory = lookup(GAN_ARCHITECTURES, name, "config.model (GAN)")
  _check_options(factory, options, name, _CONTRACT_OPTIONS + ("image_size", "channels", "dtype"))
  return factory(image_size, channels, dtype=dtype, **options)
