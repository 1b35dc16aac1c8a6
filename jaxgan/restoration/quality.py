"""PSNR and SSIM for batches of images [N, H, W, C] with values in
[0, data_range], in JAX.

SSIM follows scikit-image's `structural_similarity` (Wang et al. 2004):
- default: a 7x7 uniform window with the sample covariance (N / (N - 1));
- `gaussian=True`: an 11x11 Gaussian window of sigma 1.5 with the
  population covariance (Wang et al.'s own setting, skimage's
  `gaussian_weights=True, use_sample_covariance=False`);
K1 = 0.01, K2 = 0.03, statistics per channel, and the SSIM map averaged over
the pixels at least half a window from the border (as skimage crops it),
then over channels. With `region` ([N, H, W] or [N, H, W, 1], 1 = counted),
PSNR and the SSIM map are averaged over that region only (e.g. the hole of
an inpainting).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _per_image_mean(x: jax.Array, weights: jax.Array | None) -> jax.Array:
  """[N, H, W, C] -> [N]: mean over pixels and channels (weighted by [N, H, W, 1])."""
  if weights is None:
    return jnp.mean(x, axis=(1, 2, 3))
  w = jnp.broadcast_to(weights, x.shape)
  return jnp.sum(x * w, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(w, axis=(1, 2, 3)), 1e-12)


def _region(region, like: jax.Array):
  if region is None:
    return None
  r = jnp.asarray(region, jnp.float32)
  return r[..., None] if r.ndim == 3 else r


def psnr(x: jax.Array, y: jax.Array, data_range: float = 1.0, region=None) -> jax.Array:
  """[N] peak signal-to-noise ratios in dB (inf for identical images)."""
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  mse = _per_image_mean(jnp.square(x - y), _region(region, x))
  return 10.0 * jnp.log10(data_range ** 2 / mse)


def _window(gaussian: bool) -> np.ndarray:
  if not gaussian:
    return np.full((7, 7), 1.0 / 49.0, np.float32)
  t = np.arange(11) - 5.0
  g = np.exp(-0.5 * (t / 1.5) ** 2)
  w = np.outer(g, g)
  return (w / w.sum()).astype(np.float32)


def _filter(x: jax.Array, window: np.ndarray) -> jax.Array:
  """Each channel of [N, H, W, C] correlated with `window`, VALID."""
  c = x.shape[-1]
  k = jnp.asarray(np.tile(window[:, :, None, None], (1, 1, 1, c)))
  return jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", feature_group_count=c,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST)


def ssim(x: jax.Array, y: jax.Array, data_range: float = 1.0, region=None,
         gaussian: bool = False) -> jax.Array:
  """[N] mean structural similarity of each image pair."""
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  window = _window(gaussian)
  win = window.shape[0]
  cov_norm = win * win / (win * win - 1.0) if not gaussian else 1.0
  mx, my = _filter(x, window), _filter(y, window)
  vx = cov_norm * (_filter(x * x, window) - mx * mx)
  vy = cov_norm * (_filter(y * y, window) - my * my)
  vxy = cov_norm * (_filter(x * y, window) - mx * my)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
  # The VALID map covers exactly the pixels skimage keeps after its crop.
  r = _region(region, x)
  if r is not None:
    pad = (win - 1) // 2
    r = r[:, pad:pad + s.shape[1], pad:pad + s.shape[2]]
  return _per_image_mean(s, r)
