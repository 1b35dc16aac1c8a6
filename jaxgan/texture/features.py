"""Feature networks for texture work: images [N, H, W, 3] in [0, 1] ->
{layer name: activations [N, h, w, C]}.

`RandomFeatures` needs no weights: one convolutional layer of random filters
at several scales followed by a ReLU (Ustyuzhaninov et al. 2017 showed that
such a single random multi-scale layer already synthesises natural textures
with Gatys et al.'s method). Each scale is a layer named `scale_<k>` (k x k
filters); filters are drawn from a seeded N(0, 1), made zero-mean (so they
respond to structure, not brightness) and unit-norm. Convolutions are VALID,
so no border padding enters the statistics.

`ClassifierFeatures` uses the convolutions of a classifier trained by
`experiments.classifier` (layers `Conv_0`, `Conv_1`, ... after their ReLU).
Its dense layers fix the input size, so an image is cut into overlapping
tiles of the classifier's input size (stride half a tile) and each layer's
activations of all tiles are its statistics.

`VGGFeatures` uses VGG16 / VGG19's convolutions with ImageNet weights from
a local file (`jaxgan.models.vgg`), as Gatys et al. did: default texture
layers conv1_1, conv2_1, ..., conv5_1, content layer conv4_2.

Each network has `layers` (all), `default_layers` (what texture and style
losses use unless told) and `content_layer`.

`make_features(spec)`: "random[:SEED]", "vgg16[:WEIGHTS]" or "vgg19[:WEIGHTS]";
`jaxgan.runs.texture_features(spec)` also opens "classifier:RUN_DIR".
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models import vgg


class RandomFeatures:
  """One layer of random multi-scale filters + ReLU."""

  def __init__(self, sizes: Sequence[int] = (3, 5, 7, 11, 15, 23), channels: int = 64,
               seed: int = 0):
    rng = np.random.default_rng(seed)
    self.sizes = tuple(int(k) for k in sizes)
    self.layers = tuple(f"scale_{k}" for k in self.sizes)
    self.default_layers, self.content_layer = self.layers, self.layers[0]
    self.min_size = max(self.sizes)
    self.spec = f"random:{seed}"
    self.kernels = []
    for k in self.sizes:
      w = rng.standard_normal((k, k, 3, channels)).astype(np.float32)
      w -= w.mean(axis=(0, 1, 2), keepdims=True)
      w /= np.linalg.norm(w.reshape(-1, channels), axis=0)
      self.kernels.append(jnp.asarray(w))

  def __call__(self, x: jax.Array) -> dict:
    if x.shape[1] < self.min_size or x.shape[2] < self.min_size:
      raise ValueError(f"Images of {x.shape[1]}x{x.shape[2]} are smaller than the largest "
                       f"random filter ({self.min_size}); use --size >= {self.min_size}.")
    x = x.astype(jnp.float32) - 0.5
    out = {}
    for name, w in zip(self.layers, self.kernels):
      y = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
      out[name] = jax.nn.relu(y)
    return out


class ClassifierFeatures:
  """The ReLU'd convolution outputs of an `experiments.classifier` run (a
  restored `jaxgan.runs.Run`; `jaxgan.runs.texture_features("classifier:DIR")`
  opens one), over overlapping tiles of the classifier's input size."""

  def __init__(self, run, spec: str):
    task, state = run.task, run.state
    self.task, self.state = task, state
    self.tile, _, self.channels = task.image_shape
    self.min_size = self.tile
    self.spec = spec
    probe = jax.eval_shape(self._tile_features, jnp.zeros((1, self.tile, self.tile, 3)))
    self.layers = tuple(probe)
    self.default_layers, self.content_layer = self.layers, self.layers[-1]

  def _tile_features(self, tiles: jax.Array) -> dict:
    """tiles [M, t, t, 3] in [0, 1] -> {Conv_i: relu(conv output)}."""
    x = tiles * 2.0 - 1.0  # the classifiers' input range
    if self.channels == 1:
      x = jnp.mean(x, axis=-1, keepdims=True)
    variables = {"params": self.state.params}
    if self.state.batch_stats:
      variables["batch_stats"] = self.state.batch_stats
    _, inter = self.task.model.apply(
        variables, x, train=False, capture_intermediates=lambda m, name: name == "__call__" and
        type(m).__name__ in ("Conv", "FlaxConv"))
    out = {}
    for path, value in jax.tree_util.tree_flatten_with_path(inter["intermediates"])[0]:
      keys = [p.key for p in path if hasattr(p, "key") and p.key != "__call__"]
      out["/".join(keys)] = jax.nn.relu(value)
    return dict(sorted(out.items()))

  def __call__(self, x: jax.Array) -> dict:
    n, h, w, _ = x.shape
    t = self.tile
    if h < t or w < t:
      raise ValueError(f"Images of {h}x{w} are smaller than the classifier's {t}x{t} input.")
    stride = max(1, t // 2)
    tops = sorted(set(list(range(0, h - t + 1, stride)) + [h - t]))
    lefts = sorted(set(list(range(0, w - t + 1, stride)) + [w - t]))
    tiles = jnp.stack([x[:, i:i + t, j:j + t] for i in tops for j in lefts], axis=1)
    feats = self._tile_features(tiles.reshape((-1, t, t, x.shape[-1])))
    # [n * tiles, h', w', C] -> [n, tiles * h', w', C]: every tile's positions count.
    return {k: v.reshape((n, -1) + v.shape[2:]) for k, v in feats.items()}


class VGGFeatures:
  """VGG16 / VGG19 convolutions (after ReLU) and pools, ImageNet weights."""

  def __init__(self, depth: int, weights: str | None = None):
    variables, self.source, path = vgg.load_vgg(depth, weights, include_top=False)
    self.spec = f"vgg{depth}:{path}"
    self.layers = vgg.layer_names(depth, include_top=False)
    self.default_layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    self.content_layer = "conv4_2"
    self.min_size = 32
    net = vgg.VGG(depth, include_top=False)
    self._apply = lambda x: net.apply(variables, vgg.preprocess(x, self.source))

  def __call__(self, x: jax.Array) -> dict:
    return self._apply(x)


def make_features(spec: str):
  """"random" / "random:SEED", "vgg16[:WEIGHTS]" / "vgg19[:WEIGHTS]" (a
  classifier run's features: `jaxgan.runs.texture_features`)."""
  kind, _, arg = spec.partition(":")
  if kind == "random":
    try:
      return RandomFeatures(seed=int(arg or 0))
    except ValueError:
      raise ValueError(f"--features {spec!r}: the seed of random:SEED must be an integer.") \
          from None
  if kind == "classifier":
    raise ValueError(f"--features {spec!r} names a classifier run: open it with "
                     "jaxgan.runs.texture_features (the commands do).")
  if kind in ("vgg16", "vgg19"):
    return VGGFeatures(int(kind[3:]), arg or None)
  raise ValueError(f"Unknown --features {spec!r}; use random[:SEED], vgg16[:WEIGHTS], "
                   "vgg19[:WEIGHTS] or classifier:RUN_DIR.")
