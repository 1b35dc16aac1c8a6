"""Adaptive discriminator augmentation (jaxgan/gan/ada.py): the identity at
p = 0, each transform against its matrix or a NumPy formula on hand cases,
gradients through the pipeline, and p's update in the right direction, in
the function and in the GAN step."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import gan as gan_configs
from jaxgan.gan import ada
from jaxgan.tasks.gan import GANTask

X = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 6, 3), minval=-1.0, maxval=1.0)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("pipeline", ada.PIPELINES)
def test_p_zero_is_the_identity(channels, pipeline):
  x = X[..., :channels]
  out = jax.jit(lambda x, k: ada.augment(x, k, 0.0, pipeline))(x, jax.random.PRNGKey(5))
  np.testing.assert_array_equal(out, x)


def test_p_one_changes_every_image_and_keeps_the_shape():
  out = ada.augment(X, jax.random.PRNGKey(1), 1.0)
  assert out.shape == X.shape and np.all(np.isfinite(out))
  assert all(not np.allclose(out[i], X[i]) for i in range(4))


def _warp(g):
  return np.asarray(ada.warp(X, jnp.broadcast_to(jnp.asarray(g, jnp.float32), (4, 3, 3))))


def test_blit_transforms_match_their_matrices():
  x = np.asarray(X)
  one = np.ones(1)
  # x-flip: the output column c samples column W - 1 - c.
  np.testing.assert_array_equal(_warp(ada.scale2d(-one, one)[0]), x[:, :, ::-1])
  # Rotation matrix R(-90 degrees) on output coordinates: out[r, c] = in[H - 1 - c, r]
  # on a square image.
  sq = X[:, :6]
  rot = ada.warp(sq, jnp.broadcast_to(ada._exact_rot90(-jnp.ones((1,), jnp.int32))[0],
                                      (4, 3, 3)))
  np.testing.assert_array_equal(rot, np.rot90(np.asarray(sq), -1, axes=(1, 2)))
  # The continuous rotation by the same angle agrees up to rounding.
  cont = ada.warp(sq, jnp.broadcast_to(ada.rotate2d(jnp.full((1,), -math.pi / 2))[0],
                                       (4, 3, 3)))
  np.testing.assert_allclose(cont, rot, atol=1e-5)
  # Integer translation by (2, -1) pixels, borders mirrored (not repeated).
  shifted = _warp(ada.translate2d(-2.0 * one, 1.0 * one)[0])
  padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  np.testing.assert_array_equal(shifted, padded[:, 3:3 + 8, 0:0 + 6])


def test_fractional_translation_is_bilinear():
  half = _warp(ada.translate2d(jnp.full((1,), 0.5), jnp.zeros((1,)))[0])
  x = np.asarray(X)
  np.testing.assert_allclose(half[:, :, :-1], (x[:, :, :-1] + x[:, :, 1:]) / 2, atol=1e-6)


def test_geometric_matrices_at_p_one_are_the_transforms_of_the_paper():
  g = ada.geometric_matrix(jax.random.PRNGKey(3), 512, 32, 32, 1.0, "b")
  g = np.asarray(g)
  # Blit: orthogonal with entries 0 / +-1, integer translations within 4 pixels.
  lin = g[:, :2, :2]
  np.testing.assert_array_equal(np.abs(lin).sum(axis=1), np.ones((512, 2)))
  assert set(np.unique(lin)) <= {-1.0, 0.0, 1.0}
  t = g[:, :2, 2]
  assert np.all(t == np.round(t)) and np.abs(t).max() <= 4 and np.abs(t).max() >= 3
  # Both flips and all four rotations occur.
  assert len({tuple(m.ravel()) for m in lin}) == 8
  geo = np.asarray(ada.geometric_matrix(jax.random.PRNGKey(4), 2048, 32, 32, 1.0, "g"))
  det = np.linalg.det(geo[:, :2, :2])  # 1 / isotropic scale^2 (aniso cancels)
  np.testing.assert_allclose(np.std(np.log2(det)) / 2, ada.SCALE_STD, rtol=0.1)


def test_colour_transforms_by_hand():
  n = 4
  eye = jnp.broadcast_to(jnp.eye(4), (n, 4, 4))
  x = X
  bright = eye.at[:, :3, 3].set(0.3)
  np.testing.assert_allclose(ada.apply_color(x, bright), x + 0.3, atol=1e-6)
  np.testing.assert_allclose(ada.apply_color(x[..., :1], bright), x[..., :1] + 0.3, atol=1e-6)
  vv = jnp.outer(ada._LUMA, ada._LUMA)
  grey = jnp.broadcast_to(x[..., :1], x.shape)
  # Luma flip negates a grey pixel; saturation 0 makes every pixel grey.
  np.testing.assert_allclose(ada.apply_color(grey, eye - 2 * vv), -grey, atol=1e-6)
  flat = ada.apply_color(x, vv + (eye - vv) * 0.0)
  np.testing.assert_allclose(flat, jnp.broadcast_to(x.mean(-1, keepdims=True), x.shape),
                             atol=1e-6)
  # A hue rotation keeps each pixel's luma (channel mean) and its distance to grey.
  hue = ada._rotate3d(ada._LUMA[:3], jnp.full((n,), 1.1))
  out = ada.apply_color(x, hue)
  np.testing.assert_allclose(out.mean(-1), x.mean(-1), atol=1e-6)
  np.testing.assert_allclose(jnp.std(out, -1), jnp.std(x, -1), atol=1e-5)
  assert not np.allclose(out, x)
  # The drawn matrices: brightness offsets with the paper's spread.
  c = np.asarray(ada.color_matrix(jax.random.PRNGKey(2), 4096, 1.0))
  assert np.all(np.isfinite(c)) and np.std(c[:, 0, 3]) > 0.1


def test_gradients_flow_through_the_pipeline():
  w = jax.random.normal(jax.random.PRNGKey(7), X.shape)
  grad = jax.grad(lambda x: jnp.sum(ada.augment(x, jax.random.PRNGKey(1), 1.0) * w))(X)
  assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0
  # Every pixel of the output is a convex (warp) then affine (colour)
  # combination of the input: the gradient of a sum is finite and bounded.
  ones = jax.grad(lambda x: jnp.sum(ada.augment(x, jax.random.PRNGKey(1), 0.0)))(X)
  np.testing.assert_array_equal(ones, jnp.ones_like(X))


def test_adjust_moves_p_towards_the_target():
  up = ada.adjust(jnp.asarray(0.5), jnp.asarray(0.8), 0.6, images=256, speed_kimg=500)
  down = ada.adjust(jnp.asarray(0.5), jnp.asarray(0.4), 0.6, images=256, speed_kimg=500)
  assert float(up) == pytest.approx(0.5 + 256 / 500_000)
  assert float(down) == pytest.approx(0.5 - 256 / 500_000)
  assert float(ada.adjust(jnp.asarray(0.0), jnp.asarray(-1.0), 0.6, 256, 500)) == 0.0
  assert float(ada.adjust(jnp.asarray(1.0), jnp.asarray(1.0), 0.6, 256, 500)) == 1.0


def _ada_task(**overrides):
  config = gan_configs.get_config("dcgan")
  config.update({**dict(image_size=16, ngf=8, ndf=8, batch_size=4, ada_target=0.6,
                       ada_interval=2, ada_kimg=1.0), **overrides})
  return GANTask(config, (16, 16, 1))


@pytest.mark.parametrize("sign, p0, want", [(1.0, 0.25, 0.25 + 8 / 1000),
                                            (-1.0, 0.25, 0.25 - 8 / 1000),
                                            (-1.0, 0.0, 0.0)])
def test_the_step_adjusts_p_every_interval_from_the_real_signs(sign, p0, want):
  """r_t above the target raises p, below lowers it (not below 0), once per
  ada_interval steps, by batch * interval / (ada_kimg * 1000)."""
  task = _ada_task(ada_p=p0)
  state = task.init_state(jax.random.PRNGKey(0))
  assert float(state.ada["p"]) == p0
  real_out = jnp.full((4,), sign)
  aug, used, rt = task._ada_update(state, real_out)  # step 0: accumulate only
  assert float(aug["p"]) == p0 and float(aug["count"]) == 4 and float(rt) == sign
  aug, used, _ = task._ada_update(state.replace(step=jnp.asarray(1), ada=aug), real_out)
  assert float(used) == p0
  assert float(aug["p"]) == pytest.approx(want) and float(aug["count"]) == 0


def test_fixed_p_and_errors():
  task = _ada_task(ada_target=0.0, ada_p=0.3)
  state = task.init_state(jax.random.PRNGKey(0))
  for step in range(4):
    aug, _, _ = task._ada_update(state.replace(step=jnp.asarray(step)), jnp.ones((4,)))
    assert float(aug["p"]) == pytest.approx(0.3)
  batch = {"image": jnp.zeros((4, 16, 16, 1))}
  new, metrics = jax.jit(task.train_step)(state, batch)
  assert float(metrics["ada_p"]) == pytest.approx(0.3) and new.ada is not None
  assert _ada_task(ada_target=0.0).ada_on is False
  with pytest.raises(ValueError, match="diffaugment and ADA"):
    _ada_task(diffaugment="color")
  with pytest.raises(ValueError, match="Unknown ADA pipeline 'bgcf'"):
    _ada_task(ada_pipeline="bgcf")
  with pytest.raises(ValueError, match="ada_p in \\[0, 1\\]"):
    _ada_task(ada_p=1.5)
  with pytest.raises(ValueError, match="pl_weight .* needs a generator with a mapping"):
    _ada_task(pl_weight=2.0)
