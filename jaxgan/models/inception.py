"""InceptionV3 as used for FID: the network behind the standard FID weights.

This is the variant of pytorch-fid (which reproduces the TensorFlow graph of
the original FID code, "inception-2015-12-05"): torchvision's InceptionV3
with 1008 classes, average pools that do not count padding in the A, C and
E_1 blocks, and a max pool in the last E block. Inputs are images in
[-1, 1], resized bilinearly (half-pixel centres, no antialiasing, as
`torch.nn.functional.interpolate(align_corners=False)`) to 299x299; grey
images are repeated to RGB. `__call__` returns (pool3 features [N, 2048],
logits [N, 1008]).

The weights are not bundled (and cannot be downloaded here): a user puts
pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` in place and
`load_fid_params` reads it without torch (see `jaxgan.torchfile`).
Submodule names follow torchvision's, so the state dict maps one to one.
"""

from __future__ import annotations

import os
import zipfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.torchfile import TorchFileError, load_state_dict

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_FILE)
WEIGHTS_ENV = "JAXGAN_INCEPTION_WEIGHTS"
NUM_CLASSES = 1008
INPUT_SIZE = 299


def default_weights_path() -> str:
  return os.environ.get(WEIGHTS_ENV) or os.path.join(
      os.path.expanduser("~"), ".cache", "jaxgan", WEIGHTS_FILE)


class BasicConv2d(nn.Module):
  """Convolution without bias, BatchNorm (eps 1e-3), ReLU."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x, train: bool = False):
    (ph, pw) = self.padding
    x = nn.Conv(self.features, self.kernel, strides=self.strides,
                padding=((ph, ph), (pw, pw)), use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, epsilon=1e-3, momentum=0.9, name="bn")(x)
    return nn.relu(x)


def _avg_pool(x):
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool(x, stride=2):
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding="VALID")


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    b1 = BasicConv2d(64, (1, 1), name="branch1x1")(x, train)
    b5 = BasicConv2d(48, (1, 1), name="branch5x5_1")(x, train)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5, train)
    b3 = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x, train)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3, train)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3, train)
    bp = BasicConv2d(self.pool_features, (1, 1), name="branch_pool")(_avg_pool(x), train)
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    b3 = BasicConv2d(384, (3, 3), strides=2, name="branch3x3")(x, train)
    bd = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x, train)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd, train)
    bd = BasicConv2d(96, (3, 3), strides=2, name="branch3x3dbl_3")(bd, train)
    return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    c = self.channels_7x7
    b1 = BasicConv2d(192, (1, 1), name="branch1x1")(x, train)
    b7 = BasicConv2d(c, (1, 1), name="branch7x7_1")(x, train)
    b7 = BasicConv2d(c, (1, 7), padding=(0, 3), name="branch7x7_2")(b7, train)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7, train)
    bd = BasicConv2d(c, (1, 1), name="branch7x7dbl_1")(x, train)
    bd = BasicConv2d(c, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd, train)
    bd = BasicConv2d(c, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd, train)
    bd = BasicConv2d(c, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd, train)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd, train)
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(_avg_pool(x), train)
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    b3 = BasicConv2d(192, (1, 1), name="branch3x3_1")(x, train)
    b3 = BasicConv2d(320, (3, 3), strides=2, name="branch3x3_2")(b3, train)
    b7 = BasicConv2d(192, (1, 1), name="branch7x7x3_1")(x, train)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7, train)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7, train)
    b7 = BasicConv2d(192, (3, 3), strides=2, name="branch7x7x3_4")(b7, train)
    return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
  max_pool: bool = False  # FID's last block (Mixed_7c) max-pools its pool branch

  @nn.compact
  def __call__(self, x, train: bool = False):
    b1 = BasicConv2d(320, (1, 1), name="branch1x1")(x, train)
    b3 = BasicConv2d(384, (1, 1), name="branch3x3_1")(x, train)
    b3 = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3, train),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3, train)], axis=-1)
    bd = BasicConv2d(448, (1, 1), name="branch3x3dbl_1")(x, train)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd, train)
    bd = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd, train),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd, train)], axis=-1)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool(x)
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(pooled, train)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def resize_input(x: jax.Array) -> jax.Array:
  """[N, H, W, 1 or 3] in [-1, 1] -> [N, 299, 299, 3]."""
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), "bilinear",
                         antialias=False)
  return x


class FIDInceptionV3(nn.Module):
  """(pool3 [N, 2048], logits [N, 1008]) of images in [-1, 1]."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = resize_input(x.astype(jnp.float32))
    x = BasicConv2d(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x, train)
    x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x, train)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x, train)
    x = _max_pool(x)
    x = BasicConv2d(80, (1, 1), name="Conv2d_3b_1x1")(x, train)
    x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x, train)
    x = _max_pool(x)
    x = InceptionA(32, name="Mixed_5b")(x, train)
    x = InceptionA(64, name="Mixed_5c")(x, train)
    x = InceptionA(64, name="Mixed_5d")(x, train)
    x = InceptionB(name="Mixed_6a")(x, train)
    for name, c in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c, name=name)(x, train)
    x = InceptionD(name="Mixed_7a")(x, train)
    x = InceptionE(name="Mixed_7b")(x, train)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x, train)
    pool3 = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, name="fc")(pool3)
    return pool3, logits


def variables_from_state_dict(state_dict: dict[str, np.ndarray]) -> dict:
  """Flax variables {'params', 'batch_stats'} of `FIDInceptionV3` from
  pytorch-fid's state dict, checked name by name and shape by shape against
  the module, so a wrong or truncated file is an error, not garbage."""
  expected = jax.eval_shape(lambda: FIDInceptionV3().init(
      jax.random.PRNGKey(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))))
  out = {"params": {}, "batch_stats": {}}
  used = set()

  def put(collection, path, value, key):
    node = out[collection]
    for p in path[:-1]:
      node = node.setdefault(p, {})
    want = expected[collection]
    for p in path:
      want = want.get(p) if isinstance(want, dict) else None
      if want is None:
        raise ValueError(f"unexpected weight {key!r} (no {collection} {'/'.join(path)} in "
                         "FIDInceptionV3): not pytorch-fid's FID Inception weights")
    if tuple(want.shape) != value.shape:
      raise ValueError(f"weight {key!r} has shape {value.shape}, FIDInceptionV3 expects "
                       f"{tuple(want.shape)}: not pytorch-fid's FID Inception weights")
    node[path[-1]] = jnp.asarray(value, jnp.float32)
    used.add("/".join((collection,) + path))

  for key, value in state_dict.items():
    *module, leaf = key.split(".")
    module = tuple(module)
    if leaf == "num_batches_tracked":
      continue
    if value.dtype.kind not in "fiu":
      raise ValueError(f"weight {key!r} holds {value.dtype} values, not numbers")
    if module and module[-1] == "conv" and leaf == "weight":
      # (a kernel that is not 4-d keeps its shape, for put's error to name)
      put("params", module + ("kernel",),
          np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value, key)
    elif module and module[-1] == "bn":
      name = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}
      if leaf not in name:
        raise ValueError(f"unexpected weight {key!r}")
      put(name[leaf][0], module + (name[leaf][1],), value, key)
    elif module == ("fc",) and leaf in ("weight", "bias"):
      put("params", ("fc", "kernel" if leaf == "weight" else "bias"),
          value.T if leaf == "weight" and value.ndim == 2 else value, key)
    else:
      raise ValueError(f"unexpected weight {key!r}: not pytorch-fid's FID Inception weights")

  missing = ["/".join((c,) + tuple(str(k.key) for k in path))
             for c in ("params", "batch_stats")
             for path, _ in jax.tree_util.tree_flatten_with_path(expected[c])[0]]
  missing = [m for m in missing if m not in used]
  if missing:
    raise ValueError(f"the weights file lacks {len(missing)} of FIDInceptionV3's arrays "
                     f"(first: {missing[0]}): not the complete FID Inception weights")
  return out


def load_fid_variables(path: str | None = None) -> tuple[dict, str]:
  """(variables, resolved path) from pytorch-fid's weight file (a `.pth`,
  read without torch) or an `.npz` of the same state dict."""
  path = os.path.abspath(os.path.expanduser(path or default_weights_path()))
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"InceptionV3 FID weights not found at {path}. Download {WEIGHTS_FILE} (pytorch-fid's "
        f"standard FID weights) from {WEIGHTS_URL} on a machine with network, and put it at "
        f"{default_weights_path()} (or set ${WEIGHTS_ENV}, or give the path as "
        "--features=inception:PATH). Offline alternative: the features of a classifier "
        "trained with python -m experiments.classifier (--features=RUN_DIR).")
  try:
    if path.endswith(".npz"):
      with np.load(path) as f:  # object arrays are refused (no pickles)
        state_dict = {k: f[k] for k in f.files}
    else:
      state_dict = load_state_dict(path)
    return variables_from_state_dict(state_dict), path
  except TorchFileError:
    raise  # names the file already
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: {e}") from None
