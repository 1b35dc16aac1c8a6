"""The GAN train step: sharding-invariant, learns, deterministic."""

import os

import jax
import numpy as np
import pytest

from experiments.configs.dcgan import get_config
from jaxgan import sharding
from jaxgan.data import get_source
from jaxgan.tasks.gan import GANTask, pixel_spread

from conftest import MNIST_DIR, assert_adam_states_close, compiled


def _real_batch(n: int) -> dict:
  """Real digits: MNIST test images when ../shared is there, else scikit-learn's."""
  if os.path.isdir(MNIST_DIR):
    src = get_source(f"idx:{MNIST_DIR}")
    x = src.images["test"][:n]
  else:
    from jaxgan.data.tf import tf
    x = get_source("digits").images["train"][:n]
    x = tf.image.resize(x.astype(np.float32), (28, 28)).numpy()
  return {"image": (x.astype(np.float32) / 127.5 - 1.0),
          "label": np.zeros((n,), np.int32)}


def _run(task, batch, devices, num_steps, start_step=0):
  mesh, init, step = compiled(task, tuple(devices))
  state = init(jax.random.PRNGKey(0))
  if start_step:
    state = state.replace(step=jax.device_put(np.int32(start_step), sharding.replicated(mesh)))
  global_batch = sharding.to_global_batch(batch, mesh)
  history = []
  for _ in range(num_steps):
    state, metrics = step(state, global_batch)
    history.append(jax.device_get(metrics))
  return jax.device_get(state), history


@pytest.fixture(scope="module")
def task():
  config = get_config()
  config.batch_size = 16
  return GANTask(config, (28, 28, 1))


def _topk_task():
  """The task with top-k training: kept fraction 0.5 from the first epoch on."""
  config = get_config()
  config.batch_size = 16
  config.g_topk, config.g_topk_decay = 0.5, 0.01
  return GANTask(config, (28, 28, 1), num_train_examples=16)


def _lecam_task():
  """The task with the LeCam regulariser (anchors moved by the global batch's means)."""
  config = get_config()
  config.batch_size = 16
  config.lecam_weight, config.lecam_decay = 0.3, 0.5
  return GANTask(config, (28, 28, 1))


@pytest.mark.parametrize("which", ["plain", "topk", "lecam"])
def test_eight_devices_match_one_device(task, num_devices, which):
  """One step on 8 devices (batch split 2 per device, BatchNorm statistics
  over the global batch) equals the step on 1 device.

  Tolerance: metrics to 1e-5 (relative); Adam moments and batch statistics to
  1e-4 of each leaf's largest magnitude. Parameters: Adam's first update is
  lr * g / |g|, so a gradient entry that is ~0 can change sign with the
  summation order; every parameter must be within 2 * lr and all but 1 in
  10^4 within 1e-6.

  The top-k variant ranks D's scores over the global batch: 8 of its 16
  fakes count in G's loss on either mesh.
  """
  batch = _real_batch(16)
  task, start = {"plain": (task, 0), "topk": (_topk_task(), 3), "lecam": (_lecam_task(), 0)}[which]
  s1, (m1,) = _run(task, batch, jax.devices()[:1], 1, start)
  s8, (m8,) = _run(task, batch, jax.devices(), 1, start)
  for k in m1:
    np.testing.assert_allclose(m8[k], m1[k], rtol=1e-5, err_msg=k)
  assert int(s8.step) == int(s1.step) == start + 1
  assert which != "topk" or float(m8["g_topk_fraction"]) == 0.5
  assert which != "lecam" or float(m8["lecam"]) > 0
  stats = lambda s: jax.tree.leaves((s.g.opt_state, s.d.opt_state, s.g.batch_stats,
                                     s.d.batch_stats))
  params = lambda s: jax.tree.leaves((s.g.params, s.d.params))
  assert_adam_states_close(stats(s1), stats(s8), params(s1), params(s8),
                           task.config.g_learning_rate)


def test_discriminator_learns_a_fixed_real_batch(task):
  """On one fixed batch of real digits, a few steps bring D's loss well below
  its first value (near chance, 2 log 2) and push D(x) up, although G is
  trained against it at the same time."""
  _, history = _run(task, _real_batch(16), jax.devices()[:1], 8)
  losses = [float(h["d_loss"]) for h in history]
  assert abs(losses[0] - 2 * np.log(2)) < 0.5
  assert np.mean(losses[-4:]) < 0.85 * losses[0], losses
  assert np.mean([float(h["d_real"]) for h in history[-4:]]) > float(history[0]["d_real"])
  assert all(float(h["finite"]) == 1.0 for h in history)


def test_pixel_spread_tells_a_collapsed_batch_from_real_digits(task):
  """pixel_std_* is the per-pixel standard deviation over the batch, averaged:
  0 for copies of one image, numpy's figure otherwise, and the step logs it
  for its real batch (fakes: a value from G's own batch)."""
  batch = _real_batch(16)
  x = batch["image"]
  assert float(pixel_spread(np.repeat(x[:1], 16, axis=0))) == pytest.approx(0.0, abs=1e-6)
  np.testing.assert_allclose(float(pixel_spread(x)), np.std(x, axis=0).mean(), rtol=1e-5)
  _, (metrics,) = _run(task, batch, jax.devices()[:1], 1)
  np.testing.assert_allclose(metrics["pixel_std_real"], np.std(x, axis=0).mean(), rtol=1e-5)
  assert 0.0 < float(metrics["pixel_std_fake"]) != float(metrics["pixel_std_real"])


def test_step_is_deterministic_and_uses_fresh_noise(task):
  batch = _real_batch(16)
  (sa, ha), (sb, hb) = (_run(task, batch, jax.devices()[:1], 2) for _ in range(2))
  for a, b in zip(jax.tree.leaves(sa), jax.tree.leaves(sb)):
    np.testing.assert_array_equal(a, b)
  # Steps draw different z (fold_in(key, step)): D(G(z)) differs between steps.
  assert float(ha[0]["d_fake"]) != float(ha[1]["d_fake"])


def test_generator_average_follows_the_warmed_up_ema(task):
  """g_ema (weights and BatchNorm running statistics) starts at the initial
  variables and after each step is d * g_ema + (1 - d) * live with
  d = min(ema_decay, (1 + t) / (10 + t)); ema_decay = 0 keeps it equal to the
  live variables. Sample grids use it."""
  batch = _real_batch(16)
  live = lambda s: {"params": s.g.params, "batch_stats": s.g.batch_stats}
  s0 = jax.device_get(compiled(task, tuple(jax.devices()[:1]))[1](jax.random.PRNGKey(0)))
  s2, _ = _run(task, batch, jax.devices()[:1], 2)
  s1, _ = _run(task, batch, jax.devices()[:1], 1)
  assert jax.tree.structure(s0.g_ema) == jax.tree.structure(live(s0))
  assert jax.tree.leaves(s0.g_ema["batch_stats"])  # the MNIST generator has BatchNorm
  for e0, p0 in zip(jax.tree.leaves(s0.g_ema), jax.tree.leaves(live(s0))):
    np.testing.assert_array_equal(e0, p0)
  d0, d1 = min(0.999, 1 / 10), min(0.999, 2 / 11)
  for e0, p1, p2, e2 in zip(*(jax.tree.leaves(t) for t in
                              (s0.g_ema, live(s1), live(s2), s2.g_ema))):
    e1 = d0 * e0 + (1 - d0) * p1
    np.testing.assert_allclose(e2, d1 * e1 + (1 - d1) * p2, rtol=1e-6, atol=1e-7)
  for part in ("params", "batch_stats"):
    assert any(not np.array_equal(e, p) for e, p in
               zip(jax.tree.leaves(s2.g_ema[part]), jax.tree.leaves(live(s2)[part])))
  grids = task.sample_images(jax.device_put(s2))
  assert set(grids) == {"samples", "live"}
  assert grids["samples"].shape == (task.config.num_sample_images, 28, 28, 1)
  assert not np.allclose(grids["samples"], grids["live"])
  # The averaged generator is sampled with the averaged statistics: the same
  # weights with the live statistics give other images.
  with_live_stats = jax.tree.map(np.asarray, s2.replace(
      g_ema={"params": s2.g_ema["params"], "batch_stats": s2.g.batch_stats}))
  assert not np.allclose(task.sample_images(jax.device_put(with_live_stats))["samples"],
                         grids["samples"])

  config = task.config.copy_and_resolve_references()
  config.ema_decay = 0.0
  plain = GANTask(config, (28, 28, 1))
  s, _ = _run(plain, batch, jax.devices()[:1], 2)
  for e, p in zip(jax.tree.leaves(s.g_ema), jax.tree.leaves(live(s))):
    np.testing.assert_array_equal(e, p)
  assert set(plain.sample_images(jax.device_put(s))) == {"samples"}
  config.ema_decay = 1.0
  with pytest.raises(ValueError, match="ema_decay"):
    GANTask(config, (28, 28, 1))
