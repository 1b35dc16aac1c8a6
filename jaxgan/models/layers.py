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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


class ConvTranspose(nn.Module):
  """Same parameters and function as `flax.linen.ConvTranspose`, fast on CPU.

  Supports `padding` 'SAME', 'VALID' or explicit (low, high) pairs, no kernel
  dilation, mask or `transpose_kernel` (they raise). Inputs are channels last
  with one leading batch axis.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | None = None
  padding: Padding = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel_size = tuple(self.kernel_size)
    nd = len(kernel_size)
    if x.ndim != nd + 2:
      raise ValueError(f"ConvTranspose expects inputs [batch, {nd} spatial, "
                       f"channels], got shape {x.shape}.")
    strides = tuple(self.strides) if self.strides is not None else (1,) * nd
    padding = self.padding
    if isinstance(padding, str):
      if padding not in ("SAME", "VALID"):
        raise ValueError(f"ConvTranspose padding {padding!r} is not supported; "
                         "use 'SAME', 'VALID' or (low, high) pairs.")
    kernel = self.param("kernel", self.kernel_init,
                        kernel_size + (x.shape[-1], self.features), self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if all(st == 1 for st in strides):
      # Stride 1 has no input dilation: XLA's own path is a plain convolution
      # (and measured faster than the phase form's gather and pad).
      y = jax.lax.conv_transpose(x, kernel, strides, padding, precision=self.precision)
    else:
      y = conv_transpose_phase(x, kernel, strides, padding, self.precision)
    if bias is not None:
      y = y + bias
    return y
