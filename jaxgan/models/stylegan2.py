"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality
of StyleGAN"), config F scaled to small images, pure Flax Linen.

Generator = mapping network + synthesis network:
- Mapping: z normalised to unit second moment (and, class-conditional, a
  linear embedding of the one-hot label normalised the same way and
  concatenated), then `mapping_layers` fully connected layers of `w_dim`
  (= latent_dim) units with leaky ReLU, learning-rate multiplier 0.01. In
  training it keeps the running mean of w (`w_avg`, decay 0.995; the centre
  of the truncation trick) and, with probability `style_mixing`, takes the
  ws after a random layer from a second z (style mixing regularisation).
- Synthesis: a learned constant 4x4 input; per resolution 4, 8, ..., size
  two modulated 3x3 convolutions (the first of each block after 4x4
  up-samples by 2) each followed by per-pixel noise (a learned strength,
  initialised to 0), a bias and leaky ReLU; "skip" outputs: each block's
  modulated 1x1 ToRGB (no demodulation) added to the up-sampled image of the
  blocks below. Each layer takes its own w (num_ws = 2 log2(size) - 2 of
  them: one per convolution and the last ToRGB).
- Modulated convolution: the style s = A(w) (a linear layer, bias
  initialised to 1) scales the kernel's input channels; demodulation divides
  each output channel by sqrt(sum over taps and inputs of (w s)^2 + 1e-8),
  so unit-variance inputs give unit-variance outputs. Computed in the
  "non-fused" form (input x s, one shared convolution, output x d), which
  is the same function as the per-sample convolution with the modulated
  kernel (tested) and runs as one ordinary convolution.

Discriminator ("resnet"): FromRGB (1x1) at full resolution, then per
resolution a residual block (3x3 conv, 3x3 conv and 2x down-sampling;
shortcut: down-sampling and a 1x1 conv without bias; sum scaled by
sqrt(1/2)) down to 4x4; the epilogue: minibatch standard deviation (groups
of up to 4 images, one feature), a 3x3 conv, a dense layer and the logit;
class-conditional by projection (`conditional_output`).

Every weight is used through equalized learning rate: stored N(0, 1) /
lr_multiplier and multiplied at run time by lr_multiplier / sqrt(fan_in)
(biases by lr_multiplier). Leaky ReLU has slope 0.2 and gain sqrt(2).
Up- and down-sampling use the papers' [1, 3, 3, 1] filter (up: the
bilinear x2 interpolation it amounts to; down: the filter with stride 2),
edges replicated.

Widths: `ngf` / `ndf` channels at 32x32 and below, halved per doubling of
resolution above 32 (the papers' channel_base / resolution, capped at
channel_max, with channel_max = ngf). The ADA paper's CIFAR-10
configuration is ngf = ndf = 512, two mapping layers, no style mixing.
"""

from __future__ import annotations

import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.conditioning import DiscriminatorFields, conditional_output, one_hot
from jaxgan.models.layers import conv_strided

_SQRT2 = math.sqrt(2.0)
W_AVG_DECAY = 0.995
MAPPING_LR = 0.01


def lrelu(x: jax.Array) -> jax.Array:
  """Leaky ReLU (slope 0.2) with gain sqrt(2), as the papers' `lrelu`."""
  return jax.nn.leaky_relu(x, 0.2) * _SQRT2


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)


def _resolutions(image_size: int) -> list[int]:
  if image_size < 8 or image_size & (image_size - 1):
    raise ValueError(f"StyleGAN2 needs a power-of-two image_size >= 8 (32 for CIFAR-10, 64); "
                     f"got {image_size}. Use --config.image_size=32 (images are resized).")
  return [2 ** k for k in range(2, int(math.log2(image_size)) + 1)]


def channels_at(resolution: int, channel_max: int) -> int:
  """The papers' min(channel_base / resolution, channel_max), with
  channel_base = 32 * channel_max: channel_max up to 32x32, halved above."""
  return max(1, min(channel_max * 32 // resolution, channel_max))


def num_ws(image_size: int) -> int:
  """How many ws the synthesis network takes: one per convolution (1 at 4x4,
  2 per block above) and one for the last ToRGB = 2 log2(size) - 2."""
  return 2 * len(_resolutions(image_size))


_FILTER = (0.25, 0.75)  # [1, 3, 3, 1] / 4 per phase: bilinear x2


def upsample2(x: jax.Array) -> jax.Array:
  """x2 up-sampling of [B, H, W, C] with the [1, 3, 3, 1] filter (bilinear
  interpolation at the new pixel centres), edges replicated."""
  for axis in (1, 2):
    n = x.shape[axis]
    prev = jnp.concatenate([jax.lax.slice_in_dim(x, 0, 1, axis=axis),
                            jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
    nxt = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis),
                           jax.lax.slice_in_dim(x, n - 1, n, axis=axis)], axis=axis)
    even = _FILTER[0] * prev + _FILTER[1] * x
    odd = _FILTER[1] * x + _FILTER[0] * nxt
    x = jnp.stack([even, odd], axis=axis + 1)
    shape = list(x.shape)
    x = x.reshape(shape[:axis] + [2 * n] + shape[axis + 2:])
  return x


def downsample2(x: jax.Array) -> jax.Array:
  """/2 down-sampling of [B, H, W, C]: the [1, 3, 3, 1] / 8 filter at stride
  2 (each output centred on its 2x2 block), edges replicated."""
  for axis in (1, 2):
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    x = jnp.pad(x, pad, mode="edge")
    taps = [jax.lax.slice_in_dim(x, i, i + n - 1, stride=2, axis=axis) for i in range(4)]
    x = (taps[0] + 3.0 * taps[1] + 3.0 * taps[2] + taps[3]) / 8.0
  return x


class EqualDense(nn.Module):
  """A dense layer with equalized learning rate: kernel stored N(0, 1/lr^2),
  used x lr / sqrt(fan_in); bias stored bias_init / lr, used x lr."""
  features: int
  lr_multiplier: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True
  activation: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    lr = self.lr_multiplier
    kernel = self.param("kernel", nn.initializers.normal(1.0 / lr), (fan_in, self.features))
    y = x.astype(self.dtype) @ (kernel * (lr / math.sqrt(fan_in))).astype(self.dtype)
    if self.use_bias:
      bias = self.param("bias", nn.initializers.constant(self.bias_init / lr), (self.features,))
      y = y + (bias * lr).astype(y.dtype)
    return lrelu(y) if self.activation else y


class EqualConv(nn.Module):
  """A convolution with equalized learning rate (stride 1, 'SAME'), then
  optional 2x down-sampling, bias and leaky ReLU."""
  features: int
  kernel_size: int = 3
  use_bias: bool = True
  activation: bool = True
  down: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, cin = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, cin, self.features))
    w = (kernel / math.sqrt(k * k * cin)).astype(self.dtype)
    y = conv_strided(x.astype(self.dtype), w, (1, 1), "SAME")
    if self.down:
      y = downsample2(y)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,)).astype(y.dtype)
    return lrelu(y) if self.activation else y


def modulated_conv(x: jax.Array, kernel: jax.Array, styles: jax.Array,
                   demodulate: bool = True) -> jax.Array:
  """The modulated convolution of x [B, H, W, I] with kernel [k, k, I, O]
  (already scaled) and styles [B, I], 'SAME' padding: per sample b, the
  kernel kernel[..., i, o] * styles[b, i], divided (`demodulate`) by
  sqrt(sum_{taps, i} (kernel * styles[b])^2 + 1e-8) per output o. Computed
  as one shared convolution of x * styles, scaled per output channel."""
  y = conv_strided(x * styles[:, None, None, :].astype(x.dtype), kernel, (1, 1), "SAME")
  if demodulate:
    energy = jnp.sum(jnp.square(kernel.astype(jnp.float32)), axis=(0, 1))  # [I, O]
    d = jax.lax.rsqrt(jnp.square(styles.astype(jnp.float32)) @ energy + 1e-8)  # [B, O]
    y = y * d[:, None, None, :].astype(y.dtype)
  return y


class ModulatedConv(nn.Module):
  """A modulated convolution layer: style A(w) (bias init 1), optional x2
  up-sampling before the convolution, demodulation."""
  features: int
  kernel_size: int = 3
  demodulate: bool = True
  up: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    k, cin = self.kernel_size, x.shape[-1]
    styles = EqualDense(cin, bias_init=1.0, name="affine")(w)
    kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, cin, self.features))
    kernel = (kernel / math.sqrt(k * k * cin)).astype(self.dtype)
    if self.up:
      x = upsample2(x)
    return modulated_conv(x.astype(self.dtype), kernel, styles, self.demodulate)


NOISE_MODES = ("random", "const", "none")
_NOISE_KEY_SEED = 1_000_003  # the base key that latent_keys folds each latent's bits into


def latent_keys(z: jax.Array) -> jax.Array:
  """One PRNG key per row of z [B, D]: the bits of the row's D numbers folded
  in turn into a fixed key, so a sample's key depends on its latent alone,
  not on its batch, its place in the batch or the devices (what lets noise
  drawn from it keep sampling a function of z)."""
  bits = jax.lax.bitcast_convert_type(z.astype(jnp.float32), jnp.uint32)
  base = jax.random.PRNGKey(_NOISE_KEY_SEED)

  def fold(row):
    return jax.lax.scan(lambda k, b: (jax.random.fold_in(k, b), None), base, row)[0]

  return jax.vmap(fold)(bits)


class SynthesisLayer(nn.Module):
  """Modulated conv, per-pixel noise (learned strength), bias, leaky ReLU.
  Training draws fresh noise from the "noise" rng. Otherwise `noise_mode`
  (StyleGAN2-ADA's): "random", noise per sample from that sample's key in
  `noise_keys` ([B] keys, e.g. `latent_keys(z)`, folded with the layer's
  index), what the papers' metrics use; "const", one fixed noise image drawn
  at initialisation (kept in `batch_stats`) for every sample; "none", no
  noise."""
  features: int
  up: bool = False
  noise_mode: str = "random"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array, train: bool,
               noise_keys: jax.Array | None = None) -> jax.Array:
    y = ModulatedConv(self.features, 3, up=self.up, dtype=self.dtype)(x, w)
    b, h, wd, _ = y.shape
    const = self.variable("batch_stats", "noise_const",
                          lambda: jax.random.normal(self.make_rng("params"), (h, wd, 1)))
    if train:
      noise = jax.random.normal(self.make_rng("noise"), (b, h, wd, 1))
    elif self.noise_mode == "random":
      if noise_keys is None:
        raise ValueError("noise_mode 'random' outside training needs one noise key per "
                         "sample (noise_keys, e.g. latent_keys(z)); or use noise_mode 'const'.")
      noise = jax.vmap(lambda k: jax.random.normal(k, (h, wd, 1)))(noise_keys)
    elif self.noise_mode == "const":
      noise = jnp.broadcast_to(const.value[None], (b, h, wd, 1))
    else:
      noise = jnp.zeros((b, h, wd, 1))
    strength = self.param("noise_strength", nn.initializers.zeros_init(), ())
    y = y + (noise * strength).astype(y.dtype)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return lrelu(y + bias.astype(y.dtype))


class ToRGB(nn.Module):
  channels: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    y = ModulatedConv(self.channels, 1, demodulate=False, dtype=self.dtype)(x, w)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.channels,))
    return y.astype(jnp.float32) + bias


class MappingNetwork(nn.Module):
  """z [B, z_dim] (and labels) -> w [B, z_dim] (w_dim = z_dim); `w_avg` in
  batch_stats."""
  num_layers: int = 8
  num_classes: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None, train: bool,
               update_avg: bool = True) -> jax.Array:
    w_dim = z.shape[-1]
    x = normalize_2nd_moment(z.astype(jnp.float32))
    if self.num_classes:
      y = EqualDense(w_dim, name="embed")(one_hot(labels, self.num_classes))
      x = jnp.concatenate([x, normalize_2nd_moment(y)], axis=-1)
    for i in range(self.num_layers):
      x = EqualDense(w_dim, lr_multiplier=MAPPING_LR, activation=True, dtype=self.dtype,
                     name=f"fc{i}")(x)
    w = x.astype(jnp.float32)
    w_avg = self.variable("batch_stats", "w_avg", jnp.zeros, (w_dim,), jnp.float32)
    if train and update_avg and not self.is_initializing():
      mean = jnp.mean(jax.lax.stop_gradient(w), axis=0)
      w_avg.value = mean + W_AVG_DECAY * (w_avg.value - mean)
    return w


class SynthesisNetwork(nn.Module):
  """ws [B, num_ws, w_dim] -> images [B, size, size, channels] in about [-1, 1]
  (`noise_mode` and `noise_keys`: `SynthesisLayer`'s; layer i draws from
  fold_in(key, i))."""
  image_size: int
  channels: int
  channel_max: int
  noise_mode: str = "random"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, ws: jax.Array, train: bool,
               noise_keys: jax.Array | None = None) -> jax.Array:
    # The papers' indexing: the convolutions take ws 0, 1, 2, ... in order,
    # and each block's ToRGB the w after its last convolution (the next
    # block's first): 4x4 conv1 w0, ToRGB w1; 8x8 conv0 w1, conv1 w2, ToRGB
    # w3; ...; the last ToRGB the last w.
    b = ws.shape[0]
    img = x = None
    layer_index = itertools.count()

    def keys():
      if noise_keys is None:
        return None
      i = next(layer_index)
      return jax.vmap(lambda k: jax.random.fold_in(k, i))(noise_keys)

    layer = lambda name, c, up=False: SynthesisLayer(c, up=up, noise_mode=self.noise_mode,
                                                     dtype=self.dtype, name=name)
    for res in _resolutions(self.image_size):
      c = channels_at(res, self.channel_max)
      if res == 4:
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, c))
        x = jnp.broadcast_to(const[None], (b, 4, 4, c)).astype(self.dtype)
        x = layer("b4_conv1", c)(x, ws[:, 0], train, keys())
        w_idx = 1
      else:
        x = layer(f"b{res}_conv0", c, up=True)(x, ws[:, w_idx], train, keys())
        x = layer(f"b{res}_conv1", c)(x, ws[:, w_idx + 1], train, keys())
        w_idx += 2
      y = ToRGB(self.channels, dtype=self.dtype, name=f"b{res}_torgb")(x, ws[:, w_idx])
      img = y if img is None else upsample2(img) + y
    return img


class StyleGAN2Generator(nn.Module):
  """z [B, latent] (and labels [B] when num_classes > 0) -> images: in
  training the synthesis output as it is (about [-1, 1]), otherwise clipped
  to [-1, 1], as the papers' samples are when converted to pixels.
  `truncation_psi` < 1 pulls every w towards `w_avg`
  (the truncation trick; 1 = none). `noise_mode` outside training (see
  `SynthesisLayer`): "random" (default; StyleGAN2-ADA's metrics) draws each
  sample's noise inputs from a key made of its z (`latent_keys`), so a
  sample stays a function of its z (and labels) while samples get
  independent noise; "const" gives every sample the same fixed noise images
  (StyleGAN2-ADA's generate.py default); "none" no noise."""
  image_size: int = 32
  channels: int = 3
  channel_max: int = 512
  mapping_layers: int = 8
  style_mixing: float = 0.9
  num_classes: int = 0
  truncation_psi: float = 1.0
  noise_mode: str = "random"
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.mapping = MappingNetwork(self.mapping_layers, self.num_classes,
                                  dtype=self.dtype)
    self.synthesis = SynthesisNetwork(self.image_size, self.channels, self.channel_max,
                                      noise_mode=self.noise_mode, dtype=self.dtype)

  def ws(self, z: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
    """The per-layer ws [B, num_ws, w_dim]: mapped, style-mixed in training
    (with probability `style_mixing`, the layers from a random cut-off on
    take the w of a second z), truncated towards w_avg when psi < 1."""
    if self.num_classes and labels is None:
      raise ValueError("A conditional generator needs labels.")
    n = num_ws(self.image_size)
    w = self.mapping(z, labels, train)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], n, w.shape[1]))
    if train and self.style_mixing > 0 and not self.is_initializing():
      k_z, k_cut, k_use = jax.random.split(self.make_rng("noise"), 3)
      w2 = self.mapping(jax.random.normal(k_z, z.shape), labels, train, update_avg=False)
      cut = jax.random.randint(k_cut, (z.shape[0], 1), 1, n)
      use = jax.random.uniform(k_use, (z.shape[0], 1)) < self.style_mixing
      cut = jnp.where(use, cut, n)
      ws = jnp.where((jnp.arange(n)[None] >= cut)[..., None], w2[:, None], ws)
    if self.truncation_psi != 1.0:
      w_avg = self.mapping.variables["batch_stats"]["w_avg"]
      ws = w_avg + self.truncation_psi * (ws - w_avg)
    return ws

  def synthesize(self, ws: jax.Array, train: bool,
                 noise_keys: jax.Array | None = None) -> jax.Array:
    """Images (unclipped) from ws; `noise_keys` [B] for noise_mode "random"
    outside training."""
    return self.synthesis(ws, train, noise_keys)

  def __call__(self, z: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
    keys = latent_keys(z) if not train and self.noise_mode == "random" else None
    x = self.synthesize(self.ws(z, train, labels), train, keys)
    # Training shows D the raw output (clipping would stop G's gradient at
    # every saturated pixel); samples are clipped to the image range.
    return x if train else jnp.clip(x, -1.0, 1.0)


def path_length_penalty(generator: StyleGAN2Generator, variables: dict, z: jax.Array,
                        labels: jax.Array | None, pl_mean: jax.Array, key: jax.Array):
  """StyleGAN2's path length regulariser on a batch of latents: with ws from
  the mapping network (and style mixing) and y ~ N(0, 1) / sqrt(H W) of the
  images' shape, J^T y = d(sum(G(ws) y)) / d ws, lengths a_i = sqrt(mean over
  ws of |J^T y|^2), the running mean updated as pl_mean + 0.01 (mean a -
  pl_mean), and the penalty mean((a - new pl_mean)^2). Returns (penalty,
  (new pl_mean, mean length)). Gradients reach the synthesis network's
  parameters through J^T y (and the mapping's through ws)."""
  k_noise, k_y = jax.random.split(key)
  rngs = {"noise": k_noise}
  ws = generator.apply(variables, z, True, labels, method=StyleGAN2Generator.ws, rngs=rngs,
                       mutable=["batch_stats"])[0]
  size = generator.image_size
  y = jax.random.normal(k_y, (z.shape[0], size, size, generator.channels)) / size

  def projected(w):
    images = generator.apply(variables, w, True, method=StyleGAN2Generator.synthesize,
                             rngs=rngs, mutable=["batch_stats"])[0]
    return jnp.sum(images.astype(jnp.float32) * y)

  grads = jax.grad(projected)(ws)
  lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))
  new_mean = pl_mean + 0.01 * (jnp.mean(jax.lax.stop_gradient(lengths)) - pl_mean)
  return jnp.mean(jnp.square(lengths - new_mean)), (new_mean, jnp.mean(lengths))


def minibatch_std(x: jax.Array, group_size: int = 4) -> jax.Array:
  """Appends one feature map: the standard deviation of each feature over a
  group of up to `group_size` images (sample i is in group i mod (B / G)),
  averaged over features and pixels, broadcast over the group."""
  b, h, w, c = x.shape
  g = min(group_size, b)
  if b % g:
    raise ValueError(f"minibatch std needs the batch ({b}) divisible by its group size {g}.")
  y = x.astype(jnp.float32).reshape(g, b // g, h, w, c)
  y = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)  # [B/G, H, W, C]
  y = jnp.mean(y, axis=(1, 2, 3))  # [B/G]
  y = jnp.tile(y, (g,))[:, None, None, None]  # sample i -> group i mod (B/G)
  return jnp.concatenate([x, jnp.broadcast_to(y, (b, h, w, 1)).astype(x.dtype)], axis=-1)


class DBlock(nn.Module):
  features: int
  out_features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    skip = EqualConv(self.out_features, 1, use_bias=False, activation=False,
                     dtype=self.dtype, name="skip")(downsample2(x))
    x = EqualConv(self.features, 3, dtype=self.dtype, name="conv0")(x)
    x = EqualConv(self.out_features, 3, down=True, dtype=self.dtype, name="conv1")(x)
    return (x + skip) * math.sqrt(0.5)


class StyleGAN2Discriminator(DiscriminatorFields):
  """images [B, size, size, C] -> logits [B] (conditional: projection)."""
  image_size: int = 32
  channel_max: int = 512
  mbstd_group: int = 4
  normalization = "minibatch_std"  # mixes images only through the mbstd feature

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, labels: jax.Array | None = None):
    resolutions = _resolutions(self.image_size)[::-1]  # size, ..., 4
    ch = lambda r: channels_at(r, self.channel_max)
    x = EqualConv(ch(resolutions[0]), 1, dtype=self.dtype, name="fromrgb")(x)
    for res in resolutions[:-1]:
      x = DBlock(ch(res), ch(res // 2), dtype=self.dtype, name=f"b{res}")(x)
    c = ch(4)
    x = minibatch_std(x, self.mbstd_group)
    x = EqualConv(c, 3, dtype=self.dtype, name="b4_conv")(x)
    h = EqualDense(c, activation=True, dtype=self.dtype, name="b4_fc")(
        x.reshape(x.shape[0], -1))
    logit = EqualDense(1, dtype=self.dtype, name="b4_out")(h)[:, 0].astype(jnp.float32)
    return conditional_output(logit, h, labels, num_classes=self.num_classes,
                              conditional=self.conditional, spectral_norm=False,
                              train=train, dtype=self.dtype)


def make_stylegan2(image_size: int, channels: int, *, ngf: int = 512, ndf: int = 512,
                   d_normalization: str | None = None, spectral_norm: bool = False,
                   num_classes: int = 0, conditional: str = "", dtype=jnp.float32,
                   mapping_layers: int = 8, style_mixing: float = 0.9,
                   mbstd_group: int = 4, noise_mode: str = "random"
                   ) -> tuple[nn.Module, nn.Module]:
  """The StyleGAN2 (generator, discriminator) pair: `ngf` / `ndf` are the
  widths (channel_max) of G and D; w has z's size (config.latent_dim);
  `mapping_layers` and `style_mixing` (probability) the mapping network's;
  `mbstd_group` D's minibatch standard deviation group (config F's 4, the
  ADA paper's CIFAR-10 configuration 32; a batch smaller than it is one
  group, and must otherwise be a multiple of it); `noise_mode` how samples
  outside training get their noise inputs ("random": independent per sample,
  a function of z; "const": G's one fixed noise image; "none").
  No spectral normalisation or D normalisation layers (the papers use
  equalized learning rate and R1)."""
  if d_normalization not in (None, "none"):
    raise ValueError(f"config.d_normalization={d_normalization!r}: the StyleGAN2 "
                     "discriminator has no normalisation layers; leave it unset.")
  if spectral_norm:
    raise ValueError("StyleGAN2 uses equalized learning rate, not spectral normalisation: "
                     "set --config.spectral_norm=False.")
  if conditional == "acgan":
    raise ValueError("The StyleGAN2 discriminator is conditioned by projection: use "
                     "--config.conditional=projection (or '' for unconditional).")
  if not 0.0 <= style_mixing <= 1.0:
    raise ValueError(f"style_mixing is a probability in [0, 1]; got {style_mixing}.")
  if not (isinstance(mapping_layers, int) and mapping_layers >= 1):
    raise ValueError(f"mapping_layers must be an integer >= 1; got {mapping_layers!r}.")
  if not (isinstance(mbstd_group, int) and mbstd_group >= 1):
    raise ValueError(f"mbstd_group must be an integer >= 1; got {mbstd_group!r}.")
  if noise_mode not in NOISE_MODES:
    raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}.")
  _resolutions(image_size)
  return (StyleGAN2Generator(image_size=image_size, channels=channels, channel_max=ngf,
                             mapping_layers=mapping_layers, style_mixing=style_mixing,
                             noise_mode=noise_mode,
                             num_classes=num_classes if conditional else 0, dtype=dtype),
          StyleGAN2Discriminator(image_size=image_size, channel_max=ndf, mbstd_group=mbstd_group,
                                 num_classes=num_classes, conditional=conditional, dtype=dtype))
