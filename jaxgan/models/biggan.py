"""BigGAN (Brock et al. 2019), the 32x32 and 64x64 configurations, pure Flax
Linen.

Generator: z is split into one chunk per generator block plus one
(hierarchical latents); the first chunk goes through a linear layer to a
4x4 map, and each up-sampling residual block (the SNGAN block: BN, ReLU,
nearest x2, 3x3 conv, BN, ReLU, 3x3 conv; shortcut nearest x2, 1x1 conv)
normalises with conditional BatchNorm whose gain (1 + linear) and bias
(linear) are computed from [shared class embedding, its z chunk] — one
class embedding shared by every block. A self-attention block (Zhang et al.
2019, SAGAN) follows the block at `attention` resolution; then BN, ReLU,
3x3 conv, tanh. Unconditional (num_classes 0): the blocks' BatchNorm is
conditioned on their z chunk alone.

Discriminator: SNGAN residual blocks (`jaxgan.models.sngan.DBlock`; the
first "optimized"), a self-attention block after the block at `attention`
resolution, ReLU, global sum pooling, a linear logit, and the projection
term (Miyato & Koyama 2018) when class-conditional.

Widths are multiples of `ch` (ngf for G, ndf for D; 64 in the paper's CIFAR
models and StudioGAN's): at 32x32, G blocks 4ch, 4ch, 4ch (to 8, 16, 32) and
D blocks 4ch x 4 (down, down, -, -); at 64x64, G 16ch -> 16ch, 8ch, 4ch, 2ch
(to 8 ... 64) and D ch, 2ch, 4ch, 8ch, 16ch (four down-sampling). Spectral
normalisation in every layer of both networks (the embedding tables
excepted), orthogonal initialisation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.conditioning import DiscriminatorFields, one_hot, spectral
from jaxgan.models.layers import BatchNorm, Conv
from jaxgan.models.sngan import DBlock, sum_pooled_output, upsample

_ortho = nn.initializers.orthogonal()

# resolution -> (G: input width, block output widths; D: block widths, which down-sample)
ARCHITECTURES = {
    32: ((4, (4, 4, 4)), ((4, 4, 4, 4), (True, True, False, False))),
    64: ((16, (16, 8, 4, 2)), ((1, 2, 4, 8, 16), (True, True, True, True, False))),
}
# The resolution of the self-attention block (the paper's 64 at 128x128 scaled down).
ATTENTION = {32: 16, 64: 32}
SHARED_DIM = 128  # the shared class embedding's size


def _check_size(image_size: int) -> None:
  if image_size not in ARCHITECTURES:
    raise ValueError(f"BigGAN has configurations for image_size {sorted(ARCHITECTURES)}; got "
                     f"{image_size}. Use --config.image_size=32 or 64 (images are resized).")


def max_pool(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2 (a reshape: XLA's CPU reduce-window is slow)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def split_latent(z: jax.Array, parts: int) -> list[jax.Array]:
  """Hierarchical latents: `parts` chunks of z [B, D], each D // parts wide
  except the first, which takes the remainder too."""
  d = z.shape[-1]
  if d < parts:
    raise ValueError(f"BigGAN's hierarchical latent needs latent_dim >= {parts} (one chunk "
                     f"per block and one for the input); got {d}.")
  size = d // parts
  first = d - size * (parts - 1)
  return [z[:, :first]] + [z[:, first + i * size:first + (i + 1) * size]
                           for i in range(parts - 1)]


class SelfAttention(nn.Module):
  """SAGAN's attention block: x + gamma * o, with queries from 1x1 convs of
  C/8 channels at every position, keys (C/8) and values (C/2) from 1x1 convs
  max-pooled 2x2, o a 1x1 conv of the attended values back to C channels,
  gamma a learned scalar initialised to 0 (the block starts as the
  identity). Spectrally normalised with the network."""
  spectral_norm: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    b, h, w, c = x.shape
    conv = lambda f, name: spectral(
        Conv(f, (1, 1), use_bias=False, kernel_init=_ortho, dtype=self.dtype, name=name),
        self.spectral_norm, train)
    theta = conv(c // 8, "theta")(x).reshape(b, h * w, c // 8)
    phi = max_pool(conv(c // 8, "phi")(x)).reshape(b, h * w // 4, c // 8)
    g = max_pool(conv(c // 2, "g")(x)).reshape(b, h * w // 4, c // 2)
    beta = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi).astype(jnp.float32), axis=-1)
    o = jnp.einsum("bqk,bkc->bqc", beta.astype(g.dtype), g).reshape(b, h, w, c // 2)
    o = conv(c, "o")(o)
    gamma = self.param("gamma", nn.initializers.zeros_init(), ())
    return x + (gamma * o).astype(x.dtype)


class LinearConditionalBatchNorm(nn.Module):
  """BatchNorm without its own scale and offset, then gain 1 + W_g c and bias
  W_b c from a conditioning vector c [B, D] (BigGAN's conditional BN)."""
  spectral_norm: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array, train: bool) -> jax.Array:
    x = BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                  use_scale=False, use_bias=False, dtype=self.dtype)(x)
    f = x.shape[-1]
    linear = lambda name: spectral(nn.Dense(f, use_bias=False, kernel_init=_ortho,
                                            dtype=self.dtype, name=name),
                                   self.spectral_norm, train)
    gain = 1.0 + linear("gain")(cond).astype(jnp.float32)
    bias = linear("bias")(cond).astype(jnp.float32)
    return (x.astype(jnp.float32) * gain[:, None, None, :] + bias[:, None, None, :]
            ).astype(x.dtype)


class GBlock(nn.Module):
  features: int
  spectral_norm: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train: bool):
    kw = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
    conv = lambda k: spectral(Conv(self.features, (k, k), padding="SAME", kernel_init=_ortho,
                                   dtype=self.dtype), self.spectral_norm, train)
    h = upsample(nn.relu(LinearConditionalBatchNorm(**kw)(x, cond, train)))
    h = conv(3)(h)
    h = conv(3)(nn.relu(LinearConditionalBatchNorm(**kw)(h, cond, train)))
    return h + conv(1)(upsample(x))


class BigGANGenerator(nn.Module):
  """z [B, latent] (and labels [B] when num_classes > 0) -> images [B, size,
  size, channels] in [-1, 1]."""
  image_size: int = 32
  channels: int = 3
  ch: int = 64
  num_classes: int = 0
  spectral_norm: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
    _check_size(self.image_size)
    if self.num_classes and labels is None:
      raise ValueError("A conditional generator needs labels.")
    (first, widths), _ = ARCHITECTURES[self.image_size]
    chunks = split_latent(z, len(widths) + 1)
    shared = None
    if self.num_classes:
      table = self.param("shared_embedding", nn.initializers.normal(1.0),
                         (self.num_classes, SHARED_DIM))
      shared = one_hot(labels, self.num_classes) @ table
    linear = spectral(nn.Dense(4 * 4 * first * self.ch, kernel_init=_ortho, dtype=self.dtype),
                      self.spectral_norm, train)
    x = linear(chunks[0]).reshape(z.shape[0], 4, 4, first * self.ch)
    resolution = 4
    for width, chunk in zip(widths, chunks[1:]):
      cond = chunk if shared is None else jnp.concatenate([shared, chunk], axis=-1)
      x = GBlock(width * self.ch, self.spectral_norm, self.dtype)(x, cond, train)
      resolution *= 2
      if resolution == ATTENTION[self.image_size]:
        x = SelfAttention(self.spectral_norm, self.dtype)(x, train)
    x = nn.relu(BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                          dtype=self.dtype)(x))
    x = spectral(Conv(self.channels, (3, 3), padding="SAME", kernel_init=_ortho,
                      dtype=self.dtype), self.spectral_norm, train)(x)
    return jnp.tanh(x.astype(jnp.float32))


class BigGANDiscriminator(DiscriminatorFields):
  """images [B, size, size, C] -> logits [B] (conditional: see
  `conditional_output`)."""
  image_size: int = 32
  ch: int = 64
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, labels: jax.Array | None = None):
    _check_size(self.image_size)
    _, (widths, downs) = ARCHITECTURES[self.image_size]
    resolution = self.image_size
    for i, (width, down) in enumerate(zip(widths, downs)):
      x = DBlock(width * self.ch, downsample=down, optimized=i == 0,
                 spectral_norm=self.spectral_norm, dtype=self.dtype)(x, train)
      resolution //= 2 if down else 1
      if i == 0 and resolution == ATTENTION[self.image_size]:
        x = SelfAttention(self.spectral_norm, self.dtype)(x, train)
    return sum_pooled_output(self, x, labels, _ortho, train)


def make_biggan(image_size: int, channels: int, *, ngf: int = 64, ndf: int = 64,
                d_normalization: str | None = None, spectral_norm: bool = True,
                num_classes: int = 0, conditional: str = "",
                dtype=jnp.float32) -> tuple[nn.Module, nn.Module]:
  """The BigGAN (generator, discriminator) pair; ngf and ndf are the paper's
  G_ch and D_ch. Spectral normalisation (`spectral_norm`) applies to both
  networks, as in the paper. The discriminator has no normalisation layers."""
  if d_normalization not in (None, "none"):
    raise ValueError(f"config.d_normalization={d_normalization!r}: the BigGAN discriminator "
                     "has no normalisation layers; leave it unset.")
  if conditional == "acgan":
    raise ValueError("BigGAN's discriminator is a projection discriminator: use "
                     "--config.conditional=projection (or '' for unconditional).")
  _check_size(image_size)
  return (BigGANGenerator(image_size=image_size, channels=channels, ch=ngf,
                          num_classes=num_classes if conditional else 0,
                          spectral_norm=spectral_norm, dtype=dtype),
          BigGANDiscriminator(image_size=image_size, ch=ndf, spectral_norm=spectral_norm,
                              num_classes=num_classes, conditional=conditional, dtype=dtype))
