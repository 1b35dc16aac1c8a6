"""`jax.random` draws computed as one flat vector and reshaped.

They return exactly what their `jax.random` namesakes return (bit for bit;
`tests/test_initializers.py` checks it) but compile much faster on CPU: XLA's
compiler spends ~10x longer on a threefry draw of a rank-4 shape than on the
same number of values drawn 1-D (a 4x4x1x8 kernel: 4.4 s vs 0.3 s here), which
made compiling `Module.init` most of a run's start-up (a small conv VAE's: 17
s, a 16x16 DCGAN's: 20 s). jax.random's values depend only on each element's
flat (row-major) index, with partitionable threefry (the default) and without
it, so a flat draw reshaped is the same array. Model initializers
(`jaxgan.models.initializers`) and the step functions' draws use these;
`python -m benchmarks.init_compile` compares the two forms per model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def _size(shape: Sequence[int]) -> tuple[int]:
  return (math.prod(shape),)


def normal(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  return jax.random.normal(key, _size(shape), dtype).reshape(shape)


def truncated_normal(key: jax.Array, lower, upper, shape: Sequence[int],
                     dtype=jnp.float32) -> jax.Array:
  return jax.random.truncated_normal(key, lower, upper, _size(shape), dtype).reshape(shape)


def uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32, minval=0.0,
            maxval=1.0) -> jax.Array:
  return jax.random.uniform(key, _size(shape), dtype, minval, maxval).reshape(shape)


def bernoulli(key: jax.Array, p: jax.Array) -> jax.Array:
  """Booleans with probabilities `p` (an array; its shape is the draw's)."""
  return jax.random.bernoulli(key, p.reshape(-1)).reshape(p.shape)
