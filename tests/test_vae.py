"""VAE: likelihoods and ELBO terms by hand, the IWAE bound, sharding, learning."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments.configs.vae import get_config
from jaxgan import likelihoods, sharding
from jaxgan.models.registry import make_vae
from jaxgan.models.vae import conv_plan
from jaxgan.tasks import vae as vae_task
from jaxgan.tasks.vae import VAETask

from conftest import assert_adam_states_close, compiled, random_init


def test_bernoulli_and_kl_match_a_hand_computed_case():
  logits = jnp.array([[[[0.0], [2.0]], [[-1.0], [3.0]]]])  # one 2x2x1 image
  x = jnp.array([[[[1.0], [0.0]], [[0.0], [1.0]]]])
  sig = lambda v: 1 / (1 + math.exp(-v))
  expected = (math.log(sig(0.0)) + math.log(1 - sig(2.0)) + math.log(1 - sig(-1.0))
              + math.log(sig(3.0)))
  np.testing.assert_allclose(likelihoods.bernoulli_log_prob(logits, x), [expected], rtol=1e-6)

  mean, logvar = jnp.array([[0.5, -1.0]]), jnp.array([[0.0, math.log(4.0)]])
  # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2, per dimension.
  expected_kl = 0.5 * (0.25 + 1 - 1 - 0) + 0.5 * (1 + 4 - 1 - math.log(4.0))
  np.testing.assert_allclose(likelihoods.gaussian_kl_to_standard(mean, logvar),
                             [expected_kl], rtol=1e-6)
  # A posterior equal to the prior has KL 0; log N(z; m, s) against scipy.
  assert float(likelihoods.gaussian_kl_to_standard(jnp.zeros((1, 8)), jnp.zeros((1, 8)))[0]) == 0
  z = np.array([[0.3, 2.0]])
  np.testing.assert_allclose(
      likelihoods.diag_gaussian_log_prob(jnp.asarray(z), mean, logvar),
      [stats.norm.logpdf(0.3, 0.5, 1.0) + stats.norm.logpdf(2.0, -1.0, 2.0)], rtol=1e-6)


@pytest.mark.parametrize("name,dist", [("gaussian", stats.norm), ("logistic", stats.logistic)])
def test_discretized_likelihoods_are_bin_probabilities(name, dist):
  """Against scipy's CDFs at bin edges, and the 256 bins' probabilities sum to 1."""
  values = np.arange(256) / 127.5 - 1.0  # every 8-bit value on [-1, 1]
  for mean, log_scale in [(0.1, -2.0), (-0.9, -4.0), (0.95, -1.0), (0.0, -6.5)]:
    params = jnp.asarray(np.stack([np.full(256, mean), np.full(256, log_scale)], -1)
                         .reshape(256, 1, 1, 2), jnp.float32)
    x = jnp.asarray(values.reshape(256, 1, 1, 1), jnp.float32)
    log_p = np.asarray(likelihoods.log_prob(name, params, x), np.float64)
    scale = math.exp(log_scale)
    upper = np.where(values > 1 - 1e-6, 1.0, dist.cdf(values + 1 / 255, mean, scale))
    lower = np.where(values < -1 + 1e-6, 0.0, dist.cdf(values - 1 / 255, mean, scale))
    expected = upper - lower
    significant = expected > 1e-6
    np.testing.assert_allclose(np.exp(log_p[significant]), expected[significant],
                               rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(np.sum(np.exp(log_p)), 1.0, atol=2e-3)
    assert np.all(np.isfinite(log_p))


def test_channel_coupled_logistic_is_a_chain_of_logistics():
  """logistic_ar = p(r) p(g | r) p(b | r, g), each a discretized logistic whose
  mean moves by tanh(coupling) times the earlier channels' values; for fixed
  red and green its 256 blue values' probabilities sum to p(r) p(g | r)."""
  rng = np.random.default_rng(0)
  mu, log_s, a = rng.uniform(-0.8, 0.8, 3), rng.uniform(-4, -1, 3), rng.normal(size=3)
  x = np.round((rng.uniform(-1, 1, 3) + 1) * 127.5) / 127.5 - 1
  params = jnp.asarray(np.concatenate([mu, log_s, a]).reshape(1, 1, 1, 9), jnp.float32)
  t = np.tanh(a)
  means = [mu[0], mu[1] + t[0] * x[0], mu[2] + t[1] * x[0] + t[2] * x[1]]
  single = lambda m, s, v: float(likelihoods.log_prob(
      "logistic", jnp.asarray([[[[m, s]]]], jnp.float32), jnp.asarray([[[[v]]]], jnp.float32))[0])
  expected = sum(single(means[c], log_s[c], x[c]) for c in range(3))
  got = float(likelihoods.log_prob("logistic_ar", params, jnp.asarray(x.reshape(1, 1, 1, 3),
                                                                       jnp.float32))[0])
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  blues = np.arange(256) / 127.5 - 1
  xs = np.stack([np.full(256, x[0]), np.full(256, x[1]), blues], -1).reshape(256, 1, 1, 3)
  log_p = likelihoods.log_prob("logistic_ar", jnp.broadcast_to(params, (256, 1, 1, 9)),
                               jnp.asarray(xs, jnp.float32))
  np.testing.assert_allclose(float(jax.nn.logsumexp(log_p)),
                             single(means[0], log_s[0], x[0]) + single(means[1], log_s[1], x[1]),
                             atol=2e-3)
  # The display image: each channel's location given the earlier locations.
  mode = np.asarray(likelihoods.mode("logistic_ar", params)).ravel()
  r = np.clip(mu[0], -1, 1)
  g = np.clip(mu[1] + t[0] * r, -1, 1)
  np.testing.assert_allclose(mode, [r, g, np.clip(mu[2] + t[1] * r + t[2] * g, -1, 1)],
                             rtol=1e-5)
  assert likelihoods.decoder_channels("logistic_ar", 3) == 9
  assert likelihoods.decoder_channels("logistic_ar", 1) == 2


def test_sampling_draws_the_discretized_likelihoods():
  """Bin frequencies of 40,000 logistic draws match the bins' probabilities;
  a logistic_ar pixel with (nearly) no spread draws each channel at its
  coupled mean given the earlier channels' draws, snapped to the 8-bit grid."""
  mean, log_scale = 0.3, -2.5
  params = jnp.broadcast_to(jnp.asarray([mean, log_scale], jnp.float32), (40_000, 1, 1, 2))
  draws = np.asarray(likelihoods.sample("logistic", params, jax.random.PRNGKey(0))).ravel()
  bins = np.round((draws + 1) * 127.5).astype(int)
  np.testing.assert_allclose(draws, bins / 127.5 - 1, atol=1e-6)
  values = np.arange(256) / 127.5 - 1
  log_p = likelihoods.log_prob("logistic", jnp.broadcast_to(params[:1], (256, 1, 1, 2)),
                               jnp.asarray(values.reshape(256, 1, 1, 1), jnp.float32))
  expected = np.exp(np.asarray(log_p))
  np.testing.assert_allclose(np.bincount(bins, minlength=256) / len(bins), expected, atol=0.006)

  mu, a = np.array([0.5, -0.2, 0.1]), np.array([0.7, -1.2, 0.4])
  params = jnp.asarray(np.concatenate([mu, np.full(3, -7.0), a]).reshape(1, 1, 1, 9), jnp.float32)
  got = np.asarray(likelihoods.sample("logistic_ar", params, jax.random.PRNGKey(1))).ravel()
  snap = lambda v: np.round((np.clip(v, -1, 1) + 1) * 127.5) / 127.5 - 1
  t = np.tanh(a)
  r = snap(mu[0])
  g = snap(mu[1] + t[0] * r)
  np.testing.assert_allclose(got, [r, g, snap(mu[2] + t[1] * r + t[2] * g)], atol=1e-5)


def _mixture_bin_probabilities(logits, mu, log_s, a, x):
  """float64 reference: P(bins of x) under sum_k pi_k prod_c Logistic(bin of
  x_c; mu_kc + sum_{j<c} tanh(a_k,cj) x_j, exp(log_s_kc)), the edge bins
  taking the tails. logits [K]; mu, log_s [K, C]; a [K, C(C-1)/2]; x [N, C]."""
  k_, c_ = mu.shape
  pi = np.exp(logits - logits.max())
  pi /= pi.sum()
  total = np.zeros(len(x))
  for k in range(k_):
    p, q = np.ones(len(x)), 0
    for c in range(c_):
      m = np.full(len(x), mu[k, c])
      for j in range(c):
        m = m + np.tanh(a[k, q]) * x[:, j]
        q += 1
      s = math.exp(log_s[k, c])
      upper = np.where(x[:, c] > 1 - 1e-6, 1.0, stats.logistic.cdf(x[:, c] + 1 / 255, m, s))
      lower = np.where(x[:, c] < -1 + 1e-6, 0.0, stats.logistic.cdf(x[:, c] - 1 / 255, m, s))
      p = p * (upper - lower)
    total += pi[k] * p
  return total


def _mixture_params(rng, k, c):
  logits = rng.normal(size=k)
  mu, log_s = rng.uniform(-0.8, 0.8, (k, c)), rng.uniform(-3.5, -1.5, (k, c))
  a = rng.normal(size=(k, c * (c - 1) // 2))
  flat = np.concatenate([logits[:, None], mu, log_s, a], -1).ravel()  # component-major
  return (logits, mu, log_s, a), jnp.asarray(flat.reshape(1, 1, 1, -1), jnp.float32)


def test_logistic_mixture_matches_a_float64_formula_and_sums_to_one():
  """logistic_mix (PixelCNN++'s mixture): log p against an independent float64
  computation on RGB pixels (edge values included); the bins' probabilities
  of a 1- and a 2-channel pixel sum to one; the display image is the
  mixture's mean; 10 components x (1 + 2C + C(C-1)/2) outputs."""
  rng = np.random.default_rng(3)
  (logits, mu, log_s, a), params = _mixture_params(rng, 10, 3)
  x = np.round((rng.uniform(-1, 1, (6, 3)) + 1) * 127.5) / 127.5 - 1
  x[0] = [-1.0, 1.0, -1.0]
  x[1] = [1.0, -1.0, 1.0]
  got = likelihoods.log_prob("logistic_mix", jnp.broadcast_to(params, (6, 1, 1, params.shape[-1])),
                             jnp.asarray(x.reshape(6, 1, 1, 3), jnp.float32))
  np.testing.assert_allclose(np.asarray(got, np.float64),
                             np.log(_mixture_bin_probabilities(logits, mu, log_s, a, x)),
                             rtol=1e-4)
  # The mean: sum_k pi_k m_k, each component's means coupled through the earlier means.
  pi = np.exp(logits) / np.exp(logits).sum()
  t = np.tanh(a)
  m = np.stack([mu[:, 0], mu[:, 1] + t[:, 0] * mu[:, 0]], -1)
  m = np.concatenate([m, (mu[:, 2] + t[:, 1] * m[:, 0] + t[:, 2] * m[:, 1])[:, None]], -1)
  np.testing.assert_allclose(np.asarray(likelihoods.mode("logistic_mix", params)).ravel(),
                             np.clip(pi @ m, -1, 1), rtol=1e-5, atol=1e-6)
  values = np.arange(256) / 127.5 - 1
  for c, grid in ((1, values[:, None]),
                  (2, np.stack(np.meshgrid(values, values, indexing="ij"), -1).reshape(-1, 2))):
    _, params = _mixture_params(rng, 10, c)
    log_p = likelihoods.log_prob("logistic_mix",
                                 jnp.broadcast_to(params, (len(grid), 1, 1, params.shape[-1])),
                                 jnp.asarray(grid.reshape(-1, 1, 1, c), jnp.float32))
    assert np.all(np.isfinite(np.asarray(log_p)))
    np.testing.assert_allclose(float(jax.nn.logsumexp(log_p)), 0.0, atol=2e-3)
  assert likelihoods.decoder_channels("logistic_mix", 3) == 100
  assert likelihoods.decoder_channels("logistic_mix", 1) == 30


def test_logistic_mixture_draws_follow_its_bins():
  """Bin frequencies of 40,000 draws from a two-component greyscale mixture
  match its bins' probabilities (the other 8 of the 10 components carry no
  weight); with one component certain and (nearly) no
  spread an RGB draw is that component's coupled locations, snapped."""
  comps = np.array([[0.3, -0.5, -2.5], [-0.4, 0.4, -3.0]] + [[-40.0, 0.0, 0.0]] * 8)
  params = jnp.broadcast_to(jnp.asarray(comps.ravel(), jnp.float32), (40_000, 1, 1, 30))
  draws = np.asarray(likelihoods.sample("logistic_mix", params, jax.random.PRNGKey(0))).ravel()
  bins = np.round((draws + 1) * 127.5).astype(int)
  np.testing.assert_allclose(draws, bins / 127.5 - 1, atol=1e-6)
  values = np.arange(256) / 127.5 - 1
  expected = _mixture_bin_probabilities(comps[:, 0], comps[:, 1:2], comps[:, 2:3],
                                        np.zeros((10, 0)), values[:, None])
  np.testing.assert_allclose(np.bincount(bins, minlength=256) / len(bins), expected, atol=0.006)

  mu = np.random.default_rng(4).uniform(-0.8, 0.8, (10, 3))
  a = np.array([[0.7, -1.2, 0.4]] * 10)
  logits = np.full((10, 1), -20.0)
  logits[1] = 20.0
  flat = np.concatenate([logits, mu, np.full((10, 3), -7.0), a], -1).ravel()
  got = np.asarray(likelihoods.sample("logistic_mix", jnp.asarray(flat.reshape(1, 1, 1, 100),
                                                                   jnp.float32),
                                      jax.random.PRNGKey(1))).ravel()
  snap = lambda v: np.round((np.clip(v, -1, 1) + 1) * 127.5) / 127.5 - 1
  t = np.tanh(a[1])
  r = snap(mu[1, 0])
  g = snap(mu[1, 1] + t[0] * r)
  np.testing.assert_allclose(got, [r, g, snap(mu[1, 2] + t[1] * r + t[2] * g)], atol=1e-5)


def _pixel_vae_task(size=8, **model_options):
  config = _config(model="resnet_pixel", likelihood="logistic_ar", latent_dim=(size // 4)**2 * 2,
                   base_features=8, num_importance_samples=3, model_options=model_options)
  return VAETask(config, (size, size, 3), np.zeros((4, size, size, 3), np.float32))


# The default head (4 rows of context) and the smallest (1 row: a 3x3 first
# convolution, no blocks), set through config.model_options.
HEADS = [({}, 4), ({"head_blocks": 0, "head_kernel": 3}, 1)]


@pytest.mark.parametrize("options,rows", HEADS)
def test_pixel_head_sees_only_earlier_pixels(options, rows):
  """The head's parameters at pixel (i, j) change with the image's pixels
  before (i, j) in raster order (its left and upper neighbours) and with no
  pixel from (i, j) on, its own channels included (the likelihood couples
  those); nor with the rows more than `rows` above row i, the context the
  options set."""
  task = _pixel_vae_task(**options)
  assert task.model.head.rows_above == rows
  params = random_init(task.model, jnp.zeros((1, 8, 8, 3)), jax.random.PRNGKey(0))["params"]
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(1, task.latent_dim)), jnp.float32)
  x = jnp.asarray(rng.uniform(-1, 1, (1, 8, 8, 3)), jnp.float32)
  order = np.arange(64).reshape(8, 8)
  for i, j in [(0, 0), (0, 5), (3, 0), (4, 4), (7, 7)]:
    grad = jax.grad(lambda x: jnp.sum(task.model.apply(
        {"params": params}, z, x, method="decode")[0, i, j]))(x)
    influence = np.abs(np.asarray(grad[0])).sum(-1)
    assert np.all(influence[order >= order[i, j]] == 0), (i, j)
    assert np.all(influence[:max(i - rows, 0)] == 0), (i, j)
    if j > 0:
      assert influence[i, j - 1] > 0, (i, j)
    if i > 0:
      assert influence[i - 1, j] > 0, (i, j)
    if i >= rows:  # the farthest row in its context, straight above
      assert influence[i - rows, j] > 0, (i, j)


def test_model_options_are_checked():
  """An option the model does not take, or a head context that cannot be
  built, is one error naming the option."""
  with pytest.raises(ValueError, match="model_options head_blocks not known to model 'resnet'; "
                     "it takes none"):
    make_vae("resnet", (8, 8, 3), 8, 10, 8, head_blocks=0)
  with pytest.raises(ValueError, match="head_kernel odd"):
    make_vae("resnet_pixel", (8, 8, 3), 8, 10, 8, head_kernel=4)


@pytest.mark.parametrize("options", [o for o, _ in HEADS])
def test_autoregressive_generation_draws_pixel_by_pixel(options):
  """`generate` (the head on a strip of rows per pixel) equals drawing each
  pixel from the head run on the whole image, with the same keys; and the
  drawn image scores as it was drawn: decoding it teacher-forced gives the
  same parameters at every pixel."""
  task = _pixel_vae_task(**options)
  params = random_init(task.model, jnp.zeros((1, 8, 8, 3)), jax.random.PRNGKey(0))["params"]
  z = jnp.asarray(np.random.default_rng(1).normal(size=(3, task.latent_dim)), jnp.float32)
  key = jax.random.PRNGKey(5)
  got = np.asarray(jax.jit(task.generate)(params, z, key))
  decode = jax.jit(lambda x: task.model.apply({"params": params}, z, x, method="decode"))
  x = np.zeros((3, 8, 8, 3), np.float32)
  for t in range(64):
    i, j = divmod(t, 8)
    pixel = decode(jnp.asarray(x))[:, i:i + 1, j:j + 1]
    x[:, i, j] = np.asarray(likelihoods.sample("logistic_ar", pixel,
                                               jax.random.fold_in(key, t)))[:, 0, 0]
  np.testing.assert_allclose(got, x, atol=1e-6)
  assert len(np.unique(got)) > 20 and np.all(np.abs(got) <= 1 + 1e-6)
  figures = task.sample_images(task.init_state(jax.random.PRNGKey(0)))
  assert figures["samples"].shape == (4, 8, 8, 3)


def _config(**overrides):
  config = get_config()
  config.update(dict(num_importance_samples=1, num_sample_images=4, batch_size=8))
  config.update(overrides)
  return config


def _digits(n=8, size=28):
  """Real digits from scikit-learn, resized, in [-1, 1]."""
  from sklearn.datasets import load_digits
  x = load_digits().images[:n, :, :, None].astype(np.float32) / 16.0
  x = np.asarray(jax.image.resize(x, (n, size, size, 1), "linear"))
  return np.clip(x, 0, 1) * 2 - 1


@pytest.fixture(scope="module")
def trained():
  """A small conv VAE after 60 steps on 8 fixed digits, with its history."""
  task = VAETask(_config(latent_dim=8, base_features=8), (28, 28, 1), _digits())
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  step = jax.jit(task.train_step)
  batch = {"image": jnp.asarray(_digits())}
  history = []
  for _ in range(60):
    state, metrics = step(state, batch)
    history.append(jax.device_get(metrics))
  return task, state, batch, history


def test_training_lowers_the_negative_elbo(trained):
  _, _, _, history = trained
  first, last = history[0], np.mean([h["neg_elbo"] for h in history[-10:]])
  assert first["neg_elbo"] > 400  # ~784 log 2 at initialisation
  assert last < 0.75 * first["neg_elbo"], (first, last)
  for h in history:
    np.testing.assert_allclose(h["neg_elbo"], h["rec_nll"] + h["kl"], rtol=1e-5)
    assert h["finite"] == 1.0


def test_importance_weighted_bound(trained):
  """k = 1 is the one-sample ELBO (same z); averaged over draws it matches the
  analytic-KL ELBO; the bound tightens (never loosens, on average) with k;
  the estimate does not depend on the chunking."""
  task, state, batch, _ = trained
  x_in, target = task.inputs(batch["image"], jax.random.PRNGKey(5))
  nll = jax.jit(task.importance_weighted_nll, static_argnums=4)

  # k = 1 by hand: one z from fold_in(key, 0).
  key = jax.random.PRNGKey(9)
  mean, logvar = task.model.apply({"params": state.params}, x_in, method="encode")
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.fold_in(key, 0), mean.shape)
  out = task.model.apply({"params": state.params}, z, method="decode")
  log_w = (likelihoods.log_prob("bernoulli", out, target)
           + likelihoods.diag_gaussian_log_prob(z, 0 * z, 0 * z)
           - likelihoods.diag_gaussian_log_prob(z, mean, logvar))
  np.testing.assert_allclose(nll(state.params, x_in, target, key, 1), -log_w, rtol=1e-5)

  keys = jax.random.split(jax.random.PRNGKey(3), 20)
  by_k = {k: np.mean([nll(state.params, x_in, target, kk, k) for kk in keys])
          for k in (1, 10, 100)}
  elbo_draws = [task._elbo_terms(state.params, x_in, target, kk, train=False) for kk in keys]
  neg_elbo = np.mean([np.mean(kl - rec) for rec, kl in elbo_draws])
  assert abs(by_k[1] - neg_elbo) < 0.02 * neg_elbo, (by_k, neg_elbo)
  assert by_k[1] > by_k[10] > by_k[100] > 0, by_k

  whole = nll(state.params, x_in, target, key, 40)
  original = vae_task._IWAE_BUDGET
  try:
    vae_task._IWAE_BUDGET = 8 * 784 * 2 * 4  # four samples a chunk
    assert vae_task._chunk_size(40, 8 * 784 * 2) == 4
    chunked = jax.jit(task.importance_weighted_nll, static_argnums=4)(
        state.params, x_in, target, key, 40)
  finally:
    vae_task._IWAE_BUDGET = original
  np.testing.assert_allclose(chunked, whole, rtol=1e-5)


def test_eval_step_sums_and_masks(trained):
  task, state, batch, _ = trained
  mask = jnp.array([1, 1, 1, 1, 1, 0, 0, 0], jnp.float32)
  eval_step = jax.jit(task.eval_step)
  sums = jax.device_get(eval_step(state, {**batch, "mask": mask}, jnp.int32(0)))
  assert sums["count"] == 5
  np.testing.assert_allclose(sums["neg_elbo"], sums["rec_nll"] + sums["kl"], rtol=1e-5)
  assert sums["kl"] > 0 and sums["nll"] > 0
  first5 = jax.device_get(eval_step(state, {"image": batch["image"][:5], "mask": mask[:5]},
                                     jnp.int32(0)))
  assert first5["count"] == 5 and first5["kl"] > 0


@pytest.mark.parametrize("model,shape,likelihood", [
    ("mlp", (28, 28, 1), "bernoulli"), ("conv", (28, 28, 1), "bernoulli"),
    ("conv", (32, 32, 3), "logistic"), ("conv", (64, 64, 3), "gaussian"),
    ("resnet", (32, 32, 3), "logistic_ar"), ("resnet", (28, 28, 1), "logistic"),
    ("resnet_pixel", (32, 32, 3), "logistic_ar"), ("resnet", (32, 32, 3), "logistic_mix")])
def test_model_shapes(model, shape, likelihood):
  out_c = likelihoods.decoder_channels(likelihood, shape[-1])
  latent_dim = 16 if not model.startswith("resnet") else (shape[0] // 4)**2 * 2  # a 2-channel map
  vae = make_vae(model, shape, latent_dim=latent_dim, out_channels=out_c, base_features=8)
  x = jnp.zeros((2, *shape))
  variables = random_init(vae, x, jax.random.PRNGKey(1))
  out, mean, logvar, z = jax.jit(lambda v, x: vae.apply(v, x, jax.random.PRNGKey(2), train=True))(
      variables, x)
  assert out.shape == (2, *shape[:2], out_c)
  assert mean.shape == logvar.shape == z.shape == (2, latent_dim)
  target = jnp.full(x.shape, 0.5) if likelihood == "bernoulli" else x
  assert likelihoods.log_prob(likelihood, out, target).shape == (2,)


def test_the_cifar10_preset_and_the_cosine_schedule():
  config = get_config("cifar10")
  assert (config.model, config.likelihood, config.schedule) == ("resnet_pixel", "logistic_ar",
                                                                "cosine")
  config.update(dict(num_train_steps=10, num_importance_samples=1, num_sample_images=4))
  task = VAETask(config, (32, 32, 3), np.zeros((4, 32, 32, 3), np.float32))
  assert task.model.encoder.latent_dim == 512
  schedule = vae_task._schedule(config)
  assert float(schedule(0)) == pytest.approx(config.learning_rate)
  assert float(schedule(10)) == pytest.approx(0.0)
  old = get_config()
  del old["schedule"]  # a run saved before the field existed kept its rate constant
  assert vae_task._schedule(old) == old.learning_rate
  with pytest.raises(ValueError, match="preset"):
    get_config("cifar100")
  with pytest.raises(ValueError, match="schedule"):
    VAETask(_config(schedule="linear"), (28, 28, 1), _digits())


def test_free_bits_floor_each_dimensions_average_kl():
  """sum_j max(lambda, batch mean of KL_j) by hand; a floor above every
  dimension's KL removes the KL's gradient (the step equals beta = 0's), a
  floor below all of them leaves the plain ELBO's step; the logged KL stays
  the true one."""
  task = VAETask(_config(latent_dim=8, base_features=8, free_bits=0.5), (28, 28, 1), _digits())
  kl_dims = jnp.array([[0.1, 2.0, 0.4], [0.3, 1.0, 0.8]])
  # dimension means 0.2, 1.5, 0.6 -> 0.5 + 1.5 + 0.6
  np.testing.assert_allclose(task.free_bits_kl(kl_dims), 2.6, rtol=1e-6)

  batch = {"image": jnp.asarray(_digits())}

  def one_step(**overrides):
    task = VAETask(_config(latent_dim=8, base_features=8, **overrides), (28, 28, 1), _digits())
    state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
    return jax.device_get(jax.jit(task.train_step)(state, batch))

  plain, plain_metrics = one_step()
  no_kl, _ = one_step(beta=0.0)
  floored, floored_metrics = one_step(free_bits=1e4)
  tiny, tiny_metrics = one_step(free_bits=1e-6)
  close = lambda a, b: jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), a, b)
  close(floored.params, no_kl.params)
  close(tiny.params, plain.params)
  assert tiny_metrics["kl_floored"] == 0.0 and floored_metrics["kl_floored"] == 1.0
  np.testing.assert_allclose(floored_metrics["kl"], plain_metrics["kl"], rtol=1e-6)
  np.testing.assert_allclose(floored_metrics["loss"], floored_metrics["rec_nll"] + 8 * 1e4,
                             rtol=1e-6)
  with pytest.raises(AssertionError):  # the KL's gradient is not negligible
    close(plain.params, no_kl.params)
  with pytest.raises(ValueError, match="free_bits"):
    VAETask(_config(free_bits=-1.0), (28, 28, 1), _digits())


def test_bad_configs_are_rejected():
  with pytest.raises(ValueError, match="image_size"):
    conv_plan(30)
  with pytest.raises(ValueError, match="model"):
    VAETask(_config(model="pixelcnn"), (28, 28, 1), _digits())
  with pytest.raises(ValueError, match="multiple of 49"):
    VAETask(_config(model="resnet", latent_dim=50), (28, 28, 1), _digits())
  with pytest.raises(ValueError, match="likelihood"):
    VAETask(_config(likelihood="poisson"), (28, 28, 1), _digits())
  with pytest.raises(ValueError, match="binarization"):
    VAETask(_config(binarization="maybe"), (28, 28, 1), _digits())


def test_eight_devices_match_one_device(num_devices):
  """Tolerance: metrics 1e-5 relative; Adam moments 1e-4 of each leaf's scale;
  params within 2 * lr (Adam's first step is lr * sign(g)) and all but 1 in
  10^4 within 1e-6."""
  task = VAETask(_config(batch_size=16, latent_dim=8, base_features=8), (28, 28, 1),
                 _digits())
  batch = {"image": np.concatenate([_digits(8)] * 2)}
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh, init, step = compiled(task, tuple(devices))
    state, metrics = step(init(jax.random.PRNGKey(0)), sharding.to_global_batch(batch, mesh))
    results.append(jax.device_get((state, metrics)))
  (s1, m1), (s8, m8) = results
  for k in m1:
    np.testing.assert_allclose(m8[k], m1[k], rtol=1e-5, err_msg=k)
  assert_adam_states_close(jax.tree.leaves(s1.opt_state), jax.tree.leaves(s8.opt_state),
                           jax.tree.leaves(s1.params), jax.tree.leaves(s8.params),
                           task.config.learning_rate)
