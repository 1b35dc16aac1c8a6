"""VGG16 and VGG19 (Simonyan & Zisserman 2015) with ImageNet weights from a
file the user supplies.

`VGG(depth)` returns every named activation: `conv<b>_<i>` (after its ReLU),
`pool<b>`, and with the classifier head `fc6`, `fc7` (after their ReLUs) and
`logits` (1,000 ImageNet classes, `imagenet_classes()`). Inputs are
[N, H, W, 3], preprocessed as the weights expect (`preprocess`). The head
applies PyTorch's adaptive average pooling to 7x7 first (the identity at
224x224), so any input of at least 32x32 runs.

Weights, read without torch or TensorFlow, every name and shape checked:
- torchvision's `vgg16-397923af.pth` / `vgg19-dcbb9e9d.pth` (state dicts,
  `jaxgan.torchfile`): RGB inputs, x in [0, 1] normalised by ImageNet's mean
  and std;
- Keras's `vgg16_weights_tf_dim_ordering_tf_kernels.h5` /
  `vgg19_weights_tf_dim_ordering_tf_kernels.h5` (the files behind
  `VGG16(weights='imagenet')`, read with h5py): "caffe" inputs, BGR in
  [0, 255] minus the ImageNet mean pixel.
"""

from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.torchfile import load_state_dict

# Convolution widths per block.
BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)

WEIGHT_FILES = {
    (16, "torchvision"): ("vgg16-397923af.pth",
                          "https://download.pytorch.org/models/vgg16-397923af.pth"),
    (19, "torchvision"): ("vgg19-dcbb9e9d.pth",
                          "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    (16, "keras"): ("vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                    "https://github.com/fchollet/deep-learning-models/releases/download/v0.1/"
                    "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
    (19, "keras"): ("vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                    "https://github.com/fchollet/deep-learning-models/releases/download/v0.1/"
                    "vgg19_weights_tf_dim_ordering_tf_kernels.h5"),
}
CACHE_DIR = os.path.join("~", ".cache", "jaxgan")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def layer_names(depth: int, include_top: bool = True) -> tuple[str, ...]:
  names = []
  for b, n in enumerate(BLOCKS[depth], start=1):
    names += [f"conv{b}_{i}" for i in range(1, n + 1)] + [f"pool{b}"]
  return tuple(names + (["fc6", "fc7", "logits"] if include_top else []))


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """PyTorch's AdaptiveAvgPool2d((size, size)) on [N, H, W, C]: output cell
  i averages rows floor(i H / size) .. ceil((i + 1) H / size) - 1."""
  n, h, w, c = x.shape
  if (h, w) == (size, size):
    return x

  def pool_matrix(length):
    m = np.zeros((size, length), np.float32)
    for i in range(size):
      lo, hi = (i * length) // size, -((-(i + 1) * length) // size)
      m[i, lo:hi] = 1.0 / (hi - lo)
    return jnp.asarray(m)

  x = jnp.einsum("ih,nhwc->niwc", pool_matrix(h), x, precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum("jw,niwc->nijc", pool_matrix(w), x, precision=jax.lax.Precision.HIGHEST)


class VGG(nn.Module):
  """VGG16 / VGG19; returns {layer name: activation}."""
  depth: int = 16
  include_top: bool = True
  num_classes: int = 1000

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict:
    if self.depth not in BLOCKS:
      raise ValueError(f"VGG depth must be 16 or 19, got {self.depth}.")
    out = {}
    for b, (n, width) in enumerate(zip(BLOCKS[self.depth], WIDTHS), start=1):
      for i in range(1, n + 1):
        x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), name=f"conv{b}_{i}")(x))
        out[f"conv{b}_{i}"] = x
      x = nn.max_pool(x, (2, 2), (2, 2))
      out[f"pool{b}"] = x
    if not self.include_top:
      return out
    x = adaptive_avg_pool(x, 7).reshape(x.shape[0], -1)
    for name in ("fc6", "fc7"):
      x = nn.relu(nn.Dense(4096, name=name)(x))
      out[name] = x
      x = nn.Dropout(0.5, deterministic=not train)(x)
    out["logits"] = nn.Dense(self.num_classes, name="fc8")(x)
    return out


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
  """The 1,000 ImageNet class names in index order (Keras's names)."""
  path = os.path.join(os.path.dirname(__file__), "imagenet_classes.txt")
  with open(path) as f:
    return tuple(line.strip() for line in f if line.strip() and not line.startswith("#"))


def preprocess(images: jax.Array, source: str) -> jax.Array:
  """RGB images in [0, 1] -> what weights from `source` expect."""
  x = jnp.asarray(images, jnp.float32)
  if source == "torchvision":
    return (x - jnp.asarray(_IMAGENET_MEAN)) / jnp.asarray(_IMAGENET_STD)
  if source == "keras":
    return x[..., ::-1] * 255.0 - jnp.asarray(_CAFFE_MEAN_BGR)
  raise ValueError(f"Unknown weights source {source!r}; use torchvision or keras.")


def default_weights_path(depth: int, source: str = "torchvision") -> str:
  return os.path.expanduser(os.path.join(CACHE_DIR, WEIGHT_FILES[(depth, source)][0]))


def _not_found(depth: int, path: str | None) -> FileNotFoundError:
  tv_file, tv_url = WEIGHT_FILES[(depth, "torchvision")]
  k_file, k_url = WEIGHT_FILES[(depth, "keras")]
  where = f"not found at {path}" if path else "not found"
  return FileNotFoundError(
      f"VGG{depth} ImageNet weights {where}. Download {tv_file} from {tv_url} (torchvision) "
      f"or {k_file} from {k_url} (Keras) on a machine with network, and put it at "
      f"{os.path.join(CACHE_DIR, tv_file)} (or {os.path.join(CACHE_DIR, k_file)}), or pass "
      "its path (--weights PATH).")


def resolve_weights(depth: int, path: str | None = None) -> tuple[str, str]:
  """(path, source) of the weights file: `path`, or the first file present in
  ~/.cache/jaxgan (torchvision's, then Keras's). The source follows from the
  extension (.pth/.pt: torchvision, .h5: keras)."""
  if depth not in BLOCKS:
    raise ValueError(f"VGG depth must be 16 or 19, got {depth}.")
  if path is None:
    for source in ("torchvision", "keras"):
      candidate = default_weights_path(depth, source)
      if os.path.isfile(candidate):
        return candidate, source
    raise _not_found(depth, None)
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise _not_found(depth, path)
  if path.endswith((".pth", ".pt")):
    return path, "torchvision"
  if path.endswith((".h5", ".hdf5")):
    return path, "keras"
  raise ValueError(f"{path}: VGG weights must be torchvision's .pth or Keras's .h5 file.")


class WeightsFileError(ValueError):
  """A weights file that cannot be read as VGG's weights (names the file)."""


def _expected(depth: int, include_top: bool) -> dict:
  shapes = jax.eval_shape(lambda: VGG(depth, include_top).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3))))["params"]
  return {k: {p: tuple(v.shape) for p, v in layer.items()} for k, layer in shapes.items()}


def _check_and_build(arrays: dict, depth: int, include_top: bool, origin: str) -> dict:
  """{layer: {"kernel", "bias"}} arrays -> flax variables, every shape checked."""
  expected = _expected(depth, include_top)
  params = {}
  for layer, shapes in expected.items():
    for p, shape in shapes.items():
      if layer not in arrays or arrays[layer].get(p) is None:
        raise WeightsFileError(f"{origin}: no weights for VGG{depth} layer {layer} ({p}); "
                               f"not a VGG{depth} ImageNet weights file?")
      value = np.asarray(arrays[layer][p])
      if value.dtype.kind not in "fiu":
        raise WeightsFileError(f"{origin}: VGG{depth} layer {layer} {p} holds {value.dtype} "
                               "values, not numbers.")
      value = value.astype(np.float32)
      if value.shape != shape:
        raise WeightsFileError(f"{origin}: VGG{depth} layer {layer} {p} has shape {value.shape}, "
                         f"expected {shape}; not a VGG{depth} ImageNet weights file?")
      params.setdefault(layer, {})[p] = jnp.asarray(value)
  return {"params": params}


def _torchvision_arrays(state_dict: dict, depth: int, origin: str) -> dict:
  """torchvision's state dict -> {layer: {"kernel", "bias"}} in flax layout."""
  arrays, index = {}, 0
  for b, n in enumerate(BLOCKS[depth], start=1):
    for i in range(1, n + 1):
      prefix = f"features.{index}"
      if f"{prefix}.weight" in state_dict:
        w = state_dict[f"{prefix}.weight"]
        if w.ndim != 4:
          raise WeightsFileError(f"{origin}: {prefix}.weight has shape {w.shape}; VGG{depth}'s "
                                 f"conv{b}_{i} kernel is 4-d [out, in, 3, 3].")
        arrays[f"conv{b}_{i}"] = {
            "kernel": np.transpose(w, (2, 3, 1, 0)),
            "bias": state_dict.get(f"{prefix}.bias")}
      index += 2  # conv, ReLU
    index += 1  # max pool
  for name, key in (("fc6", "classifier.0"), ("fc7", "classifier.3"), ("fc8", "classifier.6")):
    if f"{key}.weight" in state_dict:
      w = np.asarray(state_dict[f"{key}.weight"])
      if name == "fc6" and w.ndim == 2 and w.shape[1] == 512 * 7 * 7:
        # torch flattens [C, 7, 7]; flax [7, 7, C].
        w = w.reshape(w.shape[0], 512, 7, 7).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
      if w.ndim != 2:
        raise WeightsFileError(f"{origin}: {key}.weight has shape {w.shape}; VGG{depth}'s "
                               f"{name} weight is 2-d [out, in].")
      arrays[name] = {"kernel": w.T, "bias": state_dict.get(f"{key}.bias")}
  unused = set(state_dict) - {f"features.{i}.{p}" for i in range(64) for p in ("weight", "bias")}
  unused -= {f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}
  if unused:
    raise WeightsFileError(f"{origin}: unexpected arrays {sorted(unused)[:3]}; not torchvision's "
                     f"VGG{depth} state dict?")
  return arrays


def _keras_arrays(path: str, depth: int) -> dict:
  """Keras's VGG .h5 (layer_names / weight_names attributes) -> flax layout.
  Whatever the file holds, the result is arrays or one `WeightsFileError`
  naming the file (tests/test_untrusted_files.py fuzzes it)."""
  import h5py
  keras_names = {f"block{b}_conv{i}": f"conv{b}_{i}"
                 for b, n in enumerate(BLOCKS[depth], start=1) for i in range(1, n + 1)}
  keras_names.update({"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"})
  text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
  arrays = {}
  try:
    with h5py.File(path, "r") as f:
      root = f["model_weights"] if "model_weights" in f else f
      for name in map(text, root.attrs.get("layer_names", list(root.keys()))):
        group = root[name]
        weights = list(map(text, group.attrs.get("weight_names", [])))
        if not weights:
          continue
        if name not in keras_names:
          raise WeightsFileError(f"{path}: unexpected layer {name!r}; not Keras's "
                                 f"VGG{depth} weights file?")
        if len(weights) != 2:
          raise WeightsFileError(f"{path}: layer {name!r} holds {len(weights)} arrays "
                                 f"({', '.join(weights)[:200]}); Keras's VGG{depth} has a "
                                 "kernel and a bias per layer.")
        kernel, bias = (np.asarray(group[w]) for w in weights)
        arrays[keras_names[name]] = {"kernel": kernel, "bias": bias}
  except WeightsFileError:
    raise
  except Exception as e:  # noqa: BLE001 - h5py raises many types on damaged files
    raise WeightsFileError(f"{path}: cannot be read as Keras's VGG{depth} HDF5 weights "
                           f"({type(e).__name__}: {str(e)[:200]}).") from None
  return arrays


def load_vgg(depth: int = 16, path: str | None = None,
             include_top: bool = True) -> tuple[dict, str, str]:
  """(flax variables, weights source, path) from a torchvision .pth or a
  Keras .h5 file (`resolve_weights` finds it)."""
  path, source = resolve_weights(depth, path)
  if source == "torchvision":
    arrays = _torchvision_arrays(load_state_dict(path), depth, path)
  else:
    arrays = _keras_arrays(path, depth)
  if not include_top:
    arrays = {k: v for k, v in arrays.items() if k.startswith("conv")}
  return _check_and_build(arrays, depth, include_top, path), source, path
