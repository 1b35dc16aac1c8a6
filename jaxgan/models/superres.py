"""A super-resolution network: low-resolution images -> `scale` times larger.

SRResNet/ESPCN-style (Ledig et al. 2017; Shi et al. 2016): a 3x3 convolution,
`num_blocks` residual blocks (conv, ReLU, conv, plus the input), a global
skip, then one sub-pixel stage per factor 2 (a convolution to 4x the
channels and `pixel_shuffle`, the depth-to-space rearrangement) and a 3x3
convolution to the image channels. The network predicts the residual over
bicubic up-sampling of its input, so an untrained network starts at the
bicubic baseline.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax


def pixel_shuffle(x: jax.Array, factor: int) -> jax.Array:
  """[N, H, W, C * f^2] -> [N, H f, W f, C] (depth to space; channel index
  c * f^2 + i * f + j goes to sub-pixel (i, j) of channel c, as PyTorch's
  PixelShuffle)."""
  n, h, w, cf = x.shape
  c = cf // (factor * factor)
  x = x.reshape(n, h, w, c, factor, factor)
  return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * factor, w * factor, c)


def space_to_depth(x: jax.Array, factor: int) -> jax.Array:
  """The inverse of `pixel_shuffle`."""
  n, hf, wf, c = x.shape
  h, w = hf // factor, wf // factor
  x = x.reshape(n, h, factor, w, factor, c)
  return x.transpose(0, 1, 3, 5, 2, 4).reshape(n, h, w, c * factor * factor)


def bicubic_upsample(x: jax.Array, scale: int) -> jax.Array:
  n, h, w, c = x.shape
  return jax.image.resize(x, (n, h * scale, w * scale, c), "bicubic")


def area_downsample(x: jax.Array, scale: int) -> jax.Array:
  """Each scale x scale block averaged (area interpolation by an integer factor)."""
  n, h, w, c = x.shape
  return x.reshape(n, h // scale, scale, w // scale, scale, c).mean(axis=(2, 4))


class SRResNet(nn.Module):
  scale: int = 4  # a power of 2
  channels: int = 1
  features: int = 64
  num_blocks: int = 4

  @nn.compact
  def __call__(self, lr: jax.Array, train: bool = False) -> jax.Array:
    stages = int(round(math.log2(self.scale)))
    conv = lambda f, name=None: nn.Conv(f, (3, 3), padding="SAME", name=name)
    x = nn.relu(conv(self.features)(lr))
    skip = x
    for _ in range(self.num_blocks):
      y = conv(self.features)(nn.relu(conv(self.features)(x)))
      x = x + y
    x = conv(self.features)(x) + skip
    for _ in range(stages):
      x = nn.relu(pixel_shuffle(conv(self.features * 4)(x), 2))
    residual = conv(self.channels)(x)
    return bicubic_upsample(lr, self.scale) + residual
