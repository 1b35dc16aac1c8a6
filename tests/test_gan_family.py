"""The GAN family: objectives, gradient penalties through the custom layers,
spectral normalisation, DiffAugment, n_critic, presets and config errors."""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY_DCGAN, assert_resumes_bitwise, normal, random_init
from experiments import gan as gan_experiment
from experiments.configs import gan as gan_configs
from jaxgan.checkpoint import Checkpointer
from jaxgan.gan import diffaugment, objectives, penalties
from jaxgan.models import layers
from jaxgan.models.dcgan import MnistDiscriminator
from jaxgan.tasks import Task, apply_model
from jaxgan.tasks.gan import GANTask, every_nth_step
from jaxgan.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(preset="dcgan", **overrides):
  config = gan_configs.get_config(preset)
  config.update(dict(batch_size=16, num_sample_images=16))
  config.update(overrides)
  return config


# -- objectives --------------------------------------------------------------------

REAL = np.array([1.5, -0.5, 0.25], np.float32)
FAKE = np.array([0.5, -2.0, 1.0], np.float32)
_sig = lambda v: 1.0 / (1.0 + np.exp(-v))
_sp = lambda v: np.log1p(np.exp(v))
N = len(REAL)
# name -> (d_loss, g_loss, dD/dreal, dD/dfake, dG/dfake), written out by hand.
HAND = {
    "ns": (np.mean(_sp(-REAL)) + np.mean(_sp(FAKE)), np.mean(_sp(-FAKE)),
           -_sig(-REAL) / N, _sig(FAKE) / N, -_sig(-FAKE) / N),
    "saturating": (np.mean(_sp(-REAL)) + np.mean(_sp(FAKE)), -np.mean(_sp(FAKE)),
                   -_sig(-REAL) / N, _sig(FAKE) / N, -_sig(FAKE) / N),
    "ls": (0.5 * np.mean((REAL - 1) ** 2) + 0.5 * np.mean(FAKE ** 2),
           0.5 * np.mean((FAKE - 1) ** 2), (REAL - 1) / N, FAKE / N, (FAKE - 1) / N),
    "hinge": (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)),
              -np.mean(FAKE), -(REAL < 1).astype(np.float32) / N,
              (FAKE > -1).astype(np.float32) / N, -np.ones(N) / N),
    "wasserstein": (np.mean(FAKE) - np.mean(REAL), -np.mean(FAKE), -np.ones(N) / N,
                    np.ones(N) / N, -np.ones(N) / N),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_objective_values_and_gradients_by_hand(name):
  fn = objectives.get(name)
  d, g, dd_real, dd_fake, dg_fake = HAND[name]
  out = fn(jnp.asarray(REAL), jnp.asarray(FAKE))
  np.testing.assert_allclose(out.d_loss, d, rtol=1e-6)
  np.testing.assert_allclose(out.g_loss, g, rtol=1e-6)
  grad_d = jax.grad(lambda r, f: fn(r, f).d_loss, argnums=(0, 1))(REAL, FAKE)
  np.testing.assert_allclose(grad_d[0], dd_real, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(grad_d[1], dd_fake, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(jax.grad(lambda f: fn(REAL, f).g_loss)(FAKE), dg_fake,
                             rtol=1e-5, atol=1e-7)
  # Weights (the eval mask) give the mean over the weighted examples only.
  w = np.array([1.0, 1.0, 0.0], np.float32)
  masked = fn(jnp.asarray(REAL), jnp.asarray(FAKE), jnp.asarray(w))
  part = fn(jnp.asarray(REAL[:2]), jnp.asarray(FAKE[:2]))
  np.testing.assert_allclose(masked.d_loss, part.d_loss, rtol=1e-6)
  for k in part.metrics:
    np.testing.assert_allclose(masked.metrics[k], part.metrics[k], rtol=1e-6)


def test_metrics_mean_what_the_objective_means():
  ns = objectives.get("ns")(jnp.asarray(REAL), jnp.asarray(FAKE)).metrics
  np.testing.assert_allclose(ns["d_real"], np.mean(_sig(REAL)), rtol=1e-6)  # probabilities
  w = objectives.get("wasserstein")(jnp.asarray(REAL), jnp.asarray(FAKE)).metrics
  assert set(w) == {"critic_real", "critic_fake", "w_distance"}  # no sigmoid of a critic
  np.testing.assert_allclose(w["w_distance"], np.mean(REAL) - np.mean(FAKE), rtol=1e-6)
  with pytest.raises(ValueError, match="Unknown config.gan_loss 'wgan'.*ns, saturating, ls, "
                     "hinge, wasserstein"):
    objectives.get("wgan")


# -- gradient penalties ------------------------------------------------------------

class _Linear(nn.Module):
  """D(x) = a . x + b as one strided jaxgan Conv (its custom VJP path)."""

  @nn.compact
  def __call__(self, x):
    return layers.Conv(1, (8, 8), (2, 2), padding="VALID")(x).reshape(x.shape[0])


def test_penalties_of_a_linear_discriminator_through_the_custom_conv():
  """D(x) = a . x: grad D = a, so WGAN-GP's term is (|a| - 1)^2 and R1's is
  |a|^2, at every input; their gradients with respect to a (second
  derivatives through Conv's custom VJP) are 2(|a| - 1) a / |a| and 2a."""
  d = _Linear()
  variables = random_init(d, jnp.zeros((1, 8, 8, 1)), seed=3)
  a = np.asarray(variables["params"]["Conv_0"]["kernel"]).ravel()
  norm = np.linalg.norm(a)
  real, fake = normal((5, 8, 8, 1), seed=1), normal((5, 8, 8, 1), seed=2)
  eps = jnp.linspace(0.0, 1.0, 5)
  gp = lambda p: penalties.gradient_penalty(lambda x: d.apply(p, x), real, fake, eps)
  r1 = lambda p: penalties.r1_penalty(lambda x: d.apply(p, x), real)
  np.testing.assert_allclose(gp(variables), (norm - 1) ** 2, rtol=1e-5)
  np.testing.assert_allclose(r1(variables), norm ** 2, rtol=1e-5)
  grad_a = lambda f: np.asarray(jax.grad(f)(variables)["params"]["Conv_0"]["kernel"]).ravel()
  np.testing.assert_allclose(grad_a(gp), 2 * (norm - 1) * a / norm, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grad_a(r1), 2 * a, rtol=1e-4, atol=1e-6)


class _Net(nn.Module):
  conv: type
  norm: type

  @nn.compact
  def __call__(self, x):
    x = nn.leaky_relu(self.conv(4, (3, 3), (2, 2), padding="SAME")(x), 0.2)
    x = self.norm(use_running_average=False)(x)
    return jnp.sum(jnp.tanh(x), axis=(1, 2, 3))


def test_second_derivatives_through_custom_layers_equal_flax():
  """The penalties' parameter gradients (a gradient of an input gradient)
  through jaxgan's Conv and BatchNorm equal those through flax's layers."""
  x, fake = normal((6, 8, 8, 2), seed=4), normal((6, 8, 8, 2), seed=5)
  ours, theirs = _Net(layers.Conv, layers.BatchNorm), _Net(nn.Conv, nn.BatchNorm)
  variables = random_init(ours, x)
  assert jax.tree.structure(variables) == jax.tree.structure(random_init(theirs, x))

  def grads(model):
    d_fn = lambda p: lambda v: model.apply({**variables, "params": p}, v,
                                           mutable=["batch_stats"])[0]
    loss = lambda p: (penalties.gradient_penalty(d_fn(p), x, fake, jnp.full((6,), 0.4))
                      + penalties.r1_penalty(d_fn(p), x))
    return jax.grad(loss)(variables["params"])

  for a, b in zip(jax.tree.leaves(grads(ours)), jax.tree.leaves(grads(theirs))):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5 * float(np.abs(b).max()))


# -- spectral normalisation ------------------------------------------------------------

def test_spectral_norm_estimates_the_largest_singular_value(tmp_path):
  d = MnistDiscriminator(spectral_norm=True)
  x = normal((4, 28, 28, 1))
  variables = jax.jit(lambda k: d.init(k, x, train=False))(jax.random.PRNGKey(0))
  params, stats = variables["params"], variables["batch_stats"]
  step = jax.jit(lambda s: apply_model(d, params, s, x, train=True,
                                       rngs={"dropout": jax.random.PRNGKey(1)})[1])
  evaluate = jax.jit(lambda s: apply_model(d, params, s, x, train=False)[1])
  # u changes in training only.
  trained = step(stats)
  assert all(np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(evaluate(stats)), jax.tree.leaves(stats)))
  assert not all(np.array_equal(a, b) for a, b in
                 zip(jax.tree.leaves(trained), jax.tree.leaves(stats)))
  for _ in range(300):  # power iterations, one per training forward pass
    stats = step(stats)
  flat_params = {"/".join(k.key for k in path): v for path, v in
                 jax.tree_util.tree_leaves_with_path(params)}
  sigmas = {"/".join(k.key for k in path): v for path, v in
            jax.tree_util.tree_leaves_with_path(stats) if path[-1].key.endswith("sigma")}
  assert len(sigmas) == 3  # two convolutions and the dense layer
  for name, sigma in sigmas.items():  # SpectralNorm_i/<layer>/kernel/sigma
    kernel = flat_params[name.split("/", 1)[1].rsplit("/", 1)[0]]
    kernel = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    top = np.linalg.svd(kernel / float(sigma), compute_uv=False)[0]
    assert abs(top - 1.0) < 1e-3, (name, top)
  # The vectors survive a checkpoint round trip.
  ckpt = Checkpointer(str(tmp_path))
  ckpt.save(1, {"batch_stats": stats})
  ckpt.wait()
  restored = Checkpointer(str(tmp_path)).restore({"batch_stats": jax.tree.map(jnp.zeros_like,
                                                                             stats)})
  for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(restored["batch_stats"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  ckpt.close()


# -- DiffAugment -------------------------------------------------------------------------

def test_diffaugment_is_keyed_exact_and_differentiable():
  x = normal((6, 16, 16, 3), seed=7)
  policy = diffaugment.parse_policy("color,translation,cutout")
  k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
  a = diffaugment.augment(x, k1, policy)
  np.testing.assert_array_equal(a, diffaugment.augment(x, k1, policy))
  assert not np.allclose(a, diffaugment.augment(x, k2, policy))
  # Translation and cutout are linear in x: <f(x), w> = <x, f^T w>, with
  # f^T w from the gradient (so the gradient is the exact adjoint).
  w = normal(x.shape, seed=8)
  for name in ("translation", "cutout"):
    f = lambda v: diffaugment.augment(v, k1, (name,))
    adjoint = jax.grad(lambda v: jnp.sum(f(v) * w))(x)
    np.testing.assert_allclose(jnp.sum(f(x) * w), jnp.sum(x * adjoint), rtol=1e-5)
  grad = jax.grad(lambda v: jnp.sum(diffaugment.augment(v, k1, policy) ** 2))(x)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_translation_and_cutout_do_what_they_say():
  one = np.zeros((64, 28, 28, 1), np.float32)
  one[:, 14, 14] = 1.0
  moved = np.asarray(diffaugment.translation(jnp.asarray(one), jax.random.PRNGKey(3)))
  ys, xs = np.nonzero(moved[..., 0].sum(0))
  assert moved.sum() == 64 and set(np.abs(ys - 14)) | set(np.abs(xs - 14)) <= set(range(5))
  assert len(set(ys)) > 3 and len(set(xs)) > 3  # shifts of up to round(28 / 8) = 4
  mask = np.asarray(diffaugment.cutout_mask(jax.random.PRNGKey(4), 64, 28, 28))[..., 0]
  for m in mask:
    rows, cols = np.nonzero(1 - m)
    assert rows.max() - rows.min() + 1 <= 14 and cols.max() - cols.min() + 1 <= 14
    assert (1 - m).sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
  assert ((1 - mask).sum(axis=(1, 2)) == 14 * 14).any()  # whole squares inside the image


def test_diffaugment_reaches_real_and_fake_images(monkeypatch):
  """The train step augments D's real batch, its fakes, and the fakes of the
  generator update; evaluation sees clean images."""
  calls = []
  original = diffaugment.augment
  monkeypatch.setattr(diffaugment, "augment",
                      lambda x, key, policy: calls.append(policy) or original(x, key, policy))
  task = GANTask(_config("dcgan_diffaug", **TINY_DCGAN), (16, 16, 1))
  state = jax.eval_shape(task.init_state, jax.random.PRNGKey(0))
  batch = {"image": jax.ShapeDtypeStruct((16, 16, 16, 1), jnp.float32),
           "label": jax.ShapeDtypeStruct((16,), jnp.int32)}
  jax.eval_shape(task.train_step, state, batch)
  assert calls == [("color", "translation", "cutout")] * 3
  calls.clear()
  jax.eval_shape(task.eval_step, state, {**batch, "mask": jax.ShapeDtypeStruct((16,),
                                                                            jnp.float32)},
                 jnp.int32(0))
  assert calls == []


# -- the step, n_critic and presets ---------------------------------------------------------

def test_n_critic_step_takes_one_real_batch_per_critic_update():
  task = GANTask(_config("wgan_gp", n_critic=3, **TINY_DCGAN), (16, 16, 1))
  assert (task.batches_per_step, task.images_per_step) == (3, 48)
  assert isinstance(task, Task)
  state = jax.eval_shape(task.init_state, jax.random.PRNGKey(0))
  batch = lambda *s: {"image": jax.ShapeDtypeStruct(s + (16, 16, 1), jnp.float32)}
  _, metrics = jax.eval_shape(task.train_step, state, batch(3, 16))
  assert {"gradient_penalty", "w_distance", "critic_fake_after"} <= set(metrics)
  with pytest.raises(Exception):
    jax.eval_shape(task.train_step, state, batch(16))  # one batch is not three


def test_lazy_r1_applies_every_r1_every_steps():
  task = GANTask(_config(r1_gamma=1.0, r1_every=2, **TINY_DCGAN, d_normalization="none"),
                 (16, 16, 1))
  step = jax.jit(task.train_step)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  batch = {"image": normal((16, 16, 16, 1)), "label": jnp.zeros(16, jnp.int32)}
  r1 = []
  for _ in range(3):
    state, metrics = step(state, batch)
    r1.append(float(metrics["r1"]))
  assert r1[0] > 0 and r1[1] == 0 and r1[2] > 0


def test_every_nth_step_equals_lax_cond_and_has_no_conditional_on_cpu():
  """The lazy regularisers' schedule gives lax.cond's values (a NaN computed
  on an off step stays out), and on CPU lowers to no conditional at all:
  XLA:CPU runs convolution gradients inside one up to ~100x slower."""
  active = lambda x: (x * 2.0, jnp.log(x - 3.0))  # NaN for x < 3
  inactive = lambda x: (jnp.zeros_like(x), jnp.zeros_like(x))
  fn = jax.jit(lambda step, x: every_nth_step(step, 4, lambda: active(x), lambda: inactive(x)))
  x = jnp.float32(2.0)
  for step in range(6):
    got = fn(jnp.int32(step), x)
    want = jax.lax.cond(step % 4 == 0, active, inactive, x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert float(fn(jnp.int32(1), x)[1]) == 0.0 and np.isnan(float(fn(jnp.int32(0), x)[1]))
  assert every_nth_step(jnp.int32(3), 1, lambda: active(x), lambda: inactive(x))[0] == 4.0
  compiled = fn.lower(jnp.int32(0), x).compile().as_text()
  assert jax.default_backend() != "cpu" or " conditional(" not in compiled, compiled


def _loop_config(preset, **overrides):
  fields = dict(dataset="digits", num_train_steps=2, log_every_steps=1, sample_every_steps=2,
                checkpoint_every_steps=2, eval_every_steps=2, eval_split="test[:32]",
                **TINY_DCGAN)
  return _config(preset, **{**fields, **overrides})


@pytest.mark.parametrize("preset", ["lsgan", "hinge_sn", "dcgan_diffaug"])
def test_preset_trains_with_finite_losses_and_writes_its_grid(tmp_path, preset):
  workdir = str(tmp_path / preset)
  gan_experiment.train_and_evaluate(_loop_config(preset), workdir)
  records = read_metrics(workdir)
  assert [r["step"] for r in records] == [1, 2]
  for r in records:
    assert all(np.isfinite(v) for k, v in r.items() if isinstance(v, float)), r
  assert np.isfinite(records[-1]["eval_d_loss"]) and np.isfinite(records[-1]["eval_g_loss"])
  assert os.path.exists(os.path.join(workdir, "samples", "step_0000002.png"))


def test_wgan_gp_trains_resumes_bitwise_with_n_critic(tmp_path):
  """The wgan_gp preset (critic with LayerNorm, gradient penalty, n_critic
  real batches per step) trained 4 steps equals 2 steps, a stop, and 2 more."""
  assert_resumes_bitwise(gan_experiment.train_and_evaluate,
                         _loop_config("wgan_gp", n_critic=2, eval_every_steps=4), str(tmp_path))
  record = read_metrics(str(tmp_path / "straight"))[-1]
  assert record["gradient_penalty"] >= 0 and "w_distance" in record and "d_real" not in record
  assert "eval_w_distance" in record


# -- top-k training ------------------------------------------------------------------------

def test_topk_keeps_the_fakes_d_scores_highest_by_hand():
  fake = jnp.array([0.5, -2.0, 1.0, 0.3, 1.0, -0.1, 2.0, 0.0])
  keep = lambda fraction: np.asarray(objectives.topk_weights(fake, fraction))
  np.testing.assert_array_equal(keep(0.5), [1, 0, 1, 0, 1, 0, 1, 0])  # 2.0, 1.0, 1.0, 0.5
  np.testing.assert_array_equal(keep(0.25), [0, 0, 1, 0, 0, 0, 1, 0])  # a tie: the first 1.0
  np.testing.assert_array_equal(keep(0.01), [0, 0, 0, 0, 0, 0, 1, 0])  # never fewer than one
  np.testing.assert_array_equal(keep(1.0), np.ones(8))
  # The weighted hinge loss of G is the mean over the kept fakes, its gradient 1/k on them.
  loss = lambda f: objectives.hinge(jnp.zeros(8), f, objectives.topk_weights(f, 0.5)).g_loss
  np.testing.assert_allclose(float(loss(fake)), -(2.0 + 1.0 + 1.0 + 0.5) / 4, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.grad(loss)(fake)), -keep(0.5) / 4, rtol=1e-6)
  # The kept fraction: gamma per epoch from 1, floored at nu.
  fraction = lambda seen: float(objectives.topk_fraction(seen, 1000, 0.5, 0.9))
  assert fraction(0) == 1.0
  np.testing.assert_allclose(fraction(2000), 0.81, rtol=1e-6)
  np.testing.assert_allclose(fraction(500), 0.9 ** 0.5, rtol=1e-6)
  assert fraction(10**6) == 0.5


def test_topk_step_drops_the_worst_fakes_from_gs_loss_only(monkeypatch):
  """Late in training (the fraction at its floor) the step's G loss is the
  objective weighted by the k fakes D scores highest; D's update is the
  plain step's, G's is not."""
  config = _config("hinge_sn", g_topk=0.25, g_topk_decay=0.5, **TINY_DCGAN)
  task = GANTask(config, (16, 16, 1), num_train_examples=64)
  plain = GANTask(_config("hinge_sn", **TINY_DCGAN), (16, 16, 1))
  state = task.init_state(jax.random.PRNGKey(0)).replace(step=jnp.int32(40))  # 10 epochs
  batch = {"image": normal((16, 16, 16, 1)), "label": jnp.zeros(16, jnp.int32)}
  calls = []  # (D's outputs on the fakes, weights) of each weighted call: G's top-k loss

  def objective(real, fake, weights=None):
    if weights is not None:
      jax.debug.callback(lambda *a: calls.append([np.asarray(x) for x in a]), fake, weights)
    return objectives.hinge(real, fake, weights)

  monkeypatch.setattr(task, "objective", objective)
  new, metrics = jax.jit(task.train_step)(state, batch)
  assert len(calls) == 1
  fake, weights = calls[0]
  assert float(metrics["g_topk_fraction"]) == 0.25
  np.testing.assert_array_equal(weights, np.asarray(objectives.topk_weights(fake, 0.25)))
  assert int(np.sum(weights)) == 4 and float(np.min(fake[weights > 0])) >= float(
      np.max(fake[weights == 0]))
  ref, ref_metrics = jax.jit(plain.train_step)(state, batch)
  assert "g_topk_fraction" not in ref_metrics
  same = jax.tree.map(lambda a, b: np.allclose(a, b, atol=1e-6), new.d.params, ref.d.params)
  assert all(jax.tree.leaves(same))
  moved = jax.tree.map(lambda a, b: not np.allclose(a, b, atol=1e-6), new.g.params, ref.g.params)
  assert any(jax.tree.leaves(moved))


def test_topk_through_the_loop_logs_its_fraction(tmp_path):
  """make_task passes the training split's size: the logged fraction is
  max(nu, gamma ** (images seen / split size)) at each step."""
  workdir = str(tmp_path / "topk")
  gan_experiment.train_and_evaluate(_loop_config("hinge_sn", g_topk=0.5, g_topk_decay=0.01),
                                    workdir)
  with open(os.path.join(workdir, "data.json")) as f:
    n = json.load(f)["num_train_examples"]
  records = read_metrics(workdir)
  for r in records:
    want = max(0.5, 0.01 ** ((r["step"] - 1) * 16 / n))
    np.testing.assert_allclose(r["g_topk_fraction"], want, rtol=1e-5)


# -- LeCam -------------------------------------------------------------------------------

def test_lecam_penalty_and_anchors_by_hand():
  real, fake = jnp.array([1.0, 3.0]), jnp.array([-1.0, 0.0])
  anchors = {"real": jnp.float32(0.5), "fake": jnp.float32(0.2)}
  # relu(D(x) - a_fake)^2: 0.64, 7.84; relu(a_real - D(G(z)))^2: 2.25, 0.25.
  np.testing.assert_allclose(float(penalties.lecam_penalty(real, fake, anchors)),
                             (0.64 + 7.84) / 2 + (2.25 + 0.25) / 2, rtol=1e-6)
  below = {"real": jnp.float32(-5.0), "fake": jnp.float32(5.0)}  # both relus at 0
  assert float(penalties.lecam_penalty(real, fake, below)) == 0.0
  moved = penalties.lecam_anchors(anchors, real, fake, 0.9)
  np.testing.assert_allclose([float(moved["real"]), float(moved["fake"])],
                             [0.9 * 0.5 + 0.1 * 2.0, 0.9 * 0.2 + 0.1 * -0.5], rtol=1e-6)
  # The anchors are constants to the gradient, as in the step, which moves
  # them with this batch first: d/dD(x_i) = 2 relu(D(x_i) - a_fake) / n.
  def through_step(r, f):
    return penalties.lecam_penalty(r, f, penalties.lecam_anchors(anchors, r, f, 0.9))
  g_real, g_fake = jax.grad(through_step, argnums=(0, 1))(real, fake)
  np.testing.assert_allclose(np.asarray(g_real),
                             np.maximum(np.asarray(real) - float(moved["fake"]), 0), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(g_fake),
                             -np.maximum(float(moved["real"]) - np.asarray(fake), 0), rtol=1e-6)


def test_lecam_through_the_loop_moves_its_anchors_and_resumes_bitwise(tmp_path):
  """hinge_sn with LeCam, 4 steps, equals 2 steps, a stop and 2 more (the
  anchors are in the checkpoint); each step's anchors are the moving
  averages of the D outputs it logs (hinge: logit_real / logit_fake), and
  the penalty is logged."""
  config = _loop_config("hinge_sn", lecam_weight=0.3, lecam_decay=0.5, eval_every_steps=4)
  assert_resumes_bitwise(gan_experiment.train_and_evaluate, config, str(tmp_path))
  records = read_metrics(str(tmp_path / "straight"))
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  anchor_real = anchor_fake = 0.0
  for r in records:
    anchor_real = 0.5 * anchor_real + 0.5 * r["logit_real"]
    anchor_fake = 0.5 * anchor_fake + 0.5 * r["logit_fake"]
    np.testing.assert_allclose([r["lecam_anchor_real"], r["lecam_anchor_fake"]],
                               [anchor_real, anchor_fake], rtol=1e-5, atol=1e-7)
    assert r["lecam"] >= 0 and np.isfinite(r["lecam"])


# -- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (dict(gan_loss="wgan"), "Unknown config.gan_loss 'wgan'; use one of ns"),
    (dict(diffaugment="color,zoom"), "Unknown config.diffaugment zoom"),
    (dict(n_critic=0), "n_critic must be an integer >= 1"),
    (dict(r1_every=0), "r1_every must be an integer >= 1"),
    (dict(gan_loss="wasserstein"), "needs a Lipschitz constraint"),
    (dict(gradient_penalty=10.0, d_normalization="batch", **TINY_DCGAN),
     "uses BatchNorm.*d_normalization=layer"),
    (dict(d_normalization="group", **TINY_DCGAN), "Unknown config.d_normalization 'group'"),
    (dict(d_normalization="layer"), "the 28x28 discriminator has no normalisation"),
    (dict(g_topk=0.0), "config.g_topk .* must be in"),
    (dict(g_topk_decay=1.5), "config.g_topk .* must be in"),
    (dict(g_topk=0.5), "Top-k training .* counts epochs: build the task with"),
    (dict(lecam_weight=-1.0), "config.lecam_weight .* must be >= 0"),
    (dict(lecam_decay=1.0), "config.lecam_decay .* in \\[0, 1\\)"),
])
def test_bad_names_and_combinations_are_clear_errors(overrides, message):
  config = _config(**overrides)
  with pytest.raises(ValueError, match=message):
    GANTask(config, (config.image_size, config.image_size, 1))


def test_a_config_from_before_the_family_is_a_clear_error():
  config = _config()
  with config.unlocked():
    del config["gan_loss"], config["n_critic"]
  with pytest.raises(ValueError, match="lacks gan_loss, n_critic: it predates the GAN family"):
    GANTask(config, (28, 28, 1))


def test_unknown_preset_is_a_clear_error():
  with pytest.raises(ValueError, match="Unknown GAN preset 'progan'; use one of dcgan, lsgan, "
                     "wgan_gp, hinge_sn, dcgan_diffaug, cgan_projection, acgan, sngan"):
    gan_configs.get_config("progan")
  out = subprocess.run([sys.executable, "-m", "experiments.gan", "--config",
                        "experiments/configs/gan.py:progan"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode != 0
  assert "Unknown GAN preset 'progan'; use one of dcgan" in out.stderr
