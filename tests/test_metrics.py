"""Feature-space metrics: against scipy, and the sanity orderings they must show."""

import numpy as np
import pytest
import scipy.linalg

from jaxgan import metrics


def _random_covariance(rng, d, rank=None):
  a = rng.normal(size=(d, rank or d))
  return a @ a.T / d


def test_matrix_square_root_and_trace_match_scipy():
  rng = np.random.default_rng(0)
  for d, rank in [(5, None), (32, None), (32, 10)]:  # full rank and singular
    s1, s2 = _random_covariance(rng, d, rank), _random_covariance(rng, d)
    root = metrics.sqrtm_psd(s1)
    np.testing.assert_allclose(root @ root, s1, atol=1e-9)
    np.testing.assert_allclose(root, np.real(scipy.linalg.sqrtm(s1)), atol=1e-6)
    # FID's trace term against scipy's general square root of S1 S2.
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                - 2 * np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2))))
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6,
                                                                        abs=1e-8)


def test_univariate_frechet_distance_is_closed_form():
  # 1-D: (m1 - m2)^2 + (s1 - s2)^2.
  assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def _real_sets(seed=0, n=600, d=16):
  """Two independent draws from one 'real' distribution (a correlated Gaussian)."""
  rng = np.random.default_rng(seed)
  mix = rng.normal(size=(d, d)) / np.sqrt(d)
  return rng.normal(size=(n, d)) @ mix, rng.normal(size=(n, d)) @ mix, rng


def test_fid_and_kid_sanity_orderings():
  """FID(real, real') ~ 0 next to FID(real, noise); FID and KID grow
  monotonically with the noise added to real samples and agree in ranking."""
  real, real2, rng = _real_sets()
  noise = rng.normal(size=real.shape) * 3
  fid_same, fid_noise = metrics.fid_from_features(real, real2), metrics.fid_from_features(real, noise)
  assert fid_same < 0.05 * fid_noise
  fids, kids = [], []
  for sigma in (0.0, 0.3, 0.6, 1.0, 2.0):
    corrupted = real2 + sigma * rng.normal(size=real2.shape)
    fids.append(metrics.fid_from_features(real, corrupted))
    kids.append(metrics.kernel_inception_distance(real, corrupted, num_subsets=20,
                                                  subset_size=300)[0])
  assert fids == sorted(fids) and kids == sorted(kids), (fids, kids)
  assert abs(kids[0]) < 0.05 * kids[-1]  # unbiased: ~0 for the same distribution


def test_precision_recall_density_coverage():
  """Precision falls when samples are replaced by noise; recall falls when
  they collapse to one mode; both ~1 for a fresh draw of the real data."""
  real, real2, rng = _real_sets()
  p, r = metrics.precision_recall(real, real2)
  assert p > 0.8 and r > 0.8
  d, c = metrics.density_coverage(real, real2)
  assert 0.7 < d < 1.3 and c > 0.9
  noise = rng.normal(size=real.shape) * 3 + 5
  p_noise, _ = metrics.precision_recall(real, noise)
  d_noise, c_noise = metrics.density_coverage(real, noise)
  assert p_noise < 0.1 and d_noise < 0.1 and c_noise < 0.1
  # Mode collapse: every sample near one real point.
  collapsed = real[:1] + 0.01 * rng.normal(size=real.shape)
  p_col, r_col = metrics.precision_recall(real, collapsed)
  _, c_col = metrics.density_coverage(real, collapsed)
  assert p_col > 0.9 and r_col < 0.1 and c_col < 0.1


def _naive_prdc(real, fake, k_pr, k_dc):
  """The definitions, on whole matrices (differences, not the norm expansion)."""
  dist = lambda a, b: ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
  rr, ff, rf = dist(real, real), dist(fake, fake), dist(real, fake)
  radius = lambda d, k: np.sort(d, axis=1)[:, k]
  r_pr, f_pr, r_dc = radius(rr, k_pr), radius(ff, k_pr), radius(rr, k_dc)
  inside = rf <= r_dc[:, None]
  return {"precision": np.mean(np.any(rf <= r_pr[:, None], axis=0)),
          "recall": np.mean(np.any(rf <= f_pr[None, :], axis=1)),
          "density": inside.sum() / (k_dc * fake.shape[0]),
          "coverage": np.mean(inside.any(axis=1))}


@pytest.mark.parametrize("chunk_bytes", [1, 8 * 97 * 5, metrics.CHUNK_BYTES])
def test_chunked_manifold_metrics_equal_the_definitions(chunk_bytes):
  """Blocks of one row, of a few rows (not dividing N) and one block: the
  same precision/recall/density/coverage as the whole-matrix definitions."""
  rng = np.random.default_rng(3)
  real = rng.normal(size=(97, 6))
  fake = rng.normal(size=(83, 6)) * 1.2 + 0.3
  expected = _naive_prdc(real, fake, 3, 5)
  got = metrics.manifold_metrics(real.astype(np.float32), fake.astype(np.float32), 3, 5,
                                 chunk_bytes=chunk_bytes)
  expected32 = _naive_prdc(real.astype(np.float32).astype(np.float64),
                           fake.astype(np.float32).astype(np.float64), 3, 5)
  assert got == pytest.approx(expected32, abs=1e-12)
  assert 0.2 < expected["precision"] < 1 and 0.2 < expected["coverage"] < 1  # not trivial
  p, r = metrics.precision_recall(real, fake, k=3)
  d, c = metrics.density_coverage(real, fake, k=5)
  assert (p, r, d, c) == pytest.approx(
      (expected["precision"], expected["recall"], expected["density"], expected["coverage"]),
      abs=1e-12)


def test_feature_statistics_in_chunks_equal_numpy():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(1001, 7)).astype(np.float32) * 3 + 1
  for chunk in (1, 100, 8192):
    mu, sigma = metrics.feature_statistics(x, chunk=chunk)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False),
                               rtol=1e-10, atol=1e-12)


def test_inception_score_bounds():
  k = 10
  confident_diverse = np.eye(k)[np.arange(1000) % k]
  uniform = np.full((1000, k), 1.0 / k)
  collapsed = np.eye(k)[np.zeros(1000, int)]
  assert metrics.inception_score(confident_diverse)[0] == pytest.approx(k, rel=1e-6)
  assert metrics.inception_score(uniform)[0] == pytest.approx(1.0)
  assert metrics.inception_score(collapsed)[0] == pytest.approx(1.0)


def test_class_mix_distance_by_hand():
  """Half the L1 distance between the argmax class shares: real 0,0,1,2 has
  shares (1/2, 1/4, 1/4); fake 0,1,1,1 (1/4, 3/4, 0): TV = (1/4 + 1/2 + 1/4) / 2."""
  onehot = lambda labels: np.eye(3)[labels] * 0.8 + 0.1
  real, fake = onehot([0, 0, 1, 2]), onehot([0, 1, 1, 1])
  assert metrics.class_mix_distance(real, fake) == pytest.approx(0.5)
  assert metrics.class_mix_distance(real, real[::-1]) == 0.0  # order does not matter
  assert metrics.class_mix_distance(onehot([0, 0]), onehot([2, 2, 2])) == 1.0
  with pytest.raises(ValueError, match="same K"):
    metrics.class_mix_distance(real, np.ones((4, 5)))
