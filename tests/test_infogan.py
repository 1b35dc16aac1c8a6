"""InfoGAN's codes (Chen et al. 2016): the categorical one (`info_codes`), G
conditioned on a uniform code, D's auxiliary head (Q) trained on the fakes'
codes only, no labels on real images; the continuous ones (`info_continuous`),
G's first latent coordinates, whose means Q predicts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_DCGAN, assert_resumes_bitwise
from experiments import gan as gan_experiment
from experiments import inpaint as inpaint_experiment
from experiments.configs import gan as gan_configs
from jaxgan import evaluation, runs
from jaxgan.data import Data
from jaxgan.evaluation import rejection
from jaxgan.gan import clusters
from jaxgan.tasks.classifier import GeneratedData
from jaxgan.tasks.gan import GANTask, make_task
from jaxgan.writers import read_metrics

K = 6


def _config(**overrides):
  config = gan_configs.get_config("hinge_sn")
  config.update(dict(dataset="digits", batch_size=16, num_sample_images=16, num_train_steps=2,
                     log_every_steps=1, sample_every_steps=2, checkpoint_every_steps=2,
                     eval_every_steps=2, eval_split="test[:32]", conditional="acgan",
                     info_codes=K, **TINY_DCGAN))
  config.update(overrides)
  return config


def _batch(labels):
  rng = np.random.default_rng(0)
  return {"image": jnp.asarray(rng.uniform(-1, 1, (16, 16, 16, 1)), jnp.float32),
          "label": jnp.asarray(labels, jnp.int32)}


def _step(config, batch):
  task = GANTask(config, (16, 16, 1), 10)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  return task, state, jax.jit(task.train_step)(state, batch)


def test_the_step_ignores_the_data_labels_and_trains_q_on_the_fakes_codes():
  task, _, (a, metrics) = _step(_config(), _batch(np.zeros(16)))
  _, _, (b, _) = _step(_config(), _batch(np.arange(16) % 10))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  # To callers it is unconditional, with one more latent coordinate (the code).
  assert task.num_classes == 0 and task.model_classes == K
  assert task.latent_dim == task.g_latent_dim + 1
  # D's class loss is one cross-entropy (the fakes'), near log K at the start;
  # ACGAN's would add the real images' (about 2 log K).
  assert 0.7 * math.log(K) < float(metrics["d_class_loss"]) < 1.3 * math.log(K)
  assert "class_accuracy_real" not in metrics and 0 <= metrics["code_accuracy_fake"] <= 1
  assert float(metrics["g_class_loss"]) > 0


def test_lambda_weights_the_code_loss_in_both_networks():
  """With class_loss_weight 0 the step is the adversarial step alone: the
  losses measured before the updates agree, and both networks' updates
  differ once lambda is 1."""
  batch = _batch(np.zeros(16))
  _, _, (s0, m0) = _step(_config(class_loss_weight=0.0), batch)
  _, _, (s1, m1) = _step(_config(class_loss_weight=1.0), batch)
  for key in ("d_loss", "d_class_loss", "code_accuracy_fake"):
    np.testing.assert_allclose(m0[key], m1[key], rtol=1e-6)
  for net in ("g", "d"):
    leaves = zip(jax.tree.leaves(getattr(s0, net).params),
                 jax.tree.leaves(getattr(s1, net).params))
    assert any(not np.allclose(x, y) for x, y in leaves), net


def _trained(config, steps=250):
  """(task, state) after `steps` steps on the digits."""
  data = Data(config)
  task = make_task(config, data)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  step = jax.jit(task.train_step)
  images = jnp.asarray(data.first_images("train[:1024]"))
  for i in range(steps):
    batch = {"image": images[(i * 16) % 1024:(i * 16) % 1024 + 16], "label": jnp.zeros(16, int)}
    state, _ = step(state, batch)
  return task, state


def _q(task, state, n=600):
  """Latents z [n, latent], their codes, and D's auxiliary outputs on G(z)."""
  z = jax.random.normal(jax.random.PRNGKey(5), (n, task.latent_dim))
  codes = clusters.from_latent(z[:, 0], jnp.full((K,), -math.log(K)))
  fakes = task.sample(state, z, average=False)
  _, aux, _ = task._d(state.d.params, state.d.batch_stats, fakes, train=False)
  return z, codes, aux


def test_q_learns_the_code_the_generator_is_given():
  """The mutual-information term does its job: after 250 steps on the
  digits (at a high learning rate, to be quick), D's head names the code of
  a fake far above chance (1 / K; 0.59 when written)."""
  task, state = _trained(_config(ema_decay=0.0, g_learning_rate=1e-3, d_learning_rate=1e-3))
  _, codes, logits = _q(task, state)
  accuracy = float(jnp.mean(jnp.argmax(logits, -1) == codes))
  assert accuracy > 0.4, accuracy


def test_q_learns_the_continuous_codes_too():
  """With 2 continuous codes (G's first two latent coordinates, z[:, 1:3]
  of the sampling latent), Q's means follow them after 250 steps: each
  correlates with its code (0.95 when written), not with the next latent
  coordinate; the categorical code is still learned."""
  task, state = _trained(_config(ema_decay=0.0, g_learning_rate=1e-3, d_learning_rate=1e-3,
                                 info_continuous=2))
  z, codes, aux = _q(task, state)
  assert aux.shape == (600, K + 2)
  assert float(jnp.mean(jnp.argmax(aux[:, :K], -1) == codes)) > 0.4
  corr = lambda a, b: float(np.corrcoef(np.asarray(a), np.asarray(b))[0, 1])
  for c in range(2):
    assert corr(aux[:, K + c], z[:, 1 + c]) > 0.6, c
    assert abs(corr(aux[:, K + c], z[:, 3])) < 0.2, c


def test_the_continuous_loss_is_a_unit_gaussian_nll():
  task = GANTask(_config(info_continuous=2), (16, 16, 1), 10)
  aux = jnp.concatenate([jnp.zeros((2, K)), jnp.asarray([[1.0, 2.0], [0.0, -1.0]])], axis=1)
  z = jnp.asarray([[0.0, 0.0, 9.0], [0.0, 1.0, 9.0]])
  # 0.5 * (1 + 4) and 0.5 * (0 + 4)
  np.testing.assert_allclose(task._continuous_nll(aux, z), [2.5, 2.0])
  np.testing.assert_allclose(task._class_loss(aux, jnp.asarray([0, 3])), math.log(K), rtol=1e-6)


def test_the_continuous_weight_weighs_the_term_in_both_networks():
  batch = _batch(np.zeros(16))
  _, _, (s0, m0) = _step(_config(info_continuous=2, info_continuous_weight=0.0), batch)
  _, _, (s1, m1) = _step(_config(info_continuous=2, info_continuous_weight=1.0), batch)
  for key in ("d_loss", "d_class_loss", "d_continuous_loss"):
    np.testing.assert_allclose(m0[key], m1[key], rtol=1e-6)
  assert float(m1["d_continuous_loss"]) > 0 and float(m1["g_continuous_loss"]) > 0
  for net in ("g", "d"):
    leaves = zip(jax.tree.leaves(getattr(s0, net).params),
                 jax.tree.leaves(getattr(s1, net).params))
    assert any(not np.allclose(x, y) for x, y in leaves), net


def test_sample_takes_a_uniform_code_from_the_first_latent():
  task, state, (state, _) = _step(_config(), _batch(np.zeros(16)))
  z = jax.random.normal(jax.random.PRNGKey(2), (12, task.latent_dim))
  u = jnp.asarray([-5.0, -0.7, 0.1, 0.5, 5.0])  # none on a boundary
  # Equally likely codes: the code changes where Phi(u) crosses k / K.
  uniform = jnp.full((K,), -math.log(K))
  np.testing.assert_array_equal(clusters.from_latent(u, uniform),
                                np.minimum((jax.scipy.stats.norm.cdf(u) * K).astype(int), K - 1))
  picked = clusters.from_latent(z[:, 0], uniform)
  np.testing.assert_array_equal(task.sample(state, z), task.sample(state, z, picked))
  assert not np.allclose(task.sample(state, z), task.sample(state, z, (picked + 1) % K))


@pytest.mark.parametrize("continuous", [0, 2])
def test_a_run_resumes_bitwise_writes_code_rows_and_evaluates(tmp_path, continuous):
  straight = assert_resumes_bitwise(gan_experiment.train_and_evaluate,
                                    _config(info_continuous=continuous), str(tmp_path))
  assert straight.state.clusters is None
  record = read_metrics(str(tmp_path / "straight"))[-1]
  keys = ["d_class_loss", "g_class_loss", "code_accuracy_fake", "eval_code_accuracy_fake"]
  if continuous:
    keys += ["d_continuous_loss", "g_continuous_loss", "eval_continuous_loss"]
  else:
    assert "d_continuous_loss" not in record
  for key in keys:
    assert np.isfinite(record[key]), key
  assert "eval_class_accuracy_real" not in record
  png = np.asarray(Image.open(tmp_path / "straight" / "samples" / "step_0000004.png"))
  assert png.shape == (2 * (K * 18 + 2), 2 * (4 * 18 + 2))  # one row per code, 4 columns
  run = runs.restore(str(tmp_path / "straight"))
  images = evaluation.generate(run.task, run.state, 10, seed=0)
  assert images.shape == (10, 16, 16, 1) and np.all(np.abs(images) <= 1)
  with pytest.raises(ValueError, match="clusters or InfoGAN codes"):
    evaluation.sample_classes(run, [0, 1])
  with pytest.raises(ValueError, match="class, cluster or code labels"):
    rejection.check_supported(run.task)
  # Neither a source of labelled training images nor a latent space to search.
  with pytest.raises(ValueError, match="not a class-conditional GAN run"):
    GeneratedData(run, 0.5, (16, 16, 1), 10)
  with pytest.raises(ValueError, match="is a self-conditioned GAN"):
    inpaint_experiment._model(str(tmp_path / "straight"))


@pytest.mark.parametrize("overrides, message", [
    (dict(conditional="projection"), "set --config.conditional=acgan"),
    (dict(info_codes=1), "must be 0 \\(off\\) or InfoGAN's number of code values >= 2"),
    (dict(cluster_conditioning=4), "info_codes and config.cluster_conditioning"),
    (dict(info_codes=0, conditional="", info_continuous=2), "set --config.info_codes=K too"),
    (dict(info_continuous=101), "integer in \\[0, latent_dim=100\\]"),
    (dict(info_continuous=2, info_continuous_weight=-1.0), "info_continuous_weight >= 0"),
])
def test_config_errors(overrides, message):
  with pytest.raises(ValueError, match=message):
    GANTask(_config(**overrides), (16, 16, 1), 10)
