"""Discriminator rejection sampling (jaxgan/evaluation/rejection.py and
`generators.rejection_sample`): the calibration against a known log density
ratio, the acceptance rule against exact rejection sampling, and the
sampling loop on a toy generator whose discriminator is known."""

import jax
import numpy as np
import pytest

from jaxgan.evaluation import generators, rejection


def test_calibration_recovers_a_known_log_density_ratio():
  """Scores of real images ~ N(1, 1) and of fakes ~ N(0, 1): log p_real / p_fake
  = s - 1/2 exactly, so the logistic regression's scale is 1 and bias -1/2,
  and an affine change of the scores is undone."""
  rng = np.random.default_rng(0)
  real, fake = rng.normal(1.0, 1.0, 200_000), rng.normal(0.0, 1.0, 100_000)
  scale, bias = rejection.calibrate(real, fake)
  assert scale == pytest.approx(1.0, abs=0.02) and bias == pytest.approx(-0.5, abs=0.02)
  scale2, bias2 = rejection.calibrate(2 * real + 3, 2 * fake + 3)  # the same ratio
  assert scale2 == pytest.approx(scale / 2, rel=1e-6)
  assert bias2 == pytest.approx(bias - 3 * scale / 2, abs=1e-6)
  # Perfectly separated sets: the ridge keeps the answer finite and the sign right.
  scale3, bias3 = rejection.calibrate(np.full(10, 5.0), np.full(10, -5.0))
  assert np.isfinite([scale3, bias3]).all() and scale3 > 0
  with pytest.raises(ValueError, match="finite scores"):
    rejection.calibrate([np.nan], [0.0])


def test_acceptance_is_exact_rejection_sampling_without_eps_and_gamma():
  """sigmoid(F) = exp(logit - M) when eps = gamma = 0; accepting N(0, 1) draws
  with the true log ratio of N(0.5, 0.8^2) to N(0, 1) and its maximum then
  gives N(0.5, 0.8^2). gamma moves every probability by the same log odds."""
  logits = np.array([-30.0, -3.0, -1.0, -0.1, 0.0])
  with np.errstate(divide="ignore"):  # eps = 0 at the maximum: F = inf
    exact = rejection.acceptance(logits, 0.0, 0.0, eps=0.0)
  assert exact[-1] == 1.0
  np.testing.assert_allclose(exact[:-1],
                             np.exp(logits[:-1]), rtol=1e-9, atol=1e-300)
  assert rejection.acceptance(logits, 0.0, 0.0)[-1] > 1 - 1e-5  # eps: finite at the maximum
  assert rejection.acceptance([2.0], 2.0, 0.0)[0] == rejection.acceptance([5.0], 2.0, 0.0)[0]
  f = rejection.shifted_log_odds(logits, 0.0)
  np.testing.assert_allclose(rejection.acceptance(logits, 0.0, 1.5),
                             1 / (1 + np.exp(-(f - 1.5))), rtol=1e-12)
  assert rejection.acceptance([-1.0], 0.0, float(f[2]))[0] == pytest.approx(0.5)

  x = np.random.default_rng(1).normal(0.0, 1.0, 1_000_000)
  mu, sd = 0.5, 0.8
  log_ratio = (-0.5 * ((x - mu) / sd) ** 2 - np.log(sd)) + 0.5 * x ** 2
  # The ratio's maximum, at x* = mu / (1 - sd^2).
  xs = mu / (1 - sd ** 2)
  m = -0.5 * ((xs - mu) / sd) ** 2 - np.log(sd) + 0.5 * xs ** 2
  u = np.random.default_rng(2).uniform(size=x.shape)
  kept = x[u < rejection.acceptance(log_ratio, m, 0.0, eps=0.0)]
  assert len(kept) > 100_000
  assert kept.mean() == pytest.approx(mu, abs=0.01) and kept.std() == pytest.approx(sd, abs=0.01)


class _ToySampler:
  """A GAN whose 'images' (1x1x1) are its N(0, 1) latents and whose
  discriminator scores an image by its value: against real images ~ N(1, 1)
  the log density ratio is x - 1/2."""
  image_shape, latent_dim, g_latent_dim, num_classes = (1, 1, 1), 1, 1, 0
  truncation, ema_decay, generator, objective = "latent", 0.0, None, None

  def __init__(self):
    self.sample_jit = jax.jit(lambda state, z, labels=None, psi=None: z.reshape(-1, 1, 1, 1))

  def discriminate(self, state, x, labels=None):
    return x.reshape(-1) * state["d_scale"]


def _real(n, seed=5):
  return np.random.default_rng(seed).normal(1.0, 1.0, (n, 1, 1, 1)).astype(np.float32)


def test_rejection_sampling_keeps_what_the_discriminator_prefers():
  toy, state = _ToySampler(), {"d_scale": np.float32(3.0)}
  plain = generators.generate(toy, state, 2000, seed=0).ravel()
  kept = {}
  for percentile in (50.0, 90.0):
    images, info = generators.rejection_sample(toy, state, _real(2000), 500, seed=0,
                                               percentile=percentile, round_size=2000)
    assert images.shape == (500, 1, 1, 1)
    # D's scores are 3x; the calibration maps them back to x - 1/2.
    assert info["calibration"]["scale"] == pytest.approx(1 / 3, rel=0.1)
    assert info["calibration"]["bias"] == pytest.approx(-0.5, abs=0.1)
    assert info["kept"] >= 500 and info["candidates"] % 2000 == 0
    assert info["acceptance_rate"] == info["kept"] / info["candidates"]
    kept[percentile] = (images.ravel(), info)
  # Keeping what D prefers moves the samples towards the real mean (1), the
  # more so the higher the percentile, which keeps fewer.
  assert abs(plain.mean()) < 0.1
  assert 0.2 < kept[50.0][0].mean() < kept[90.0][0].mean()
  assert kept[90.0][1]["acceptance_rate"] < kept[50.0][1]["acceptance_rate"]
  # The same seed keeps the same samples; another seed others.
  again, _ = generators.rejection_sample(toy, state, _real(2000), 500, seed=0, percentile=90.0,
                                         round_size=2000)
  np.testing.assert_array_equal(again.ravel(), kept[90.0][0])
  other, _ = generators.rejection_sample(toy, state, _real(2000), 500, seed=1, percentile=90.0,
                                         round_size=2000)
  assert not np.array_equal(other.ravel(), kept[90.0][0])


def test_rejection_sampling_errors():
  toy, state = _ToySampler(), {"d_scale": np.float32(1.0)}
  with pytest.raises(ValueError, match=r"kept \d+ of 400 candidates .*lower the percentile"):
    generators.rejection_sample(toy, state, _real(200), 1000, seed=0, percentile=95.0,
                                round_size=200, max_candidates=400)
  with pytest.raises(ValueError, match=r"percentile \(--drs\) must be in \[0, 100\)"):
    generators.rejection_sample(toy, state, _real(200), 10, seed=0, percentile=100.0)
  with pytest.raises(ValueError, match="rounds of --drs_round >= 2"):
    generators.rejection_sample(toy, state, _real(200), 10, seed=0, percentile=80.0,
                                round_size=1)
  conditional = _ToySampler()
  conditional.num_classes = 10
  with pytest.raises(ValueError, match="for unconditional GANs"):
    generators.rejection_sample(conditional, state, _real(200), 10, seed=0, percentile=80.0)
  clustered = _ToySampler()
  clustered.latent_dim = 2  # a self-conditioned generator's extra coordinate
  with pytest.raises(ValueError, match="class, cluster or code labels"):
    rejection.check_supported(clustered)
