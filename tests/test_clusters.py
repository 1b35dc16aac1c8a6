"""Self-conditioned GANs (`cluster_conditioning`): k-means clusters of the
training images in place of labels (jaxgan/gan/clusters.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from conftest import TINY_DCGAN, assert_resumes_bitwise
from experiments import gan as gan_experiment
from experiments.configs import gan as gan_configs
from jaxgan import evaluation, runs
from jaxgan.data import Data
from jaxgan.gan import clusters
from jaxgan.tasks.gan import GANTask, make_task

K = 4


def _blobs(n_per=50, seed=0):
  """Images [3 * n_per, 4, 4, 1] around three distinct constant images."""
  rng = np.random.default_rng(seed)
  centers = np.array([-0.8, 0.0, 0.8])
  x = centers.repeat(n_per)[:, None, None, None] + 0.05 * rng.normal(size=(3 * n_per, 4, 4, 1))
  return x.astype(np.float32), centers.repeat(n_per)


def test_fit_finds_the_clusters_and_their_shares():
  x, _ = _blobs()
  x = np.concatenate([x, x[:50]])  # the first cluster twice as frequent
  fitted = clusters.fit(x, 3, seed=0)
  assert fitted["centroids"].shape == (3, 16)
  means = np.sort(fitted["centroids"].mean(1))
  np.testing.assert_allclose(means, [-0.8, 0.0, 0.8], atol=0.02)
  shares = np.exp(fitted["log_prior"])[np.argsort(fitted["centroids"].mean(1))]
  np.testing.assert_allclose(shares, [0.5, 0.25, 0.25], atol=1e-6)


def test_assign_is_the_nearest_centroid():
  rng = np.random.default_rng(1)
  centroids = rng.normal(size=(5, 12)).astype(np.float32)
  x = rng.normal(size=(2, 7, 2, 3, 2)).astype(np.float32)  # leading axes kept
  want = np.argmin(((x.reshape(14, 1, 12) - centroids[None]) ** 2).sum(-1), 1).reshape(2, 7)
  got = clusters.assign(jnp.asarray(centroids), jnp.asarray(x))
  assert got.dtype == jnp.int32
  np.testing.assert_array_equal(got, want)


def test_cluster_draws_follow_the_prior():
  prior = np.array([0.1, 0.6, 0.3], np.float32)
  log_prior = jnp.log(prior)
  n = 40_000
  drawn = np.bincount(clusters.sample(jax.random.PRNGKey(0), log_prior, n), minlength=3)
  np.testing.assert_allclose(drawn / n, prior, atol=0.01)
  u = jax.random.normal(jax.random.PRNGKey(1), (n,))
  picked = np.bincount(clusters.from_latent(u, log_prior), minlength=3)
  np.testing.assert_allclose(picked / n, prior, atol=0.01)
  # The inverse CDF: the cluster changes where Phi(u) crosses 0.1 and 0.7.
  edges = stats.norm.ppf([0.1, 0.7])
  u = jnp.array([-5.0, edges[0] - 1e-3, edges[0] + 1e-3, edges[1] - 1e-3, edges[1] + 1e-3, 5.0])
  np.testing.assert_array_equal(clusters.from_latent(u, log_prior), [0, 0, 1, 1, 2, 2])


def _config(**overrides):
  config = gan_configs.get_config("cluster_projection")
  config.update(dict(dataset="digits", batch_size=16, num_sample_images=16, num_train_steps=2,
                     log_every_steps=1, sample_every_steps=2, checkpoint_every_steps=2,
                     eval_every_steps=2, eval_split="test[:32]", cluster_conditioning=K,
                     **TINY_DCGAN))
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def task_and_state():
  config = _config()
  task = make_task(config, Data(config))
  return task, jax.jit(task.init_state)(jax.random.PRNGKey(0))


def test_make_task_fits_the_training_images(task_and_state):
  task, state = task_and_state
  config = task.config
  want = clusters.fit(Data(config).first_images(config.train_split), K, config.seed)
  np.testing.assert_array_equal(state.clusters["centroids"], want["centroids"])
  np.testing.assert_array_equal(state.clusters["log_prior"], want["log_prior"])
  # To callers the generator is unconditional, with one more latent coordinate.
  assert task.num_classes == 0 and task.latent_dim == config.latent_dim + 1


def test_the_step_labels_reals_by_cluster_and_ignores_the_data_labels(task_and_state):
  task, state = task_and_state
  images = Data(task.config).first_images("train[:16]")
  step = jax.jit(task.train_step)
  batch = lambda labels: {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
  a, _ = step(state, batch(np.zeros(16, np.int32)))
  b, _ = step(state, batch(np.arange(16) % 10))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  # Other centroids (so other real labels) give another discriminator.
  moved = state.replace(clusters={**state.clusters,
                                  "centroids": state.clusters["centroids"][::-1]})
  c, _ = step(moved, batch(np.zeros(16, np.int32)))
  assert not np.array_equal(jax.tree.leaves(a.d.params)[0], jax.tree.leaves(c.d.params)[0])
  assert set(np.asarray(clusters.assign(state.clusters["centroids"], images))) != {0}


def test_sample_takes_the_cluster_from_the_first_latent(task_and_state):
  task, state = task_and_state
  # One step, so the per-cluster BatchNorm scales and offsets (1, 0 at init) differ.
  images = jnp.asarray(Data(task.config).first_images("train[:16]"))
  state, _ = jax.jit(task.train_step)(state, {"image": images, "label": jnp.zeros(16, int)})
  z = jax.random.normal(jax.random.PRNGKey(2), (12, task.latent_dim))
  picked = clusters.from_latent(z[:, 0], state.clusters["log_prior"])
  np.testing.assert_array_equal(task.sample(state, z), task.sample(state, z, picked))
  other = (picked + 1) % K
  assert not np.allclose(task.sample(state, z), task.sample(state, z, other))


def test_a_run_resumes_bitwise_writes_cluster_rows_and_evaluates(tmp_path):
  config = _config()
  straight = assert_resumes_bitwise(gan_experiment.train_and_evaluate, config, str(tmp_path))
  assert straight.state.clusters["centroids"].shape == (K, 16 * 16)
  png = np.asarray(Image.open(tmp_path / "straight" / "samples" / "step_0000004.png"))
  # K rows (one per cluster) and round(sqrt(16)) = 4 columns of 16x16 images, x2.
  assert png.shape == (2 * (K * 18 + 2), 2 * (4 * 18 + 2))
  # Restored like any unconditional run: samples without labels.
  run_dir = str(tmp_path / "straight")
  run = runs.restore(run_dir)
  assert run.step == 4 and run.kind == "gan"
  images = evaluation.generate(run.task, run.state, 10, seed=0)
  assert images.shape == (10, 16, 16, 1) and np.all(np.abs(images) <= 1)
  with pytest.raises(ValueError, match="self-conditioned on clusters"):
    evaluation.sample_classes(run, [0, 1])


@pytest.mark.parametrize("overrides, message", [
    (dict(conditional=""), "set --config.conditional=projection"),
    (dict(cluster_conditioning=1), "must be 0 \\(off\\) or a number of clusters >= 2"),
])
def test_config_errors(overrides, message):
  config = _config(**overrides)
  with pytest.raises(ValueError, match=message):
    make_task(config, Data(config))


def test_errors_without_clusters_or_with_too_few_images():
  with pytest.raises(ValueError, match="needs its clusters"):
    GANTask(_config(), (16, 16, 1), 10)
  with pytest.raises(ValueError, match="needs at least 5 training images"):
    clusters.fit(np.zeros((4, 2, 2, 1)), 5, seed=0)
