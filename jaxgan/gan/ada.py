"""Adaptive discriminator augmentation, ADA (Karras et al. 2020, "Training
Generative Adversarial Networks with Limited Data"): differentiable
augmentations applied to every image D sees, real and fake, each transform to
each image with probability p, and p steered by how much D overfits.

The 'bgc' pipeline on images [N, H, W, C] in [-1, 1], in the paper's order
and with its strengths:
- b (pixel blitting): x-flip; rotation by a multiple of 90 degrees; integer
  translation, uniform in +-0.125 of the image size;
- g (general geometric): isotropic scaling 2^N(0, 0.2^2); rotation, uniform
  over the circle (before and after the anisotropic scaling, each with
  probability 1 - sqrt(1 - p), so that some rotation happens with
  probability p); anisotropic scaling 2^N(0, 0.2^2) (x) and its inverse (y);
  fractional translation N(0, 0.125^2) of the image size;
- c (colour): brightness + N(0, 0.2^2); contrast x 2^N(0, 0.5^2); luma flip
  (the luma axis reflected); hue rotation about the luma axis, uniform over
  the circle; saturation x 2^N(0, 1) away from the luma axis.

The geometric transforms compose into one 3x3 matrix per image (output pixel
-> input point, in pixels about the image centre) and are applied by one
bilinear resampling with mirrored borders; the colour transforms compose
into one 4x4 matrix per image. (The paper resamples with a wavelet filter at
twice the resolution to suppress aliasing; this bilinear form is exact for
the blit transforms and differentiable everywhere, with more aliasing for
the fractional ones.) With p = 0 every matrix is the identity and the output
equals the input exactly (tested).

`adjust` is the paper's update of p: every `interval` steps, r_t = E[sign
D(real)] over those steps; p += sign(r_t - target) * (batch * interval) /
(speed_kimg * 1000), clipped to [0, 1].
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

PIPELINES = ("bgc", "bg", "b", "c")
XINT_MAX, SCALE_STD, ANISO_STD, XFRAC_STD = 0.125, 0.2, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, SATURATION_STD = 0.2, 0.5, 1.0
# (NumPy, not jnp: nothing at import may start a JAX backend before
# jax.distributed.initialize.)
_LUMA = np.array([1.0, 1.0, 1.0, 0.0], np.float32) / np.float32(math.sqrt(3.0))


def check_pipeline(name: str) -> str:
  if name not in PIPELINES:
    raise ValueError(f"Unknown ADA pipeline {name!r}; use one of {', '.join(PIPELINES)} "
                     "(b: blit, g: geometric, c: colour).")
  return name


# -- matrices: [N, 3, 3] (geometric) and [N, 4, 4] (colour) --------------------

def _eye(n: int, d: int) -> jax.Array:
  return jnp.broadcast_to(jnp.eye(d), (n, d, d))


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
  """Matrix product in full float32 (a GPU's default TF32 would round the
  sampling coordinates)."""
  return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _affine(a, b, tx, c, d, ty) -> jax.Array:
  """[n, 3, 3] from the entries of the rows (a, b, tx), (c, d, ty), (0, 0, 1),
  each [n] (or a scalar, broadcast)."""
  a, b, tx, c, d, ty = jnp.broadcast_arrays(a, b, tx, c, d, ty)
  zero, one = jnp.zeros_like(a), jnp.ones_like(a)
  return jnp.stack([jnp.stack([a, b, tx], -1), jnp.stack([c, d, ty], -1),
                    jnp.stack([zero, zero, one], -1)], -2)


def translate2d(tx: jax.Array, ty: jax.Array) -> jax.Array:
  return _affine(1.0, 0.0, tx, 0.0, 1.0, ty)


def scale2d(sx: jax.Array, sy: jax.Array) -> jax.Array:
  return _affine(sx, 0.0, 0.0, 0.0, sy, 0.0)


def rotate2d(theta: jax.Array) -> jax.Array:
  c, s = jnp.cos(theta), jnp.sin(theta)
  return _affine(c, -s, 0.0, s, c, 0.0)


def _exact_rot90(k: jax.Array) -> jax.Array:
  """rotate2d(pi / 2 * k) with exact 0/1 entries (cos and sin of multiples of
  pi / 2 are not exact in floating point)."""
  c = jnp.array([1.0, 0.0, -1.0, 0.0])[k % 4]
  s = jnp.array([0.0, 1.0, 0.0, -1.0])[k % 4]
  return _affine(c, -s, 0.0, s, c, 0.0)


def geometric_matrix(key: jax.Array, n: int, height: int, width: int, p,
                     pipeline: str = "bgc") -> jax.Array:
  """[n, 3, 3]: for each image, the map from an output pixel (x, y, 1), in
  pixels about the image centre, to the input point it samples (the inverse
  of the augmentation's transform)."""
  keys = (jax.random.fold_in(key, i) for i in itertools.count())
  uniform = lambda: jax.random.uniform(next(keys), (n,))
  normal = lambda: jax.random.normal(next(keys), (n,))
  apply = lambda prob=p: uniform() < prob
  g = _eye(n, 3)
  if "b" in pipeline:
    flip = jnp.floor(uniform() * 2) * apply()
    g = _mm(g, scale2d(1.0 - 2.0 * flip, jnp.ones((n,))))
    k = (jnp.floor(uniform() * 4) * apply()).astype(jnp.int32)
    g = _mm(g, _exact_rot90(-k))
    on = apply()
    tx = jnp.round((uniform() * 2 - 1) * XINT_MAX * width) * on
    ty = jnp.round((uniform() * 2 - 1) * XINT_MAX * height) * on
    g = _mm(g, translate2d(-tx, -ty))
  if "g" in pipeline:
    s = jnp.exp2(normal() * SCALE_STD * apply())
    g = _mm(g, scale2d(1.0 / s, 1.0 / s))
    p_rot = 1.0 - jnp.sqrt(jnp.clip(1.0 - p, 0.0, 1.0))
    theta = (uniform() * 2 - 1) * math.pi * apply(p_rot)
    g = _mm(g, rotate2d(-theta))
    s = jnp.exp2(normal() * ANISO_STD * apply())
    g = _mm(g, scale2d(1.0 / s, s))
    theta = (uniform() * 2 - 1) * math.pi * apply(p_rot)
    g = _mm(g, rotate2d(-theta))
    on = apply()
    tx, ty = normal() * XFRAC_STD * width * on, normal() * XFRAC_STD * height * on
    g = _mm(g, translate2d(-tx, -ty))
  return g


def _reflect(u: jax.Array, n: int) -> jax.Array:
  """Coordinates mirrored into [0, n - 1] (the border pixel not repeated)."""
  if n == 1:
    return jnp.zeros_like(u)
  period = 2 * (n - 1)
  u = jnp.mod(u, period)
  return jnp.where(u > n - 1, period - u, u)


def warp(x: jax.Array, g: jax.Array) -> jax.Array:
  """Resamples x [N, H, W, C] bilinearly at the points g [N, 3, 3] maps each
  output pixel to (pixels about the centre; mirrored borders)."""
  n, h, w, c = x.shape
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy,
                        jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
  grid = jnp.stack([xx.ravel(), yy.ravel(), jnp.ones(h * w)], 0)  # [3, HW]
  src = _mm(g.astype(jnp.float32), grid)  # [N, 3, HW]
  u = _reflect(src[:, 0] + cx, w)
  v = _reflect(src[:, 1] + cy, h)
  u0, v0 = jnp.floor(u), jnp.floor(v)
  fu, fv = u - u0, v - v0
  u0, v0 = u0.astype(jnp.int32), v0.astype(jnp.int32)
  u1, v1 = jnp.minimum(u0 + 1, w - 1), jnp.minimum(v0 + 1, h - 1)
  flat = x.reshape(n, h * w, c)
  at = lambda vi, ui: jnp.take_along_axis(flat, (vi * w + ui)[..., None], axis=1)
  fu, fv = fu[..., None].astype(x.dtype), fv[..., None].astype(x.dtype)
  out = ((at(v0, u0) * (1 - fu) + at(v0, u1) * fu) * (1 - fv) +
         (at(v1, u0) * (1 - fu) + at(v1, u1) * fu) * fv)
  return out.reshape(n, h, w, c)


def color_matrix(key: jax.Array, n: int, p) -> jax.Array:
  """[n, 4, 4]: each image's colour transform on homogeneous RGB."""
  keys = (jax.random.fold_in(key, i) for i in itertools.count())
  uniform = lambda: jax.random.uniform(next(keys), (n,))
  normal = lambda: jax.random.normal(next(keys), (n,))
  apply = lambda: uniform() < p
  eye = _eye(n, 4)
  v = _LUMA
  vv = jnp.outer(v, v)
  col = lambda a: a[:, None, None]
  c = eye
  b = normal() * BRIGHTNESS_STD * apply()
  c = _mm(eye.at[:, :3, 3].set(jnp.broadcast_to(b[:, None], (n, 3))), c)
  s = jnp.exp2(normal() * CONTRAST_STD * apply())
  c = _mm((eye * col(s)).at[:, 3, 3].set(1.0), c)
  flip = jnp.floor(uniform() * 2) * apply()
  c = _mm(eye - 2.0 * vv * col(flip), c)
  theta = (uniform() * 2 - 1) * math.pi * apply()
  c = _mm(_rotate3d(v[:3], theta), c)
  s = jnp.exp2(normal() * SATURATION_STD * apply())
  c = _mm(vv + (eye - vv) * col(s), c)
  return c


def _rotate3d(axis: jax.Array, theta: jax.Array) -> jax.Array:
  """[n, 4, 4]: rotation by theta about the unit `axis` (Rodrigues)."""
  x, y, z = axis
  k = jnp.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
  s, c = jnp.sin(theta)[:, None, None], jnp.cos(theta)[:, None, None]
  r = jnp.eye(3) + s * k + (1 - c) * (k @ k)
  n = theta.shape[0]
  return jnp.zeros((n, 4, 4)).at[:, :3, :3].set(r).at[:, 3, 3].set(1.0)


def apply_color(x: jax.Array, c: jax.Array) -> jax.Array:
  """x [N, H, W, 3 or 1] -> the colour matrices c [N, 4, 4] applied (on one
  channel, as on a grey RGB pixel: the mean of the RGB rows)."""
  c = c.astype(jnp.float32)
  if x.shape[-1] == 3:
    y = jnp.einsum("nij,nhwj->nhwi", c[:, :3, :3], x.astype(jnp.float32),
                   precision=jax.lax.Precision.HIGHEST)
    return (y + c[:, None, None, :3, 3]).astype(x.dtype)
  if x.shape[-1] == 1:
    row = jnp.mean(c[:, :3, :], axis=1)  # [N, 4]
    gain, offset = jnp.sum(row[:, :3], axis=1), row[:, 3]
    return (x.astype(jnp.float32) * gain[:, None, None, None]
            + offset[:, None, None, None]).astype(x.dtype)
  raise ValueError(f"ADA's colour transforms need 1 or 3 channels; got {x.shape[-1]}.")


def augment(x: jax.Array, key: jax.Array, p, pipeline: str = "bgc") -> jax.Array:
  """x [N, H, W, C] in [-1, 1] augmented: each transform of `pipeline`
  applied to each image with probability p (a scalar, may be traced)."""
  n, h, w, _ = x.shape
  k_geom, k_color = jax.random.split(key)
  if "b" in pipeline or "g" in pipeline:
    x = warp(x, geometric_matrix(k_geom, n, h, w, p, pipeline))
  if "c" in pipeline:
    x = apply_color(x, color_matrix(k_color, n, p))
  return x


def adjust(p: jax.Array, signs_mean: jax.Array, target: float, images: int,
           speed_kimg: float) -> jax.Array:
  """The ADA update: p + sign(r_t - target) * images / (speed_kimg * 1000),
  clipped to [0, 1]; `signs_mean` is r_t = E[sign D(real)] over the
  interval, `images` the real images D saw in it."""
  step = jnp.sign(signs_mean - target) * images / (speed_kimg * 1000.0)
  return jnp.clip(p + step, 0.0, 1.0)
