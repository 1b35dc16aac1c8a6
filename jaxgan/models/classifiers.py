"""Image classifiers (pure Flax Linen modules).

Every classifier maps images [batch, H, W, C] to logits [batch, classes]; with
`return_features=True` it returns (logits, features), the penultimate-layer
activations that feature-space metrics (FID, KID, ...) use.

- `SmallCNN`: the seeds' small CNNs: 3x3 conv + 2x2 max-pool stages, dense
  128, dropout 0.5 (`small_cnn`: 32, 64 filters, same padding, for MNIST;
  `seed_cifar_cnn`: the seeds' CIFAR-10 CNN, 32, 64, 128 filters, valid padding).
- `LeNet5`: LeCun et al. (1998): conv 6, pool, conv 16, pool, dense 120, 84.
- `ResNet`: the CIFAR ResNets with BatchNorm: `resnet20` (He et al. 2016, 3
  stages of 3 basic blocks, 16/32/64 wide) and `resnet18` (4 stages of 2
  blocks, 64..512 wide, a 3x3 stem for small images).
- `FastCNN` (`fast_cnn`): the plain conv-pool network of the fastest CIFAR-10
  training recipes (Page 2018's DAWNBench ResNet-9 without its residual
  branches; Jordan 2024's airbench): a 2x2 stem, then stages of conv, 2x2
  max-pool, BatchNorm, ReLU, conv, BatchNorm, ReLU, 64/128/128 wide; the
  global max of the last stage as features, logits scaled by 1/8. Wider
  layers than ResNet-20's 16-channel ones use a CPU's vector units better.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.initializers import Dense, FlaxConv
from jaxgan.models.layers import max_pool


class SmallCNN(nn.Module):
  num_classes: int
  features: Sequence[int] = (32, 64)
  hidden: int = 128
  dropout_rate: float = 0.5
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, return_features: bool = False):
    for width in self.features:
      x = nn.relu(FlaxConv(width, (3, 3), padding=self.padding)(x))
      x = max_pool(x, (2, 2))
    features = nn.relu(Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    logits = Dense(self.num_classes)(x)
    return (logits, features) if return_features else logits


class LeNet5(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, return_features: bool = False):
    # 28x28 inputs are padded to LeNet's 32x32 by the first SAME convolution.
    x = nn.relu(FlaxConv(6, (5, 5), padding="SAME")(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.relu(FlaxConv(16, (5, 5), padding="VALID")(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.relu(Dense(120)(x.reshape(x.shape[0], -1)))
    features = nn.relu(Dense(84)(x))
    logits = Dense(self.num_classes)(features)
    return (logits, features) if return_features else logits


class _BasicBlock(nn.Module):
  features: int
  strides: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
    conv = lambda s: FlaxConv(self.features, (3, 3), (s, s), padding="SAME", use_bias=False)
    y = nn.relu(bn()(conv(self.strides)(x)))
    y = bn()(conv(1)(y))
    if x.shape != y.shape:  # Projection shortcut.
      x = FlaxConv(self.features, (1, 1), (self.strides, self.strides), use_bias=False)(x)
      x = bn()(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  num_classes: int
  stage_sizes: Sequence[int] = (3, 3, 3)
  widths: Sequence[int] = (16, 32, 64)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, return_features: bool = False):
    x = FlaxConv(self.widths[0], (3, 3), padding="SAME", use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    for i, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(blocks):
        x = _BasicBlock(width, 2 if (i > 0 and j == 0) else 1)(x, train)
    features = jnp.mean(x, axis=(1, 2))
    logits = Dense(self.num_classes)(features)
    return (logits, features) if return_features else logits


class FastCNN(nn.Module):
  num_classes: int
  widths: Sequence[int] = (64, 128, 128)
  stem: int = 24
  logit_scale: float = 0.125  # small initial logits, as Page's and Jordan's networks have

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, return_features: bool = False):
    bn_relu = lambda y: nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(y))
    x = bn_relu(FlaxConv(self.stem, (2, 2), padding="VALID", use_bias=False)(x))
    for width in self.widths:
      x = FlaxConv(width, (3, 3), padding="SAME", use_bias=False)(x)
      x = bn_relu(max_pool(x, (2, 2)))
      x = bn_relu(FlaxConv(width, (3, 3), padding="SAME", use_bias=False)(x))
    features = jnp.max(x, axis=(1, 2))
    logits = Dense(self.num_classes, use_bias=False)(features) * self.logit_scale
    return (logits, features) if return_features else logits
