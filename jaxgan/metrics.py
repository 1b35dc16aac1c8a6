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
  (Naeem et al. 2020), with k-nearest-neighbour radii; `manifold_metrics`
  computes all four from one pass over each distance matrix. Distances are
  taken a block of rows at a time (`CHUNK_BYTES`), so 50k vs 50k fits in a
  few GB (benchmarks/evaluation_scale.py).
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


def feature_statistics(features, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
  """(mean, covariance) of features [N, D], float64, unbiased covariance,
  accumulated `chunk` rows at a time (no float64 copy of all N rows)."""
  features = np.asarray(features)
  if features.ndim != 2:
    raise ValueError(f"Expected features [N, D], got shape {features.shape}.")
  n, d = features.shape
  if n < 2:
    raise ValueError("Need at least 2 feature vectors for a covariance.")
  total = np.zeros(d)
  for i in range(0, n, chunk):
    total += np.asarray(features[i:i + chunk], np.float64).sum(axis=0)
  mu = total / n
  scatter = np.zeros((d, d))
  for i in range(0, n, chunk):
    centred = np.asarray(features[i:i + chunk], np.float64) - mu
    scatter += centred.T @ centred
  return mu, scatter / (n - 1)


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


def class_mix_distance(real_probs, fake_probs) -> float:
  """Total variation between the class mixes of two sets: half the L1
  distance between the shares of rows each class wins (argmax of class
  scores [N, K]); 0 when every class is as frequent among the generated
  images as among the real ones, 1 when they share no class. A generator's
  mode imbalance (too many of some digits, too few of others) that FID
  only shows mixed with everything else."""
  real_probs, fake_probs = np.asarray(real_probs), np.asarray(fake_probs)
  if real_probs.ndim != 2 or fake_probs.ndim != 2 or real_probs.shape[1] != fake_probs.shape[1]:
    raise ValueError(f"Expected class scores [N, K] with the same K, got {real_probs.shape} and "
                     f"{fake_probs.shape}.")
  k = real_probs.shape[1]
  share = lambda p: np.bincount(np.argmax(p, axis=1), minlength=k) / len(p)
  return float(0.5 * np.abs(share(real_probs) - share(fake_probs)).sum())


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


# Distances are computed a block of rows at a time: a block of at most this
# many bytes (float64) at once, so 50k x 50k comparisons fit in bounded memory.
CHUNK_BYTES = 256 << 20


def _row_blocks(num_rows: int, num_cols: int, chunk_bytes: int):
  rows = max(1, int(chunk_bytes) // (8 * max(1, num_cols)))
  for i in range(0, num_rows, rows):
    yield slice(i, min(i + rows, num_rows))


def _squared_norms(x: np.ndarray) -> np.ndarray:
  return np.einsum("ij,ij->i", x, x)


def _distance_block(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray,
                    b_sq: np.ndarray) -> np.ndarray:
  """Squared distances [len(a), len(b)] (|a|^2 + |b|^2 - 2 a.b, clipped at 0)."""
  return np.maximum(a_sq[:, None] + b_sq[None] - 2.0 * (a @ b.T), 0.0)


def _knn_radii(x: np.ndarray, ks, chunk_bytes: int = CHUNK_BYTES) -> dict[int, np.ndarray]:
  """{k: squared distance from each row to its k-th nearest other row}, the
  distance matrix taken a block of rows at a time."""
  ks = sorted(set(int(k) for k in ks))
  if x.shape[0] <= ks[-1]:
    raise ValueError(f"Need more than k={ks[-1]} feature vectors for k-NN radii, got "
                     f"{x.shape[0]}.")
  sq = _squared_norms(x)
  radii = {k: np.empty(x.shape[0]) for k in ks}
  for rows in _row_blocks(x.shape[0], x.shape[0], chunk_bytes):
    # Index k: position 0 is the point itself (distance 0).
    part = np.partition(_distance_block(x[rows], sq[rows], x, sq), ks, axis=1)
    for k in ks:
      radii[k][rows] = part[:, k]
  return radii


def manifold_metrics(real, fake, k_pr: int | None = 3, k_dc: int | None = 5,
                     chunk_bytes: int = CHUNK_BYTES) -> dict[str, float]:
  """Precision and recall (Kynkaanniemi et al. 2019, k = `k_pr`), density
  and coverage (Naeem et al. 2020, k = `k_dc`) from one pass over each
  distance matrix (real-real, generated-generated when recall is asked for,
  real-generated), each a block of rows at a time, so memory stays bounded
  (about the features in float64 plus `chunk_bytes`) for any N. Pass None
  for a pair not wanted."""
  real, fake = _f64(real), _f64(fake)
  real_ks = [k for k in (k_pr, k_dc) if k is not None]
  if not real_ks:
    raise ValueError("manifold_metrics: ask for precision/recall, density/coverage or both.")
  real_radii = _knn_radii(real, real_ks, chunk_bytes)
  fake_radii = _knn_radii(fake, [k_pr], chunk_bytes)[k_pr] if k_pr is not None else None
  real_sq, fake_sq = _squared_norms(real), _squared_norms(fake)
  precise = np.zeros(fake.shape[0], bool)   # generated sample inside some real ball
  recalled = np.zeros(real.shape[0], bool)  # real sample inside some generated ball
  in_balls = np.zeros(fake.shape[0], np.int64)  # real k_dc-balls holding each sample
  covered = np.zeros(real.shape[0], bool)   # real k_dc-ball holding some sample
  for rows in _row_blocks(fake.shape[0], real.shape[0], chunk_bytes):
    d = _distance_block(fake[rows], fake_sq[rows], real, real_sq)  # [fake block, real]
    if k_pr is not None:
      precise[rows] = np.any(d <= real_radii[k_pr][None], axis=1)
      recalled |= np.any(d <= fake_radii[rows, None], axis=0)
    if k_dc is not None:
      inside = d <= real_radii[k_dc][None]
      in_balls[rows] = inside.sum(axis=1)
      covered |= inside.any(axis=0)
  out = {}
  if k_pr is not None:
    out.update(precision=float(precise.mean()), recall=float(recalled.mean()))
  if k_dc is not None:
    out.update(density=float(in_balls.sum() / (k_dc * fake.shape[0])),
               coverage=float(covered.mean()))
  return out


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
  """Precision: the fraction of generated samples inside the real manifold
  (the union of balls around real samples reaching their k-th neighbour);
  recall: the fraction of real samples inside the generated manifold."""
  m = manifold_metrics(real, fake, k_pr=k, k_dc=None)
  return m["precision"], m["recall"]


def density_coverage(real, fake, k: int = 5) -> tuple[float, float]:
  """Density: how many real k-NN balls contain each generated sample, over k
  (about 1 when the distributions match); coverage: the fraction of real
  balls that contain at least one generated sample."""
  m = manifold_metrics(real, fake, k_pr=None, k_dc=k)
  return m["density"], m["coverage"]
