"""The fast layers compute exactly what flax.linen.ConvTranspose and
flax.linen.Conv compute, gradients included."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import normal, random_init
from jaxgan.models.layers import BatchNorm, Conv, ConvTranspose, Dropout, hash_bits, max_pool

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


CONV_CASES = [
    # input shape, kernel, strides, padding
    ((2, 28, 28, 1), (5, 5), (2, 2), "SAME"),          # MNIST discriminator
    ((2, 14, 14, 6), (5, 5), (2, 2), "SAME"),
    ((2, 16, 16, 3), (4, 4), (2, 2), ((1, 1), (1, 1))),  # Radford: PyTorch k=4, s=2, p=1
    ((2, 4, 4, 5), (4, 4), (1, 1), "VALID"),           # Radford: 4x4 -> 1x1
    ((2, 7, 6, 3), (3, 4), (2, 3), "VALID"),           # unequal strides, unused last rows
    ((2, 9, 8, 2), (3, 2), (2, 2), ((0, 2), (1, 0))),  # asymmetric explicit padding
    ((2, 8, 8, 3), (1, 1), (2, 2), "SAME"),            # ResNet shortcut: 1x1, stride 2
    ((2, 10, 10, 2), (3, 3), (3, 3), "SAME"),          # stride > kernel - 1
    ((1, 11, 4), (3,), (2,), "SAME"),                  # 1-D
]


@pytest.mark.parametrize("layer,reference,shape,kernel,strides,padding",
                         [(ConvTranspose, nn.ConvTranspose) + c for c in CASES]
                         + [(Conv, nn.Conv) + c for c in CONV_CASES])
def test_matches_flax_values_and_gradients(layer, reference, shape, kernel, strides, padding):
  x = normal(shape)
  ref = reference(4, kernel, strides, padding=padding)
  fast = layer(4, kernel, strides, padding=padding)
  variables = random_init(ref, x, seed=1)
  # Same parameter names and shapes: checkpoints are interchangeable.
  assert (jax.tree.map(jnp.shape, jax.eval_shape(fast.init, jax.random.key(1), x)) ==
          jax.tree.map(jnp.shape, variables))
  # A random cotangent, so every output position's gradient is checked.
  cot = normal(jax.eval_shape(ref.apply, variables, x).shape, seed=2)

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


@pytest.mark.parametrize("layer,reference,shape", [
    (ConvTranspose, nn.ConvTranspose, (2, 7, 7, 8)),
    (Conv, nn.Conv, (2, 14, 14, 8)),
])
def test_uses_no_input_dilated_convolution(layer, reference, shape):
  """The point of the layers: no lhs-dilated (transposed) convolution in the
  forward pass or the gradients, which XLA runs slowly on CPU."""
  x = jnp.ones(shape)
  fast = layer(4, (5, 5), (2, 2))
  variables = jax.eval_shape(fast.init, jax.random.key(0), x)
  f = lambda v, x: jnp.sum(fast.apply(v, x) ** 2)
  hlo = jax.jit(jax.grad(f, argnums=(0, 1))).lower(variables, x).as_text()
  assert "convolution" in hlo
  assert _input_dilations(hlo) <= {1}, hlo
  # While the reference does use one.
  ref = reference(4, (5, 5), (2, 2))
  ref_hlo = jax.jit(jax.grad(lambda v, x: jnp.sum(ref.apply(v, x) ** 2), argnums=(0, 1))).lower(
      variables, x).as_text()
  assert 2 in _input_dilations(ref_hlo)


def _input_dilations(hlo: str) -> set[int]:
  """Every input (lhs) dilation factor of the convolutions in a lowered program."""
  return {int(d) for group in re.findall(r"lhs_dilate = \[([0-9, ]+)\]", hlo)
          for d in group.split(",")}


@pytest.mark.parametrize("layer", [ConvTranspose, Conv])
def test_rejects_unsupported_padding(layer):
  with pytest.raises(ValueError, match="CIRCULAR"):
    jax.eval_shape(layer(4, (3, 3), (2, 2), padding="CIRCULAR").init, jax.random.key(0),
                   jnp.ones((1, 4, 4, 2)))


# -- Dropout with hash_bits masks ------------------------------------------------

def test_hash_bits_are_uniform_and_independent():
  shape = (64, 32, 32, 4)  # 262,144 elements
  a = np.asarray(hash_bits(jax.random.key(0), shape), np.uint64)
  b = np.asarray(hash_bits(jax.random.key(1), shape), np.uint64)
  n = a.size
  # Every bit position is a fair coin (5 sigma of a binomial).
  ones = np.stack([(a >> i) & 1 for i in range(32)]).reshape(32, -1).mean(axis=1)
  assert np.all(np.abs(ones - 0.5) < 5 * 0.5 / np.sqrt(n)), ones
  # Uniform over 16 bins (chi-square, 15 dof: 99.99th percentile ~ 44).
  counts = np.bincount((a >> 28).ravel().astype(np.int64), minlength=16)
  assert np.sum((counts - n / 16) ** 2 / (n / 16)) < 44
  # No correlation between keys, or between neighbours along any axis.
  u, v = a / 2.0 ** 32 - 0.5, b / 2.0 ** 32 - 0.5
  corr = lambda p, q: np.corrcoef(p.ravel(), q.ravel())[0, 1]
  bound = 5 / np.sqrt(n // 2)
  assert abs(corr(u, v)) < bound
  for axis in range(4):
    lo = np.take(u, range(u.shape[axis] - 1), axis=axis)
    hi = np.take(u, range(1, u.shape[axis]), axis=axis)
    assert abs(corr(lo, hi)) < bound, axis
  # Keys that differ by one step of fold_in give unrelated bits.
  c = np.asarray(hash_bits(jax.random.fold_in(jax.random.key(0), 1), shape), np.uint64)
  assert abs(corr(u, c / 2.0 ** 32 - 0.5)) < bound
  assert np.mean(a == c) < 1e-3


def test_hash_bits_do_not_depend_on_sharding(num_devices):
  from jaxgan import sharding
  mesh = sharding.make_mesh(jax.devices())
  f = lambda k: hash_bits(k, (16, 6, 6, 3))
  sharded = jax.jit(f, out_shardings=sharding.data_sharded(mesh))(jax.random.key(3))
  assert len(sharded.sharding.device_set) == num_devices
  np.testing.assert_array_equal(np.asarray(sharded), np.asarray(jax.jit(f)(jax.random.key(3))))


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
def test_dropout_matches_flax_semantics(rate):
  x = normal((32, 16, 16, 8), loc=3.0)  # no zeros in x
  layer = Dropout(rate)
  y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  kept = np.asarray(y) != 0
  if rate == 1.0:
    assert not kept.any()
    return
  # Kept entries are scaled by 1/keep, as flax.linen.Dropout does.
  np.testing.assert_allclose(np.asarray(y)[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6)
  keep, n = 1 - rate, x.size
  assert abs(kept.mean() - keep) < 5 * np.sqrt(keep * (1 - keep) / n) + 1e-12
  # Another key, another mask; the same key, the same mask.
  y2 = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
  y1 = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(y1, y)
  if rate > 0:
    assert not np.array_equal(y2, y)


# -- BatchNorm with its reductions as matrix products -----------------------------

@pytest.mark.parametrize("shape,kwargs", [
    ((16, 12), dict(momentum=0.9)),
    ((8, 5, 5, 6), dict(momentum=0.9, epsilon=1e-5)),
    ((4, 3, 3, 5), dict(use_bias=False)),
])
def test_batch_norm_matches_flax(shape, kwargs):
  x = normal(shape, loc=3.0, scale=2.0)
  ref, fast = nn.BatchNorm(**kwargs), BatchNorm(**kwargs)
  variables = random_init(ref, x, use_running_average=False, seed=1)
  assert (jax.tree.map(jnp.shape, jax.eval_shape(
      lambda: fast.init(jax.random.key(1), x, use_running_average=False)))
          == jax.tree.map(jnp.shape, variables))
  cot = normal(shape, seed=2)

  def train(module, params, x):
    y, updates = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                              use_running_average=False, mutable=["batch_stats"])
    return jnp.sum(y * cot), (y, updates["batch_stats"])

  with jax.default_matmul_precision("highest"):
    results = [jax.jit(jax.grad(lambda p, x, m=m: train(m, p, x), argnums=(0, 1),
                                has_aux=True))(variables["params"], x) for m in (ref, fast)]
  (g_ref, (y_ref, stats_ref)), (g_fast, (y_fast, stats_fast)) = results
  np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(stats_fast), jax.tree.leaves(stats_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # Evaluation mode uses the running averages.
  new = {"params": variables["params"], "batch_stats": stats_ref}
  np.testing.assert_allclose(fast.apply(new, x, use_running_average=True),
                             ref.apply(new, x, use_running_average=True), rtol=1e-5, atol=1e-5)


def test_batch_norm_has_no_reduce_window():
  x = jnp.ones((128, 14, 14, 64))
  bn = BatchNorm(momentum=0.9)
  variables = random_init(bn, x, use_running_average=False)
  f = lambda p, x: jnp.sum(bn.apply({"params": p, "batch_stats": variables["batch_stats"]}, x,
                                    use_running_average=False, mutable=["batch_stats"])[0] ** 2)
  hlo = jax.jit(jax.grad(f, argnums=(0, 1))).lower(variables["params"], x).compile().as_text()
  assert "reduce-window" not in hlo


@pytest.mark.parametrize("shape,window", [((2, 28, 28, 3), (2, 2)), ((2, 7, 9, 2), (2, 3)),
                                          ((3, 10, 4), (3,))])
def test_max_pool_matches_flax(shape, window):
  """Values and gradients equal flax's (distinct values: no ties), trailing
  rows that fill no window dropped, and no pooling window (XLA's slow
  select-and-scatter gradient) in the program."""
  x = normal(shape, seed=4)
  weights = normal(nn.max_pool(x, window, window).shape, seed=5)
  f = lambda pool: jax.jit(jax.value_and_grad(lambda x: jnp.sum(weights * pool(x))))
  ours = f(lambda x: max_pool(x, window))
  value, grad = ours(x)
  ref_value, ref_grad = f(lambda x: nn.max_pool(x, window, window))(x)
  np.testing.assert_allclose(value, ref_value, rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(grad), np.asarray(ref_grad))
  program = ours.lower(x).as_text()
  assert "reduce_window" not in program and "select_and_scatter" not in program
