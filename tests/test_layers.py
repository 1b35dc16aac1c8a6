"""The fast transposed convolution computes exactly flax.linen.ConvTranspose."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models.layers import ConvTranspose

CASES = [
    # input shape, kernel, strides, padding
    ((2, 7, 7, 8), (5, 5), (2, 2), "SAME"),            # MNIST generator up-convolutions
    ((2, 14, 14, 6), (5, 5), (2, 2), "SAME"),
    ((2, 7, 7, 8), (5, 5), (1, 1), "SAME"),
    ((2, 8, 8, 3), (4, 4), (2, 2), ((2, 2), (2, 2))),  # Radford: PyTorch k=4, s=2, p=1
    ((2, 1, 1, 5), (4, 4), (1, 1), ((3, 3), (3, 3))),  # Radford: 1x1 -> 4x4
    ((2, 5, 6, 3), (3, 4), (2, 3), "VALID"),           # odd sizes, unequal strides
    ((2, 5, 5, 2), (2, 2), (2, 2), ((0, 1), (1, 0))),  # asymmetric explicit padding
    ((2, 4, 4, 3), (3, 3), (3, 3), "SAME"),            # stride > kernel - 1
    ((1, 9, 4), (3,), (3,), "SAME"),                   # 1-D
]


@pytest.mark.parametrize("shape,kernel,strides,padding", CASES)
def test_matches_flax_values_and_gradients(shape, kernel, strides, padding):
  x = jax.random.normal(jax.random.key(0), shape)
  ref = nn.ConvTranspose(4, kernel, strides, padding=padding)
  fast = ConvTranspose(4, kernel, strides, padding=padding)
  variables = ref.init(jax.random.key(1), x)
  # Same parameter names and shapes: checkpoints are interchangeable.
  assert (jax.tree.map(jnp.shape, fast.init(jax.random.key(1), x)) ==
          jax.tree.map(jnp.shape, variables))
  # A random cotangent, so every output position's gradient is checked.
  cot = jax.random.normal(jax.random.key(2), ref.apply(variables, x).shape)

  def outputs_and_grads(module, v, x):
    loss = lambda v, x: jnp.sum(module.apply(v, x) * cot)
    return module.apply(v, x), jax.grad(loss, argnums=(0, 1))(v, x)

  with jax.default_matmul_precision("highest"):
    y_ref, g_ref = jax.jit(lambda v, x: outputs_and_grads(ref, v, x))(variables, x)
    y_fast, g_fast = jax.jit(lambda v, x: outputs_and_grads(fast, v, x))(variables, x)

  assert y_fast.shape == y_ref.shape
  # float32 tolerance: both sum the same products in different orders.
  np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_uses_no_input_dilated_convolution():
  """The point of the layer: no lhs-dilated (transposed) convolution in the
  forward pass or the gradients, which XLA runs slowly on CPU."""
  x = jnp.ones((2, 7, 7, 8))
  layer = ConvTranspose(4, (5, 5), (2, 2))
  variables = layer.init(jax.random.key(0), x)
  f = lambda v, x: jnp.sum(layer.apply(v, x) ** 2)
  hlo = jax.jit(jax.grad(f, argnums=(0, 1))).lower(variables, x).as_text()
  assert "convolution" in hlo
  assert _input_dilations(hlo) <= {1}, hlo
  # While the reference does use one.
  ref = nn.ConvTranspose(4, (5, 5), (2, 2))
  ref_hlo = jax.jit(jax.grad(lambda v, x: jnp.sum(ref.apply(v, x) ** 2))).lower(
      variables, x).as_text()
  assert 2 in _input_dilations(ref_hlo)


def _input_dilations(hlo: str) -> set[int]:
  """Every input (lhs) dilation factor of the convolutions in a lowered program."""
  return {int(d) for group in re.findall(r"lhs_dilate = \[([0-9, ]+)\]", hlo)
          for d in group.split(",")}


def test_rejects_unsupported_padding():
  with pytest.raises(ValueError, match="CIRCULAR"):
    ConvTranspose(4, (3, 3), (2, 2), padding="CIRCULAR").init(jax.random.key(0),
                                                             jnp.ones((1, 4, 4, 2)))
