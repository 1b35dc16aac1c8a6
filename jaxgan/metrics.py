"""Feature-space metrics between a real and a generated image set.

Inputs are feature matrices [N, D] (e.g. a classifier's penultimate layer)
or class probabilities [N, K]; statistics are in float64.

- `frechet_distance` (FID when the features are InceptionV3 pool3):
  |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), the trace of the square root
  taken from the eigenvalues of the symmetric S1^(1/2) S2 S1^(1/2).
- `kernel_inception_distance` (KID, Binkowski et al. 2018): unbiased MMD^2
  with the kernel (x.y / D + 1)^3, mean and std over random subsets.
- `intra_fid` (Miyato & Koyama 2018): the mean over classes of the FID
  between the real and the generated images of each class; and
  `class_accuracy`, the share of images a classifier assigns to their class.
- `inception_score` (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))).
- `precision_recall` (Kynkaanniemi et al. 2019) and `density_coverage`
  (Naeem et al. 2020), with k-nearest-neighbour radii.
"""

from __future__ import annotations

import numpy as np


def _f64(x) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"Expected features [N, D], got shape {x.shape}.")
  return x


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
  """The symmetric square root of a symmetric positive semi-definite matrix
  (eigendecomposition; eigenvalues below 0 from rounding are set to 0)."""
  matrix = np.asarray(matrix, np.float64)
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """(mean, covariance) of features [N, D], float64, unbiased covariance."""
  f = _f64(features)
  if f.shape[0] < 2:
    raise ValueError("Need at least 2 feature vectors for a covariance.")
  return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
  root1 = sqrtm_psd(sigma1)
  # tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2)): a symmetric PSD matrix,
  # so its eigenvalues are real and >= 0 (up to rounding).
  middle = root1 @ sigma2 @ root1
  eig = np.linalg.eigvalsh((middle + middle.T) / 2)
  trace_root = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
  diff = mu1 - mu2
  value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)
  return max(value, 0.0)


def fid_from_features(real, fake) -> float:
  return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def intra_fid(real, real_labels, fake, fake_labels) -> tuple[float, dict[int, float]]:
  """(mean per-class FID, {class: FID}) over the classes present in the real
  labels; every such class needs at least 2 real and 2 generated features."""
  real, fake = _f64(real), _f64(fake)
  real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
  per_class = {}
  for c in np.unique(real_labels):
    r, f = real[real_labels == c], fake[fake_labels == c]
    if len(r) < 2 or len(f) < 2:
      raise ValueError(f"intra-FID: class {int(c)} has {len(r)} real and {len(f)} generated "
                       "images; each class needs at least 2 of both.")
    per_class[int(c)] = fid_from_features(r, f)
  return float(np.mean(list(per_class.values()))), per_class


def class_accuracy(probs, labels) -> float:
  """The share of rows of class scores [N, K] whose argmax is the label."""
  return float(np.mean(np.argmax(np.asarray(probs), axis=1) == np.asarray(labels)))


def kernel_inception_distance(real, fake, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
  """(mean, std) over `num_subsets` random subsets of the unbiased MMD^2
  estimate with the cubic polynomial kernel."""
  real, fake = _f64(real), _f64(fake)
  n = min(subset_size, real.shape[0], fake.shape[0])
  if n < 2:
    raise ValueError("KID needs at least 2 real and 2 generated feature vectors.")
  d = real.shape[1]
  rng = np.random.default_rng(seed)
  kernel = lambda a, b: (a @ b.T / d + 1.0) ** 3
  values = []
  for _ in range(num_subsets):
    x = real[rng.choice(real.shape[0], n, replace=False)]
    y = fake[rng.choice(fake.shape[0], n, replace=False)]
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    off_diag = lambda k: (k.sum() - np.trace(k)) / (n * (n - 1))
    values.append(off_diag(kxx) + off_diag(kyy) - 2.0 * kxy.mean())
  return float(np.mean(values)), float(np.std(values))


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
  """(mean, std) over `splits` of exp(mean KL(p(y|x) || p(y))); probs [N, K]."""
  p = _f64(probs)
  scores = []
  for part in np.array_split(p, splits):
    marginal = part.mean(axis=0, keepdims=True)
    kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def _squared_distances(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
  out = np.empty((a.shape[0], b.shape[0]))
  b_sq = np.sum(b * b, axis=1)
  for i in range(0, a.shape[0], chunk):
    block = a[i:i + chunk]
    out[i:i + chunk] = np.sum(block * block, axis=1)[:, None] + b_sq[None] - 2.0 * block @ b.T
  return np.maximum(out, 0.0)


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
  """Squared distance from each row to its k-th nearest other row."""
  if x.shape[0] <= k:
    raise ValueError(f"Need more than k={k} feature vectors for k-NN radii, got {x.shape[0]}.")
  d = _squared_distances(x, x)
  # Index k: position 0 is the point itself (distance 0).
  return np.partition(d, k, axis=1)[:, k]


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
  """Precision: the fraction of generated samples inside the real manifold
  (the union of balls around real samples reaching their k-th neighbour);
  recall: the fraction of real samples inside the generated manifold."""
  real, fake = _f64(real), _f64(fake)
  real_radii, fake_radii = _knn_radii(real, k), _knn_radii(fake, k)
  d = _squared_distances(real, fake)  # [real, fake]
  precision = np.mean(np.any(d <= real_radii[:, None], axis=0))
  recall = np.mean(np.any(d <= fake_radii[None, :], axis=1))
  return float(precision), float(recall)


def density_coverage(real, fake, k: int = 5) -> tuple[float, float]:
  """Density: how many real k-NN balls contain each generated sample, over k
  (about 1 when the distributions match); coverage: the fraction of real
  balls that contain at least one generated sample."""
  real, fake = _f64(real), _f64(fake)
  radii = _knn_radii(real, k)
  inside = _squared_distances(real, fake) <= radii[:, None]  # [real, fake]
  density = inside.sum() / (k * fake.shape[0])
  coverage = np.mean(inside.any(axis=1))
  return float(density), float(coverage)
