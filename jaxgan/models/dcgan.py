"""DCGAN generators and discriminators (pure Flax Linen modules).

Two families:
- `MnistGenerator` / `MnistDiscriminator`: the seeds' 28x28 architecture (the
  TensorFlow DCGAN tutorial): z -> Dense 7*7*256 -> up-convolutions 128, 64,
  channels (5x5 kernels, BatchNorm + LeakyReLU, tanh); the discriminator is
  conv 64, conv 128 (5x5, stride 2, LeakyReLU, dropout 0.3) and a dense logit.
  Those are its widths at ngf = ndf = 64 (the default); other values scale
  them (G: 4, 2, 1 x ngf; D: 1, 2 x ndf).
- `Generator` / `Discriminator`: Radford et al. (2016) as in pytorch/examples
  dcgan: 4x4 kernels, stride 2, BatchNorm, ReLU / LeakyReLU(0.2), N(0, 0.02)
  initialisation, for 32x32 or 64x64 (any 4 * 2**k) images.

Discriminators return one output per image, shape [batch] (a logit, or a
critic value: what it means is the objective's business, see
`jaxgan.gan.objectives`). With `spectral_norm=True` every layer with a
kernel is spectrally normalised (Miyato et al. 2018, flax's `SpectralNorm`:
one power iteration per forward pass in training mode, as PyTorch's
`spectral_norm` does; `u` and `sigma` live in the `batch_stats` collection,
so they are saved with the checkpoints and frozen in evaluation).

Class-conditional with `num_classes` > 0 (jaxgan/models/conditioning.py):
the generators take `labels` and use conditional BatchNorm; the
discriminators take `labels` and add the projection term (`conditional =
"projection"`) or return (logits, class logits) (`"acgan"`). Unconditional
models have exactly the parameters they always had.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import initializers
from jaxgan.models.conditioning import (ConditionalBatchNorm, DiscriminatorFields,
                                        conditional_output, spectral)
from jaxgan.models.initializers import Dense
from jaxgan.models.layers import BatchNorm, Conv, ConvTranspose, Dropout

_dcgan_init = initializers.normal(0.02)
# BatchNorm scale ~ N(1, 0.02), as in the DCGAN paper's reference code.
_bn_scale_init = initializers.normal(0.02, mean=1.0)


def _generator_norm(num_classes: int, labels, train: bool, dtype, **kwargs):
  """x -> BatchNorm(x), or with num_classes > 0 conditional BatchNorm on
  `labels` (per-class scale and offset; jaxgan.models.conditioning)."""
  if num_classes:
    if labels is None:
      raise ValueError("A conditional generator needs labels.")
    return lambda x: ConditionalBatchNorm(
        num_classes, momentum=kwargs.get("momentum", 0.9),
        epsilon=kwargs.get("epsilon", 1e-5), dtype=dtype)(x, labels, train)
  return lambda x: BatchNorm(use_running_average=not train, dtype=dtype, **kwargs)(x)


class MnistGenerator(nn.Module):
  """z [batch, latent] -> images [batch, 28, 28, channels] in [-1, 1]. With
  num_classes > 0, class-conditional (conditional BatchNorm on `labels`)."""
  channels: int = 1
  base_features: int = 64  # ngf: the seeds' widths 256, 128, 64 are 4, 2, 1 x this
  negative_slope: float = 0.3  # tf.keras.layers.LeakyReLU's default, as in the seeds
  num_classes: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
    bn = lambda: _generator_norm(self.num_classes, labels, train, self.dtype, momentum=0.9)
    act = lambda x: nn.leaky_relu(x, self.negative_slope)
    width = self.base_features
    x = Dense(7 * 7 * 4 * width, use_bias=False, dtype=self.dtype)(z)
    x = act(bn()(x)).reshape(z.shape[0], 7, 7, 4 * width)
    x = act(bn()(ConvTranspose(2 * width, (5, 5), (1, 1), use_bias=False, dtype=self.dtype)(x)))
    x = act(bn()(ConvTranspose(width, (5, 5), (2, 2), use_bias=False, dtype=self.dtype)(x)))
    x = ConvTranspose(self.channels, (5, 5), (2, 2), use_bias=False, dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


# Discriminator normalisation layers: "batch" (the Radford default), "layer"
# (per image, over H, W, C: what WGAN-GP's critic uses, since a gradient
# penalty is per image), or "none".
NORMALIZATIONS = ("batch", "layer", "none")


class MnistDiscriminator(DiscriminatorFields):
  """images [batch, 28, 28, C] -> logits [batch] (conditional: see
  `conditional_output`). It has no normalisation layers (dropout instead)."""
  base_features: int = 64  # ndf: the seeds' widths 64, 128 are 1, 2 x this
  negative_slope: float = 0.3
  dropout_rate: float = 0.3

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, labels: jax.Array | None = None):
    act = lambda x: nn.leaky_relu(x, self.negative_slope)
    sn = lambda layer: spectral(layer, self.spectral_norm, train)
    for features in (self.base_features, 2 * self.base_features):
      x = sn(Conv(features, (5, 5), (2, 2), padding="SAME", dtype=self.dtype))(x)
      x = Dropout(self.dropout_rate, deterministic=not train)(act(x))
    h = x.reshape(x.shape[0], -1)
    logit = sn(Dense(1, dtype=self.dtype))(h)[:, 0].astype(jnp.float32)
    return conditional_output(logit, h, labels, num_classes=self.num_classes,
                              conditional=self.conditional, spectral_norm=self.spectral_norm,
                              train=train, dtype=self.dtype)


def _num_doublings(image_size: int) -> int:
  k = math.log2(image_size / 4) if image_size >= 8 else -1
  if k != int(k) or k < 1:
    raise ValueError(f"The DCGAN architecture needs image_size = 4 * 2**k "
                     f"(8, 16, 32, 64, 128, ...); got {image_size}.")
  return int(k)


class Generator(nn.Module):
  """Radford et al. DCGAN generator: z -> [batch, size, size, channels]."""
  image_size: int = 64
  channels: int = 3
  base_features: int = 64  # ngf
  num_classes: int = 0  # > 0: class-conditional (conditional BatchNorm)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
    n = _num_doublings(self.image_size)
    bn = lambda: _generator_norm(self.num_classes, labels, train, self.dtype, momentum=0.9,
                                 epsilon=1e-5, scale_init=_bn_scale_init)
    up = lambda f, s, p: ConvTranspose(f, (4, 4), (s, s), padding=((p, p), (p, p)),
                                       use_bias=False, kernel_init=_dcgan_init, dtype=self.dtype)
    x = z.reshape(z.shape[0], 1, 1, z.shape[-1])
    # 1x1 -> 4x4 (PyTorch ConvTranspose2d(k=4, s=1, p=0) pads the dilated input by 3).
    x = nn.relu(bn()(up(self.base_features * 2 ** (n - 1), 1, 3)(x)))
    for i in reversed(range(n - 1)):
      # PyTorch ConvTranspose2d(k=4, s=2, p=1): the dilated input is padded by 2.
      x = nn.relu(bn()(up(self.base_features * 2 ** i, 2, 2)(x)))
    x = up(self.channels, 2, 2)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(DiscriminatorFields):
  """Radford et al. DCGAN discriminator: [batch, size, size, C] -> logits [batch]."""
  image_size: int = 64
  base_features: int = 64  # ndf
  normalization: str = "batch"  # see NORMALIZATIONS

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, labels: jax.Array | None = None):
    n = _num_doublings(self.image_size)
    conv = lambda f, s, p: spectral(
        Conv(f, (4, 4), (s, s), padding=((p, p), (p, p)), use_bias=False,
             kernel_init=_dcgan_init, dtype=self.dtype), self.spectral_norm, train)
    x = nn.leaky_relu(conv(self.base_features, 2, 1)(x), 0.2)
    for i in range(1, n):
      x = conv(self.base_features * 2 ** i, 2, 1)(x)
      if self.normalization == "batch":
        x = BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      scale_init=_bn_scale_init, dtype=self.dtype)(x)
      elif self.normalization == "layer":
        x = nn.LayerNorm(reduction_axes=(1, 2, 3), feature_axes=-1, dtype=self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    h = x
    x = conv(1, 1, 0)(x)  # 4x4 -> 1x1
    logit = x.reshape(x.shape[0]).astype(jnp.float32)
    return conditional_output(logit, h.reshape(h.shape[0], -1), labels,
                              num_classes=self.num_classes, conditional=self.conditional,
                              spectral_norm=self.spectral_norm, train=train, dtype=self.dtype)


def make_dcgan(image_size: int, channels: int, *, ngf: int = 64, ndf: int = 64,
               d_normalization: str | None = None, spectral_norm: bool = False,
               num_classes: int = 0, conditional: str = "",
               dtype=jnp.float32) -> tuple[nn.Module, nn.Module]:
  """The (generator, discriminator) pair for an image size.

  d_normalization: the discriminator's normalisation layers (NORMALIZATIONS);
  None keeps the architecture's own (Radford: "batch"; the 28x28 model has
  none). conditional: "" or, with num_classes labels, "projection" / "acgan"
  (jaxgan.models.conditioning); the generator is then class-conditional.
  """
  g_classes = num_classes if conditional else 0
  if d_normalization is not None and d_normalization not in NORMALIZATIONS:
    raise ValueError(f"Unknown config.d_normalization {d_normalization!r}; use one of "
                     f"{', '.join(NORMALIZATIONS)} (or leave it unset for the "
                     "architecture's own).")
  if image_size == 28:
    if d_normalization not in (None, "none"):
      raise ValueError(f"config.d_normalization={d_normalization!r}: the 28x28 discriminator "
                       "has no normalisation layers (it uses dropout); leave it unset.")
    return (MnistGenerator(channels=channels, base_features=ngf, num_classes=g_classes,
                           dtype=dtype),
            MnistDiscriminator(base_features=ndf, spectral_norm=spectral_norm,
                               num_classes=num_classes,
                               conditional=conditional, dtype=dtype))
  return (Generator(image_size=image_size, channels=channels, base_features=ngf,
                    num_classes=g_classes, dtype=dtype),
          Discriminator(image_size=image_size, base_features=ndf, spectral_norm=spectral_norm,
                        normalization=d_normalization or "batch", num_classes=num_classes,
                        conditional=conditional, dtype=dtype))
