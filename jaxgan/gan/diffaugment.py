"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to
every image D sees, real and fake alike, so that D cannot memorise a small
training set and G still gets gradients through the augmentation.

`policy` is a comma-separated list of `color`, `translation`, `cutout`
(`config.diffaugment`, "" for none), applied in that order, each image with
its own random parameters drawn from `key`: the same key gives the same
augmentation. The transforms follow the authors' reference code on images in
[-1, 1]:
- color: brightness + U(-0.5, 0.5); saturation x (U(0, 1) * 2) around the
  pixel's channel mean (a no-op on grey images); contrast x (U(0, 1) + 0.5)
  around the image mean;
- translation: an integer shift in [-s, s] pixels per axis,
  s = round(size / 8), zero-filled;
- cutout: a square of side round(size / 2) set to zero, its centre uniform
  over the image (clipped at the border).
Shifts are matrix products with one-hot shift matrices and cutout a 0/1
mask, so gradients are exact and no gather is needed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | None) -> tuple[str, ...]:
  names = tuple(p.strip() for p in (policy or "").split(",") if p.strip())
  unknown = [p for p in names if p not in POLICIES]
  if unknown:
    raise ValueError(f"Unknown config.diffaugment {', '.join(unknown)}; use a comma-separated "
                     f"list of {', '.join(POLICIES)} (or '' for none).")
  return names


def _uniform(key, n):
  return jax.random.uniform(key, (n,), jnp.float32)


def color(x: jax.Array, key: jax.Array) -> jax.Array:
  n = x.shape[0]
  kb, ks, kc = jax.random.split(key, 3)
  col = lambda v: v.reshape(n, 1, 1, 1)
  x = x + col(_uniform(kb, n) - 0.5)
  mean = jnp.mean(x, axis=-1, keepdims=True)
  x = (x - mean) * col(_uniform(ks, n) * 2.0) + mean
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * col(_uniform(kc, n) + 0.5) + mean


def _shift_matrices(shift: jax.Array, size: int) -> jax.Array:
  """[n] integer shifts -> [n, size, size] with M[b, i, j] = 1 iff j = i - shift[b]."""
  i = jnp.arange(size)
  return (i[None, None, :] == (i[None, :, None] - shift[:, None, None])).astype(jnp.float32)


def translation(x: jax.Array, key: jax.Array, ratio: float = 0.125) -> jax.Array:
  n, h, w, _ = x.shape
  ky, kx = jax.random.split(key)
  sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
  dy = jax.random.randint(ky, (n,), -sy, sy + 1)
  dx = jax.random.randint(kx, (n,), -sx, sx + 1)
  rows, cols = _shift_matrices(dy, h), _shift_matrices(dx, w)
  x32 = x.astype(jnp.float32)
  out = jnp.einsum("bij,bjwc->biwc", rows, x32, precision=jax.lax.Precision.HIGHEST)
  out = jnp.einsum("bkw,biwc->bikc", cols, out, precision=jax.lax.Precision.HIGHEST)
  return out.astype(x.dtype)


def cutout_mask(key: jax.Array, n: int, h: int, w: int, ratio: float = 0.5) -> jax.Array:
  """[n, h, w, 1]: 0 inside each image's cut-out square, 1 elsewhere."""
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  ky, kx = jax.random.split(key)
  oy = jax.random.randint(ky, (n,), 0, h + (1 - ch % 2))
  ox = jax.random.randint(kx, (n,), 0, w + (1 - cw % 2))
  r, c = jnp.arange(h), jnp.arange(w)
  in_rows = (r[None] >= (oy - ch // 2)[:, None]) & (r[None] < (oy - ch // 2 + ch)[:, None])
  in_cols = (c[None] >= (ox - cw // 2)[:, None]) & (c[None] < (ox - cw // 2 + cw)[:, None])
  cut = in_rows[:, :, None] & in_cols[:, None, :]
  return (~cut).astype(jnp.float32)[..., None]


def cutout(x: jax.Array, key: jax.Array, ratio: float = 0.5) -> jax.Array:
  n, h, w, _ = x.shape
  return x * cutout_mask(key, n, h, w, ratio).astype(x.dtype)


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def augment(x: jax.Array, key: jax.Array, policy: tuple[str, ...]) -> jax.Array:
  """x [N, H, W, C] -> x augmented by each transform of `policy` in order."""
  for i, name in enumerate(policy):
    x = _TRANSFORMS[name](x, jax.random.fold_in(key, i))
  return x
