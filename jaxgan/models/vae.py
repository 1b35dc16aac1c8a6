"""Variational autoencoders (pure Flax Linen modules).

A `VAE` pairs an encoder, images -> (mean, log-variance) of a diagonal
Gaussian posterior q(z|x), with a decoder, z -> the parameters of p(x|z)
(`out_channels` per pixel: 1 per image channel for Bernoulli logits, 2 for
the discretized Gaussian/logistic means and log-scales; see
`jaxgan.likelihoods`). Two families:

- `MlpEncoder` / `MlpDecoder`: the seeds' MLP VAE, flattened pixels ->
  256 -> 256 -> z and mirrored.
- `ConvEncoder` / `ConvDecoder`: stride-2 4x4 convolutions down to 7x7 (28x28
  inputs) or 4x4 (4 * 2**k inputs), mirrored with `ConvTranspose` (the fast
  phase-decomposed up-convolution).
- `ResNetEncoder` / `ResNetDecoder`: residual blocks around a spatial latent.

A VAE may add an autoregressive `head` after its decoder (`PixelHead`, the
PixelVAE idea of Gulrajani et al. 2017): masked convolutions over the image
itself, so p(x|z) = prod_i p(x_i | z, x_<i) in raster order. Scoring an image
then needs the image (`decode(z, x)`, teacher forcing: one pass); drawing one
needs a pass per pixel (`jaxgan.tasks.vae.VAETask.generate`).

`train` is accepted for the common model interface; these models have no
dropout or BatchNorm, so it changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import flat_random
from jaxgan.models.initializers import Dense, FlaxConv
from jaxgan.models.layers import Conv, ConvTranspose


class MlpEncoder(nn.Module):
  latent_dim: int
  hidden: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(Dense(width)(h))
    stats = Dense(2 * self.latent_dim)(h)
    return stats[:, :self.latent_dim], stats[:, self.latent_dim:]


class MlpDecoder(nn.Module):
  image_shape: tuple[int, int, int]
  out_channels: int
  hidden: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    h = z
    for width in reversed(tuple(self.hidden)):
      h = nn.relu(Dense(width)(h))
    height, width, _ = self.image_shape
    out = Dense(height * width * self.out_channels)(h)
    return out.reshape(z.shape[0], height, width, self.out_channels)


def conv_plan(image_size: int) -> int:
  """Number of stride-2 stages: down to 7x7 (28, 14) or 4x4 (4 * 2**k)."""
  n, size = 0, image_size
  while size % 2 == 0 and size > 7 and size // 2 >= 4:
    size //= 2
    n += 1
  if size not in (4, 7) or n == 0:
    raise ValueError(f"The conv VAE needs image_size 14, 28 or 4 * 2**k (8, 16, 32, "
                     f"64, ...); got {image_size}. Use model='mlp' for other sizes.")
  return n


def _widths(num_stages: int, base: int) -> list[int]:
  return [min(base * 2**i, 8 * base) for i in range(num_stages)]


class ConvEncoder(nn.Module):
  latent_dim: int
  base_features: int = 32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    h = x
    for width in _widths(conv_plan(x.shape[1]), self.base_features):
      h = nn.relu(FlaxConv(width, (4, 4), (2, 2), padding="SAME")(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(Dense(256)(h))
    stats = Dense(2 * self.latent_dim)(h)
    return stats[:, :self.latent_dim], stats[:, self.latent_dim:]


class ConvDecoder(nn.Module):
  image_shape: tuple[int, int, int]
  out_channels: int
  base_features: int = 32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    size = self.image_shape[0]
    num_stages = conv_plan(size)
    widths = _widths(num_stages, self.base_features)
    start = size // 2**num_stages
    h = nn.relu(Dense(256)(z))
    h = nn.relu(Dense(start * start * widths[-1])(h))
    h = h.reshape(z.shape[0], start, start, widths[-1])
    for width in reversed(widths[:-1]):
      h = nn.relu(ConvTranspose(width, (4, 4), (2, 2), padding="SAME")(h))
    return ConvTranspose(self.out_channels, (4, 4), (2, 2), padding="SAME")(h)


class VAE(nn.Module):
  """encode(x) -> (mean, logvar); decode(z, x) -> likelihood parameters of x;
  __call__(x, key) -> (decoder output, mean, logvar, z) for one posterior draw.

  Without a `head`, decode ignores x: p(x|z) factorises over pixels. With one,
  decode(z, x) = head(decoder(z), x), each pixel's parameters depending on z
  and the pixels of x before it (see `PixelHead`); `features` and `head_params`
  are the two halves, for drawing pixel by pixel."""
  encoder: nn.Module
  decoder: nn.Module
  head: nn.Module | None = None

  @property
  def autoregressive(self) -> bool:
    return self.head is not None

  def encode(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    return self.encoder(x, train)

  def decode(self, z: jax.Array, x: jax.Array | None = None, train: bool = False) -> jax.Array:
    out = self.decoder(z, train)
    if self.head is None:
      return out
    if x is None:
      raise ValueError("This VAE's decoder is autoregressive: decode(z, x) scores the image x; "
                       "draw images with VAETask.generate.")
    return self.head(out, x)

  def features(self, z: jax.Array) -> jax.Array:
    """The decoder's output before the autoregressive head."""
    return self.decoder(z, False)

  def head_params(self, features: jax.Array, x: jax.Array) -> jax.Array:
    return self.head(features, x)

  def __call__(self, x: jax.Array, key: jax.Array, train: bool = False):
    mean, logvar = self.encode(x, train)
    z = mean + jnp.exp(0.5 * logvar) * flat_random.normal(key, mean.shape, mean.dtype)
    return self.decode(z, x, train), mean, logvar, z


def mlp_vae(image_shape: tuple[int, int, int], latent_dim: int, out_channels: int,
            base_features: int = 32) -> VAE:
  """The seeds' MLP VAE (784-256-256-z); `base_features` is unused."""
  return VAE(MlpEncoder(latent_dim), MlpDecoder(tuple(image_shape), out_channels))


def conv_vae(image_shape: tuple[int, int, int], latent_dim: int, out_channels: int,
             base_features: int = 32) -> VAE:
  """The convolutional VAE (28x28, 14x14 or 4 * 2**k images)."""
  conv_plan(image_shape[0])  # Fail early on unsupported sizes.
  return VAE(ConvEncoder(latent_dim, base_features),
             ConvDecoder(tuple(image_shape), out_channels, base_features))


# -- The ResNet VAE with a spatial latent ------------------------------------------

def spatial_latent_plan(image_shape: tuple[int, int, int], latent_dim: int) -> tuple[int, int]:
  """(grid, channels) of the ResNet VAE's latent: a grid x grid x channels map
  at a quarter of the image's side, flattened to latent_dim."""
  size = image_shape[0]
  if image_shape[0] != image_shape[1] or size % 4:
    raise ValueError(f"The resnet VAE needs square images whose side divides by 4 "
                     f"(28, 32, 64, ...); got {image_shape[0]}x{image_shape[1]}.")
  grid = size // 4
  if latent_dim % (grid * grid):
    raise ValueError(f"The resnet VAE's latent is a {grid}x{grid}xC map: latent_dim must be "
                     f"a multiple of {grid * grid} (e.g. {grid * grid * 8}); got {latent_dim}.")
  return grid, latent_dim // (grid * grid)


class ResidualBlock(nn.Module):
  """x + conv3x3(swish(conv3x3(swish(x)))), no normalisation (a VAE's
  likelihood must not depend on the rest of the batch)."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = Conv(self.features, (3, 3), padding="SAME")(nn.swish(x))
    h = Conv(self.features, (3, 3), padding="SAME",
                 kernel_init=nn.initializers.zeros)(nn.swish(h))
    return x + h


class ResNetEncoder(nn.Module):
  """Image -> a spatial posterior: two stride-2 stages (widths base, 2 base),
  a residual block at each resolution, then mean and log-variance per latent
  position, flattened."""
  latent_dim: int
  base_features: int = 32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    _, channels = spatial_latent_plan(x.shape[1:], self.latent_dim)
    width = self.base_features
    h = Conv(width, (3, 3), padding="SAME")(x)
    h = ResidualBlock(width)(h)
    h = Conv(2 * width, (4, 4), (2, 2), padding="SAME")(nn.swish(h))
    h = ResidualBlock(2 * width)(h)
    h = Conv(2 * width, (4, 4), (2, 2), padding="SAME")(nn.swish(h))
    h = ResidualBlock(2 * width)(h)
    stats = Conv(2 * channels, (3, 3), padding="SAME")(nn.swish(h))
    mean, logvar = jnp.split(stats, 2, axis=-1)
    return mean.reshape(x.shape[0], -1), logvar.reshape(x.shape[0], -1)


class ResNetDecoder(nn.Module):
  """The encoder mirrored: the latent map -> residual blocks and two stride-2
  up-convolutions -> `out_channels` per pixel."""
  image_shape: tuple[int, int, int]
  out_channels: int
  base_features: int = 32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    grid, channels = spatial_latent_plan(self.image_shape, z.shape[-1])
    width = self.base_features
    h = Conv(2 * width, (3, 3), padding="SAME")(z.reshape(z.shape[0], grid, grid, channels))
    h = ResidualBlock(2 * width)(h)
    h = ConvTranspose(2 * width, (4, 4), (2, 2), padding="SAME")(nn.swish(h))
    h = ResidualBlock(2 * width)(h)
    h = ConvTranspose(width, (4, 4), (2, 2), padding="SAME")(nn.swish(h))
    h = ResidualBlock(width)(h)
    return Conv(self.out_channels, (3, 3), padding="SAME")(nn.swish(h))


def resnet_vae(image_shape: tuple[int, int, int], latent_dim: int, out_channels: int,
               base_features: int = 32) -> VAE:
  """The ResNet VAE: a spatial latent (side / 4, latent_dim / (side / 4)**2
  channels) between residual encoder and decoder, for RGB likelihoods."""
  spatial_latent_plan(tuple(image_shape), latent_dim)  # Fail early on unsupported shapes.
  return VAE(ResNetEncoder(latent_dim, base_features),
             ResNetDecoder(tuple(image_shape), out_channels, base_features))


# -- The autoregressive head (PixelVAE) --------------------------------------------

def raster_mask(size: int, in_features: int, out_features: int,
                include_centre: bool) -> np.ndarray:
  """A [size, size, in, out] kernel mask: 1 on the taps that look at pixels
  before the centre in raster order (the rows above, and the left part of the
  centre row), and on the centre itself if `include_centre`. A first layer
  with the centre excluded and later layers with it included keep every
  output at pixel i a function of the pixels before i only (PixelCNN's masks
  A and B, at pixel granularity: the channels within a pixel are ordered by
  the likelihood, `logistic_ar`)."""
  c = size // 2
  mask = np.zeros((size, size), np.float32)
  mask[:c] = 1.0
  mask[c, :c] = 1.0
  mask[c, c] = float(include_centre)
  return np.broadcast_to(mask[:, :, None, None], (size, size, in_features, out_features)).copy()


class PixelHead(nn.Module):
  """decoder features [B, H, W, F], image x [B, H, W, C] -> likelihood
  parameters [B, H, W, out_channels], each pixel's from the features and the
  pixels of x before it.

  A 5x5 masked convolution of x (centre excluded), then `num_blocks` residual
  blocks of a 3x3 masked convolution (centre included), each with the
  features added through a 1x1 convolution, and a 1x1 output. It sees
  `rows_above` rows above each pixel (4 by default): a local model of the texture the
  factorised decoder cannot express (the PixelVAE of Gulrajani et al. 2017,
  kept small and local, leaving the image's layout to the latent; how much
  the latent then carries: docs/results.md#cifar10-vae)."""
  out_channels: int
  width: int = 32
  num_blocks: int = 2

  first_kernel: int = 5
  block_kernel: int = 3

  @property
  def rows_above(self) -> int:
    """How many rows above a pixel its parameters can depend on: the output
    at row i is a function of the input rows i - rows_above ... i only (and
    the same rows of the features), so a strip of those rows computes it."""
    return self.first_kernel // 2 + self.num_blocks * (self.block_kernel // 2)

  @nn.compact
  def __call__(self, features: jax.Array, x: jax.Array) -> jax.Array:
    w, k1, k = self.width, self.first_kernel, self.block_kernel
    h = FlaxConv(w, (k1, k1), padding="SAME", mask=raster_mask(k1, x.shape[-1], w, False))(x)
    h = h + FlaxConv(w, (1, 1))(features)
    for _ in range(self.num_blocks):
      r = FlaxConv(w, (k, k), padding="SAME", mask=raster_mask(k, w, w, True))(nn.swish(h))
      r = r + FlaxConv(w, (1, 1))(nn.swish(features))
      h = h + FlaxConv(w, (1, 1), kernel_init=nn.initializers.zeros)(nn.swish(r))
    return FlaxConv(self.out_channels, (1, 1))(nn.swish(h))


def pixel_vae(image_shape: tuple[int, int, int], latent_dim: int, out_channels: int,
              base_features: int = 32, head_blocks: int = 2, head_kernel: int = 5) -> VAE:
  """The ResNet VAE whose decoder ends in a `PixelHead` (width base_features):
  p(x|z) autoregressive over pixels, for the discretized likelihoods.

  head_blocks (the head's 3x3 residual blocks) and head_kernel (its first
  masked convolution, odd) set its context: head_kernel // 2 + head_blocks
  rows above each pixel (4 by default). A smaller context leaves more of the
  image for the latent to explain (the variational lossy autoencoder's remedy
  for posterior collapse, Chen et al. 2017); set them through
  --config.model_options."""
  spatial_latent_plan(tuple(image_shape), latent_dim)
  if head_blocks < 0 or head_kernel < 3 or head_kernel % 2 == 0:
    raise ValueError(f"model_options: head_blocks must be >= 0 and head_kernel odd and >= 3 "
                     f"(the pixel head's context); got {head_blocks} and {head_kernel}.")
  return VAE(ResNetEncoder(latent_dim, base_features),
             ResNetDecoder(tuple(image_shape), base_features, base_features),
             PixelHead(out_channels, base_features, num_blocks=head_blocks,
                       first_kernel=head_kernel))
