"""Parameter initializers that draw their random numbers flat.

Each returns exactly the values of its `jax.nn.initializers` namesake (bit for
bit; `tests/test_initializers.py` checks it) but draws through
`jaxgan.flat_random`, which XLA compiles 2-5x faster
(`python -m benchmarks.init_compile`).

`Dense` and `FlaxConv` are `flax.linen.Dense` and `flax.linen.Conv` (XLA's
convolution; `layers.Conv` is the fast strided one) with their default kernel
initializer drawn flat.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import flat_random


def variance_scaling(scale: float, mode: str, distribution: str):
  """`jax.nn.initializers.variance_scaling(scale, mode, distribution)` for real
  dtypes, with the default axes (inputs -2, outputs -1, the rest receptive
  field)."""
  if mode not in ("fan_in", "fan_out", "fan_avg"):
    raise ValueError(f"Unknown variance scaling mode {mode!r}.")
  if distribution not in ("truncated_normal", "normal", "uniform"):
    raise ValueError(f"Unknown variance scaling distribution {distribution!r}.")

  def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    shape = tuple(shape)
    if len(shape) < 2:
      raise ValueError(f"variance_scaling needs a kernel of rank >= 2, got shape {shape}.")
    receptive = math.prod(shape) / shape[-2] / shape[-1]
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    denominator = {"fan_in": fan_in, "fan_out": fan_out,
                   "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = jnp.array(scale / denominator, dtype=dtype)
    if distribution == "truncated_normal":
      # The standard deviation of a standard normal truncated to (-2, 2).
      stddev = jnp.sqrt(variance) / jnp.array(.87962566103423978, dtype)
      return flat_random.truncated_normal(key, -2, 2, shape, dtype) * stddev
    if distribution == "normal":
      return flat_random.normal(key, shape, dtype) * jnp.sqrt(variance)
    return flat_random.uniform(key, shape, dtype, -1) * jnp.sqrt(3 * variance)

  return init


def lecun_normal():
  """flax's default kernel initializer (`jax.nn.initializers.lecun_normal()`)."""
  return variance_scaling(1.0, "fan_in", "truncated_normal")


def normal(stddev: float = 1e-2, mean: float = 0.0):
  """N(mean, stddev^2): `jax.nn.initializers.normal(stddev)` plus `mean` (added
  after scaling, as `mean + stddev * N(0, 1)`)."""

  def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    values = flat_random.normal(key, shape, dtype) * jnp.array(stddev, dtype)
    return values if mean == 0.0 else mean + values

  return init


Dense = functools.partial(nn.Dense, kernel_init=lecun_normal())
FlaxConv = functools.partial(nn.Conv, kernel_init=lecun_normal())
