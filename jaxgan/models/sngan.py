"""The SNGAN ResNet generator and discriminator (Miyato et al. 2018; the
CIFAR-10 models of pfnet-research/sngan_projection), pure Flax Linen.

Generator: z (128) -> linear -> [s/8, s/8, ch] -> three up-sampling residual
blocks of `ch` channels (BN, ReLU, nearest x2, 3x3 conv, BN, ReLU, 3x3 conv;
shortcut: nearest x2, 1x1 conv) -> BN, ReLU, 3x3 conv, tanh. ch = 256 in the
paper. For 32x32 images the blocks start at 4x4 (the paper's); 48x48 starts
at 6x6 (their STL-10 width) and 64x64 at 8x8.

Discriminator: an "optimized" first block (3x3 conv, ReLU, 3x3 conv, 2x2
average pool; shortcut: pool, 1x1 conv), a down-sampling block and two
plain blocks (ReLU, 3x3 conv, ReLU, 3x3 conv [, pool]; a 1x1-conv shortcut
where the block pools or changes width), ReLU, global sum pooling, and a
linear logit; ch = 128 in the paper. Every layer spectrally normalised when
`spectral_norm` (the paper's setting).

Class-conditional with num_classes > 0: conditional BatchNorm in every
generator block and `conditional_output` (projection or ACGAN head) on the
discriminator's pooled features, as in Miyato & Koyama (2018).

Initialisation as in the reference code: Glorot-uniform, with gain sqrt(2)
for the residual branches' 3x3 convolutions and gain 1 for the shortcuts,
the linear layers and the generator's last convolution.

Pooling and nearest up-sampling are reshapes (XLA's CPU backend runs
reduce-window and its gradient slowly); the convolutions are jaxgan's `Conv`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import initializers
from jaxgan.models.conditioning import (ConditionalBatchNorm, DiscriminatorFields,
                                        conditional_output, spectral)
from jaxgan.models.layers import BatchNorm, Conv

_glorot = initializers.variance_scaling(1.0, "fan_avg", "uniform")
_glorot_relu = initializers.variance_scaling(2.0, "fan_avg", "uniform")  # gain sqrt(2)


def upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 up-sampling of [B, H, W, C]."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


def avg_pool(x: jax.Array) -> jax.Array:
  """2x2 average pooling, stride 2, of [B, H, W, C] (H, W even)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _bottom_width(image_size: int) -> int:
  if image_size % 8 or image_size < 16:
    raise ValueError(f"The SNGAN ResNet needs image_size divisible by 8 (32 as in the paper, "
                     f"48, 64); got {image_size}. Use --config.image_size=32 (MNIST is resized).")
  return image_size // 8


class _GBlock(nn.Module):
  features: int
  num_classes: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, labels, train: bool):
    def bn(h):
      if self.num_classes:
        return ConditionalBatchNorm(self.num_classes, momentum=0.9, epsilon=1e-5,
                                    dtype=self.dtype)(h, labels, train)
      return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                       dtype=self.dtype)(h)

    conv = lambda k, init: Conv(self.features, (k, k), padding="SAME", kernel_init=init,
                                dtype=self.dtype)
    h = upsample(nn.relu(bn(x)))
    h = conv(3, _glorot_relu)(h)
    h = conv(3, _glorot_relu)(nn.relu(bn(h)))
    return h + conv(1, _glorot)(upsample(x))


class ResNetGenerator(nn.Module):
  """z [B, latent] -> images [B, size, size, channels] in [-1, 1] (labels
  [B] when num_classes > 0)."""
  image_size: int = 32
  channels: int = 3
  features: int = 256  # ch
  num_classes: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
    if self.num_classes and labels is None:
      raise ValueError("A conditional generator needs labels.")
    w = _bottom_width(self.image_size)
    x = nn.Dense(w * w * self.features, kernel_init=_glorot, dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], w, w, self.features)
    for _ in range(3):
      x = _GBlock(self.features, self.num_classes, self.dtype)(x, labels, train)
    x = nn.relu(BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                          dtype=self.dtype)(x))
    x = Conv(self.channels, (3, 3), padding="SAME", kernel_init=_glorot, dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class DBlock(nn.Module):
  features: int
  downsample: bool
  optimized: bool = False  # the first block: no ReLU before its first conv
  spectral_norm: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda k, init: spectral(
        Conv(self.features, (k, k), padding="SAME", kernel_init=init, dtype=self.dtype),
        self.spectral_norm, train)
    h = x if self.optimized else nn.relu(x)
    h = conv(3, _glorot_relu)(h)
    h = conv(3, _glorot_relu)(nn.relu(h))
    if self.downsample:
      h = avg_pool(h)
    shortcut = x
    if self.optimized:
      shortcut = conv(1, _glorot)(avg_pool(x))  # pool first: cheaper, and the reference's order
    elif self.downsample or x.shape[-1] != self.features:
      shortcut = conv(1, _glorot)(x)
      if self.downsample:
        shortcut = avg_pool(shortcut)
    return h + shortcut


def sum_pooled_output(d: DiscriminatorFields, x: jax.Array, labels, kernel_init, train: bool):
  """The residual discriminators' head: ReLU, global sum pooling, a linear
  logit (initialised by `kernel_init`) and `conditional_output`. Call inside
  discriminator `d`'s compact `__call__` (its layers are d's submodules)."""
  h = jnp.sum(nn.relu(x), axis=(1, 2))  # global sum pooling
  dense = spectral(nn.Dense(1, kernel_init=kernel_init, dtype=d.dtype), d.spectral_norm, train)
  logit = dense(h)[:, 0].astype(jnp.float32)
  return conditional_output(logit, h, labels, num_classes=d.num_classes,
                            conditional=d.conditional, spectral_norm=d.spectral_norm,
                            train=train, dtype=d.dtype)


class ResNetDiscriminator(DiscriminatorFields):
  """images [B, size, size, C] -> logits [B] (conditional: see
  `conditional_output`)."""
  image_size: int = 32
  features: int = 128  # ch
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, labels: jax.Array | None = None):
    _bottom_width(self.image_size)
    kw = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
    x = DBlock(self.features, downsample=True, optimized=True, **kw)(x, train)
    x = DBlock(self.features, downsample=True, **kw)(x, train)
    x = DBlock(self.features, downsample=False, **kw)(x, train)
    x = DBlock(self.features, downsample=False, **kw)(x, train)
    return sum_pooled_output(self, x, labels, _glorot, train)


def make_sngan(image_size: int, channels: int, *, ngf: int = 256, ndf: int = 128,
               d_normalization: str | None = None, spectral_norm: bool = True,
               num_classes: int = 0, conditional: str = "",
               dtype=jnp.float32) -> tuple[nn.Module, nn.Module]:
  """The SNGAN ResNet (generator, discriminator) pair; widths ngf (G) and ndf
  (D). The discriminator has no normalisation layers."""
  if d_normalization not in (None, "none"):
    raise ValueError(f"config.d_normalization={d_normalization!r}: the SNGAN ResNet "
                     "discriminator has no normalisation layers; leave it unset.")
  _bottom_width(image_size)
  return (ResNetGenerator(image_size=image_size, channels=channels, features=ngf,
                          num_classes=num_classes if conditional else 0, dtype=dtype),
          ResNetDiscriminator(image_size=image_size, features=ndf, spectral_norm=spectral_norm,
                              num_classes=num_classes, conditional=conditional, dtype=dtype))
