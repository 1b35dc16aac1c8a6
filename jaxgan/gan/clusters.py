"""Self-conditioning: k-means clusters of the training images stand in for
class labels (`config.cluster_conditioning = K`).

A class-conditional GAN (projection discriminator, conditional BatchNorm)
beats every unconditional one by far on MNIST, but needs labels. Here the
labels come from the data itself: K k-means centroids of the first
`MAX_FIT_IMAGES` training images (pixels in [-1, 1]); each real image is
labelled by its nearest centroid inside the step, and fakes draw their
cluster from the clusters' frequencies (the prior). Liu et al. 2020
(Self-Conditioned GAN) cluster the discriminator's features and re-cluster
during training; clustering pixels once is simpler, needs no schedule, and
keeps a run's labels fixed, so resuming stays exact.

To the rest of jaxgan the generator looks unconditional: its latent has one
more coordinate, whose standard normal value picks the cluster by the
prior's inverse CDF (`from_latent`), so evaluation, studies and
interpolation sample it like any unconditional GAN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The images k-means sees: enough for the centroids, a few seconds to fit.
MAX_FIT_IMAGES = 20_000


def fit(images: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
  """K-means (scikit-learn, k-means++ with 4 restarts) of images [N, H, W, C]
  -> {"centroids": float32 [k, H*W*C], "log_prior": float32 [k]: log of each
  cluster's share of the images}."""
  from sklearn.cluster import KMeans

  x = np.asarray(images, np.float32).reshape(len(images), -1)
  if len(x) < k:
    raise ValueError(f"config.cluster_conditioning={k} needs at least {k} training images; "
                     f"the train split has {len(x)}.")
  km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
  counts = np.bincount(km.labels_, minlength=k).astype(np.float64)
  if not counts.all():
    raise ValueError(f"k-means found fewer than {k} distinct clusters in the training images "
                     "(too many identical images?): lower config.cluster_conditioning.")
  return {"centroids": km.cluster_centers_.astype(np.float32),
          "log_prior": np.log(counts / counts.sum()).astype(np.float32)}


def assign(centroids: jax.Array, images: jax.Array) -> jax.Array:
  """Each image's nearest centroid (Euclidean, in pixels): images
  [..., H, W, C] -> int32 labels [...]."""
  lead = images.shape[:-3]
  x = images.reshape(-1, centroids.shape[1]).astype(jnp.float32)
  c = centroids.astype(jnp.float32)
  # |x - c|^2 up to |x|^2, which does not change the argmin.
  dist = jnp.sum(c * c, axis=1) - 2.0 * jnp.dot(x, c.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.argmin(dist, axis=1).astype(jnp.int32).reshape(lead)


def sample(key: jax.Array, log_prior: jax.Array, n: int) -> jax.Array:
  """n cluster labels drawn from the prior: int32 [n]."""
  return jax.random.categorical(key, log_prior, shape=(n,)).astype(jnp.int32)


def from_latent(u: jax.Array, log_prior: jax.Array) -> jax.Array:
  """Clusters for standard normal values u [N] by the prior's inverse CDF
  (u ~ N(0, 1) gives clusters distributed as the prior): int32 [N]."""
  cdf = jnp.cumsum(jnp.exp(log_prior.astype(jnp.float32)))
  p = jax.scipy.stats.norm.cdf(u.astype(jnp.float32)) * cdf[-1]
  return jnp.minimum(jnp.searchsorted(cdf, p, side="right"),
                     log_prior.shape[0] - 1).astype(jnp.int32)
