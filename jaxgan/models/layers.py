"""Layers shared by the models.

`ConvTranspose` is a drop-in replacement for `flax.linen.ConvTranspose` (same
parameters, same function) that avoids XLA's input-dilated convolution. XLA
computes a stride-s transposed convolution as a convolution over the input with
s-1 zeros inserted between pixels; on CPU that path and its gradients run many
times slower than a dense convolution. Here the same function is computed by
phase (sub-pixel) decomposition: every output pixel whose coordinates are
congruent to r modulo the stride only ever meets the kernel taps j with
j == pad_before - r (mod stride), so all s**d output phases are one stride-1
convolution of the undilated input with a rearranged kernel, followed by a
depth-to-space shuffle. Gradients flow through the kernel gather and a plain
convolution, so the backward pass is fast too. Stride 1 needs no dilation and
uses XLA's convolution directly. `python -m benchmarks.conv_transpose` times
both forms side by side.

`Conv` is the same for `flax.linen.Conv`: a strided convolution's forward pass
and kernel gradient are fast in XLA, but its input gradient is a transposed
convolution, so `Conv` computes that gradient with the phase form above (a
custom VJP) and keeps XLA's for the rest.

`BatchNorm`, `Dropout` and `max_pool` are drop-ins for flax's with the CPU's
other slow paths removed: large reductions (written as matrix products),
threefry random bits (replaced by a keyed integer hash for the masks) and
the pooling window's gradient (a reshape and a max instead). Each section
below says what it measured.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models import initializers

Padding = str | Sequence[tuple[int, int]]


def _transpose_pads(k: int, s: int, padding: str | tuple[int, int]) -> tuple[int, int]:
  """Padding of the dilated input, as `jax.lax.conv_transpose` applies it.

  Strings follow `lax.conv_transpose` (keras Conv2DTranspose conventions);
  explicit `(low, high)` pairs are used as given, as `flax.linen.ConvTranspose`
  passes them to `lax.conv_transpose`.
  """
  if padding == "SAME":
    pad_len = k + s - 2
    pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
    return pad_a, pad_len - pad_a
  if padding == "VALID":
    pad_len = k + s - 2 + max(k - s, 0)
    return k - 1, pad_len - (k - 1)
  lo, hi = padding
  return int(lo), int(hi)


def _phase_plan(n: int, k: int, s: int, pads: tuple[int, int]):
  """Plans one spatial dimension of the phase decomposition.

  The transposed convolution computes, for output o,
  y[o] = sum_j xd[o + j - pad_a] * w[j], where xd is the input dilated by s.
  Writing o = s*q + r, only taps j == pad_a - r (mod s) land on real input
  pixels, at input index q + d with d = (r + j - pad_a) / s.

  Returns:
    (index, crop_lo, crop_hi, phase_len, out_len): `index[t, r]` is the kernel
    tap used at window offset t by phase r (k meaning "no tap": a zero);
    the input is padded by (crop_lo, crop_hi) (negative means cropped) so a
    VALID stride-1 convolution yields `phase_len` outputs per phase; the
    depth-to-space result is cut to `out_len`.
  """
  pad_a, pad_b = pads
  out_len = (n - 1) * s + 1 + pad_a + pad_b - k + 1
  if out_len <= 0:
    raise ValueError(
        f"ConvTranspose: input length {n}, kernel {k}, stride {s} and padding "
        f"{pads} give an empty output.")
  taps = []  # (phase r, tap j, input offset d)
  for r in range(s):
    for j in range(k):
      if (r + j - pad_a) % s == 0:
        taps.append((r, j, (r + j - pad_a) // s))
  d_min = min(d for _, _, d in taps)
  d_max = max(d for _, _, d in taps)
  width = d_max - d_min + 1
  index = np.full((width, s), k, dtype=np.int32)
  for r, j, d in taps:
    index[d - d_min, r] = j
  phase_len = -(-out_len // s)  # ceil
  # Output q of every phase reads inputs q + d_min ... q + d_max.
  lo = -d_min
  hi = (phase_len - 1 + d_max) - (n - 1)
  return index, lo, hi, phase_len, out_len


def conv_transpose_phase(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                         padding: Padding, precision: Any = None) -> jax.Array:
  """`lax.conv_transpose(x, kernel, strides, padding)` (channels last, no kernel
  transpose) computed as one stride-1 convolution plus depth-to-space."""
  nd = x.ndim - 2
  ksize = kernel.shape[:nd]
  c_in, c_out = kernel.shape[nd], kernel.shape[nd + 1]
  if isinstance(padding, str):
    pad_spec = [padding] * nd
  else:
    pad_spec = [tuple(p) for p in padding]
  plans = [_phase_plan(x.shape[1 + i], ksize[i], strides[i],
                       _transpose_pads(ksize[i], strides[i], pad_spec[i]))
           for i in range(nd)]

  # Rearranged kernel: [window..., c_in, phases..., c_out], built by a static
  # gather from the kernel padded with one zero tap per spatial dimension.
  w = jnp.pad(kernel, [(0, 1)] * nd + [(0, 0), (0, 0)])
  for i, (index, *_rest) in enumerate(plans):
    # Axis i (the original tap axis of dim i) becomes two axes: window, phase.
    w = jnp.take(w, jnp.asarray(index), axis=2 * i)
  # Now w has axes [win0, ph0, win1, ph1, ..., c_in, c_out].
  win_axes = [2 * i for i in range(nd)]
  ph_axes = [2 * i + 1 for i in range(nd)]
  w = jnp.transpose(w, win_axes + [2 * nd] + ph_axes + [2 * nd + 1])
  num_phases = int(np.prod(strides))
  w = w.reshape(w.shape[:nd] + (c_in, num_phases * c_out))

  pads = [(0, 0)] + [(p[1], p[2]) for p in plans] + [(0, 0)]
  if any(lo != 0 or hi != 0 for lo, hi in pads):
    x = jax.lax.pad(x, jnp.zeros((), x.dtype), [(lo, hi, 0) for lo, hi in pads])
  spatial = "DHW"[-nd:] if nd <= 3 else None
  if spatial is None:
    raise ValueError("ConvTranspose supports 1 to 3 spatial dimensions.")
  dn = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
  y = jax.lax.conv_general_dilated(x, w, (1,) * nd, "VALID", dimension_numbers=dn,
                                   precision=precision)
  # Depth to space: [N, q0, q1, ..., (r0, r1, ..., c_out)] ->
  # [N, q0*s0 + r0, q1*s1 + r1, ..., c_out].
  batch = y.shape[0]
  phase_lens = [p[3] for p in plans]
  y = y.reshape((batch, *phase_lens, *strides, c_out))
  perm = [0]
  for i in range(nd):
    perm += [1 + i, 1 + nd + i]
  perm.append(1 + 2 * nd)
  y = jnp.transpose(y, perm)
  y = y.reshape((batch, *[q * s for q, s in zip(phase_lens, strides)], c_out))
  out_lens = [p[4] for p in plans]
  if tuple(out_lens) != tuple(y.shape[1:-1]):
    y = y[(slice(None), *[slice(0, n) for n in out_lens], slice(None))]
  return y


class _ConvBase(nn.Module):
  """The fields, checks and parameters (flax's names and shapes) that
  `ConvTranspose` and `Conv` share."""
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | None = None
  padding: Padding = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = initializers.lecun_normal()  # flax's default, drawn flat
  bias_init: Any = nn.initializers.zeros_init()

  def _operands(self, x: jax.Array):
    """(x, kernel, bias or None, strides), promoted to `dtype`."""
    name = type(self).__name__
    kernel_size = tuple(self.kernel_size)
    nd = len(kernel_size)
    if x.ndim != nd + 2:
      raise ValueError(f"{name} expects inputs [batch, {nd} spatial, channels], "
                       f"got shape {x.shape}.")
    if isinstance(self.padding, str) and self.padding not in ("SAME", "VALID"):
      raise ValueError(f"{name} padding {self.padding!r} is not supported; "
                       "use 'SAME', 'VALID' or (low, high) pairs.")
    strides = tuple(self.strides) if self.strides is not None else (1,) * nd
    kernel = self.param("kernel", self.kernel_init,
                        kernel_size + (x.shape[-1], self.features), self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return x, kernel, bias, strides


class ConvTranspose(_ConvBase):
  """Same parameters and function as `flax.linen.ConvTranspose`, fast on CPU.

  Supports `padding` 'SAME', 'VALID' or explicit (low, high) pairs, no kernel
  dilation, mask or `transpose_kernel`. Inputs are channels last with one
  leading batch axis.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel, bias, strides = self._operands(x)
    if all(st == 1 for st in strides):
      # Stride 1 has no input dilation: XLA's own path is a plain convolution
      # (and measured faster than the phase form's gather and pad).
      y = jax.lax.conv_transpose(x, kernel, strides, self.padding, precision=self.precision)
    else:
      y = conv_transpose_phase(x, kernel, strides, self.padding, self.precision)
    return y if bias is None else add_bias(y, bias)


# -- strided convolution with a fast input gradient ----------------------------


def _explicit_pads(shape, ksize, strides, padding) -> tuple[tuple[int, int], ...]:
  if isinstance(padding, str):
    return tuple(jax.lax.padtype_to_pads(shape, ksize, strides, padding))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _conv_dn(nd: int):
  spatial = "DHW"[-nd:]
  return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def _conv(x, kernel, strides, pads, precision):
  return jax.lax.conv_general_dilated(x, kernel, strides, pads, precision=precision,
                                      dimension_numbers=_conv_dn(x.ndim - 2))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_strided(x, kernel, strides, pads, precision):
  return _conv(x, kernel, strides, pads, precision)


def _conv_strided_fwd(x, kernel, strides, pads, precision):
  return _conv(x, kernel, strides, pads, precision), (x, kernel)


def _conv_strided_bwd(strides, pads, precision, residuals, dy):
  x, kernel = residuals
  nd = x.ndim - 2
  ksize = kernel.shape[:nd]
  # dx: the transposed convolution of dy with the flipped, in/out-swapped
  # kernel, padded as XLA's own VJP pads its input-dilated form.
  in_shape, out_shape = x.shape[1:-1], dy.shape[1:-1]
  t_pads = []
  for n, m, k, s, (lo, _) in zip(in_shape, out_shape, ksize, strides, pads):
    before = k - 1 - lo
    t_pads.append((before, n + k - 1 - ((m - 1) * s + 1) - before))
  flipped = jnp.swapaxes(jnp.flip(kernel, axis=tuple(range(nd))), nd, nd + 1)
  dx = conv_transpose_phase(dy, flipped, strides, t_pads, precision)
  # dkernel: XLA's own (a kernel-dilated convolution, which is fast).
  _, kernel_vjp = jax.vjp(lambda k: _conv(x, k, strides, pads, precision), kernel)
  return dx.astype(x.dtype), kernel_vjp(dy)[0]


_conv_strided.defvjp(_conv_strided_fwd, _conv_strided_bwd)


def conv_strided(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                 padding: Padding, precision: Any = None) -> jax.Array:
  """`lax.conv_general_dilated(x, kernel, strides, padding)` (channels last,
  kernel [spatial..., in, out]) whose input gradient avoids input dilation."""
  nd = x.ndim - 2
  strides = tuple(int(s) for s in strides)
  pads = _explicit_pads(x.shape[1:-1], kernel.shape[:nd], strides, padding)
  if all(s == 1 for s in strides):
    return _conv(x, kernel, strides, pads, precision)
  return _conv_strided(x, kernel, strides, pads, precision)


class Conv(_ConvBase):
  """Same parameters and function as `flax.linen.Conv`, with a fast input
  gradient for strides > 1 on CPU (see `conv_strided`).

  Supports `padding` 'SAME', 'VALID' or explicit (low, high) pairs, no input or
  kernel dilation, feature groups or mask. Inputs are channels last with one
  leading batch axis.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel, bias, strides = self._operands(x)
    y = conv_strided(x, kernel, strides, self.padding, self.precision)
    return y if bias is None else add_bias(y, bias)


# -- dropout with cheap mask bits ----------------------------------------------
#
# On CPU, jax.random's threefry costs about 10 ns per element (measured: 6
# dropout masks of the MNIST discriminator, 7.2M elements, ~100 ms of a ~650 ms
# DCGAN step). Dropout masks need no cryptographic strength, only independence
# between elements and between calls, so `hash_bits` draws two 32-bit words
# from the key with threefry and mixes them with each element's index by two
# keyed rounds of an integer hash (Wellons' "lowbias32" mixer), about 30x
# cheaper. The bits depend only on the key and the element's global index, so
# they are the same however the array is sharded.


def _mix32(x: jax.Array) -> jax.Array:
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def hash_bits(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """Uniform uint32 bits of `shape`, a keyed hash of each element's index."""
  shape = tuple(shape)
  if int(np.prod(shape)) > 2 ** 32:
    raise ValueError(f"hash_bits: {shape} has more than 2**32 elements.")
  k = jax.random.bits(key, (2,), jnp.uint32)
  index = jnp.zeros(shape, jnp.uint32)
  stride = 1
  for axis in reversed(range(len(shape))):
    index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
    stride *= shape[axis]
  return _mix32(_mix32(index ^ k[0]) ^ k[1])


class Dropout(nn.Module):
  """`flax.linen.Dropout` (same arguments and scaling) with masks from
  `hash_bits` instead of threefry: much cheaper on CPU."""
  rate: float
  deterministic: bool | None = None
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool | None = None) -> jax.Array:
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if not 0.0 <= self.rate <= 1.0:
      raise ValueError(f"Dropout rate must be in [0, 1], got {self.rate}.")
    if deterministic or self.rate == 0.0:
      return x
    if self.rate == 1.0:
      return jnp.zeros_like(x)
    keep = 1.0 - self.rate
    threshold = jnp.uint32(min(round(keep * 2.0 ** 32), 2 ** 32 - 1))
    mask = hash_bits(self.make_rng(self.rng_collection), x.shape) < threshold
    return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))


# -- batch normalisation with its reductions as matrix products ----------------
#
# XLA's CPU backend rewrites a large reduction (a sum over the batch) into a
# reduce-window followed by a reduce, which it runs slowly: summing a
# 128x14x14x64 activation over all but the channels took 5.3 ms, the same sum
# as `ones @ x` 0.8 ms (YNNPACK). A DCGAN step has about 20 such reductions
# (BatchNorm statistics and their gradients, bias gradients): 67 ms of a
# ~550 ms MNIST step in `python -m benchmarks.profile_step`. `BatchNorm` below
# computes the same function as flax's with every reduction written as a
# matrix product, its gradient included (custom VJP).


def _sum_rows(x2d: jax.Array) -> jax.Array:
  """x [N, C] -> sum over N, as a matrix product."""
  return jnp.dot(jnp.ones((1, x2d.shape[0]), x2d.dtype), x2d,
                 precision=jax.lax.Precision.HIGHEST)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _batch_norm(x, scale, bias, epsilon):
  return _batch_norm_fwd(x, scale, bias, epsilon)[0]


def _batch_norm_fwd(x, scale, bias, epsilon):
  n = x.shape[0]
  mean = _sum_rows(x) / n
  var = jnp.maximum(_sum_rows(x * x) / n - mean * mean, 0.0)
  rstd = jax.lax.rsqrt(var + epsilon)
  xhat = (x - mean) * rstd
  return (xhat * scale + bias, mean, var), (xhat, rstd, scale, x, mean)


def _batch_norm_bwd(epsilon, residuals, cotangents):
  del epsilon
  xhat, rstd, scale, x, mean = residuals
  dy, dmean, dvar = cotangents
  n = x.shape[0]
  dbias = _sum_rows(dy)
  dscale = _sum_rows(dy * xhat)
  dx = (scale * rstd) * (dy - (dbias + xhat * dscale) / n)
  dx = dx + dmean / n + dvar * (2.0 / n) * (x - mean)
  return dx, dscale, dbias


_batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
  """y + bias over the last axis; the bias gradient is a matrix product."""
  return y + bias


def _add_bias_fwd(y, bias):
  return y + bias, None


def _add_bias_bwd(_, dy):
  return dy, _sum_rows(dy.reshape(-1, dy.shape[-1]))


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


class BatchNorm(nn.Module):
  """`flax.linen.BatchNorm` over the last axis (same variables, statistics,
  running averages and function), reductions as matrix products.

  Statistics and normalisation are computed in float32 (flax's
  `force_float32_reductions`); the output has `dtype` (default: the
  promoted input/parameter dtype). Always normalises the last axis; no
  `axis_name` (under `jax.jit` the sharded batch needs none), mask or
  `use_fast_variance=False`.
  """
  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Any = nn.initializers.zeros_init()
  scale_init: Any = nn.initializers.ones_init()

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    features = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32),
                            (features,))
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32),
                           (features,))
    scale = (self.param("scale", self.scale_init, (features,), self.param_dtype)
             if self.use_scale else jnp.ones((features,), jnp.float32))
    bias = (self.param("bias", self.bias_init, (features,), self.param_dtype)
            if self.use_bias else jnp.zeros((features,), jnp.float32))
    out_dtype = self.dtype or jnp.result_type(x, scale, bias)
    x32 = x.astype(jnp.float32)
    scale, bias = scale.astype(jnp.float32), bias.astype(jnp.float32)
    if use_running_average:
      y = (x32 - ra_mean.value) * jax.lax.rsqrt(ra_var.value + self.epsilon) * scale + bias
      return y.astype(out_dtype)
    y, mean, var = _batch_norm(x32.reshape(-1, features), scale, bias, self.epsilon)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y.reshape(x.shape).astype(out_dtype)


# -- max pooling with a cheap gradient -------------------------------------------
# XLA's CPU backend runs the gradient of a pooling window (select-and-scatter)
# slowly: for 2x2 pooling of a 32x28x28x32 batch, forward + backward takes
# ~19 ms as `flax.linen.max_pool` and ~4.4 ms as a reshape and a max, which
# made the pooling gradients ~40% of the small CNN's training step.


def max_pool(x: jax.Array, window: Sequence[int]) -> jax.Array:
  """`flax.linen.max_pool(x, window, strides=window)` (non-overlapping windows,
  "VALID": trailing rows and columns that fill no window are dropped) as a
  reshape and a max. Same values; the same gradient except where a window
  holds several equal maxima, which share it instead of the first taking it
  all (after a ReLU such ties are zeros, whose gradient the ReLU stops)."""
  window = tuple(window)
  spatial = x.shape[1:-1]
  if len(window) != len(spatial):
    raise ValueError(f"max_pool window {window} does not match input shape {x.shape}.")
  counts = [n // w for n, w in zip(spatial, window)]
  x = x[(slice(None), *(slice(0, c * w) for c, w in zip(counts, window)))]
  split = [d for c, w in zip(counts, window) for d in (c, w)]
  x = x.reshape(x.shape[0], *split, x.shape[-1])
  return jnp.max(x, axis=tuple(range(2, 2 * len(window) + 1, 2)))
