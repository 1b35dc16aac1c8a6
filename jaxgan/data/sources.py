"""Data sources: where examples come from, validated before training starts.

The `dataset` config field names one of:
- a TFDS catalog name (`mnist`, `fashion_mnist`, `cifar10`, `celeb_a`, ...,
  optionally `name:version`), read from `data_dir`;
- `idx:DIR`: MNIST-format IDX files (`train-*` and/or `t10k-*`, gzipped or not);
- `folder:DIR`: PNG/JPEG images, one subfolder per class; subfolders named like
  splits (`train`, `test`, ...) are splits, otherwise everything is `train`;
- `digits`: scikit-learn's bundled 8x8 handwritten digits (works offline).

- `npz:FILE`: a NumPy `.npz` holding `<split>_images` (uint8 [N, H, W] or
  [N, H, W, C]) and optionally `<split>_labels` (ints [N]) per split;
- `arrays:NAME`: arrays a program registered with `register_arrays(NAME, ...)`.

Every source resolves TFDS split syntax (`train`, `train[:90%]`, `test[9000:]`,
`a+b`) and gives a split two ways: `fitted(spec, size)`, the whole split as
uint8 arrays at the training resolution (the indexed pipeline; no
TensorFlow), and `examples(spec, p, P)`, one process's shard as a
`tf.data.Dataset` of `{"image": uint8 [H, W, C], "label": int64}` (the tf.data
pipeline; imports TensorFlow).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import re
import socket
import struct
import types
import zlib

import jax
import numpy as np


class DataError(ValueError):
  """Bad dataset configuration or input files (the message says how to fix it)."""


def resolve_split(spec: str, split_sizes: dict[str, int]) -> list[tuple[str, int, int]]:
  """TFDS split syntax -> [(split name, start, stop)] absolute ranges."""
  import tensorflow_datasets as tfds
  infos = {k: types.SimpleNamespace(num_examples=v) for k, v in split_sizes.items()}
  try:
    instructions = tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos)
  except (ValueError, KeyError, AssertionError) as e:
    raise DataError(f"Bad split {spec!r}: {e}. Available splits: "
                    f"{', '.join(f'{k} ({v} examples)' for k, v in split_sizes.items())}. "
                    "Use TFDS split syntax, e.g. 'train', 'train[:90%]', 'test[9000:]'.") from None
  ranges = []
  for ins in instructions:
    n = split_sizes[ins.splitname]
    start = 0 if ins.from_ is None else ins.from_
    stop = n if ins.to is None else ins.to
    ranges.append((ins.splitname, start, stop))
  return ranges


def shard_indices(num_examples: int, process_index: int, process_count: int) -> np.ndarray:
  """Process p reads examples p, p + P, p + 2P, ... (sizes differ by at most one)."""
  return np.arange(process_index, num_examples, process_count)


class _IndexedSource:
  """Sources whose examples are numbered: sizes follow from the split alone."""

  def shard_sizes(self, spec: str, process_count: int) -> list[int]:
    n = sum(stop - start for _, start, stop in resolve_split(spec, self.splits))
    return [len(shard_indices(n, p, process_count)) for p in range(process_count)]


# ---------------------------------------------------------------------------
# In-memory arrays: idx:, digits


@dataclasses.dataclass
class ArraySource(_IndexedSource):
  """Images held in memory as uint8 [N, H, W, C] arrays, per split."""
  name: str
  images: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]

  @property
  def splits(self) -> dict[str, int]:
    return {k: len(v) for k, v in self.images.items()}

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return next(iter(self.images.values())).shape[1:]

  @property
  def channels(self) -> int:
    return self.image_shape[-1]

  @property
  def num_classes(self) -> int:
    return int(max(v.max(initial=0) for v in self.labels.values())) + 1

  def _select(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
    ranges = resolve_split(spec, self.splits)
    images = np.concatenate([self.images[s][a:b] for s, a, b in ranges])
    labels = np.concatenate([self.labels[s][a:b] for s, a, b in ranges])
    return images, labels

  def examples(self, spec: str, process_index: int, process_count: int):
    from jaxgan.data.tf import tf
    images, labels = self._select(spec)
    idx = shard_indices(len(labels), process_index, process_count)
    return tf.data.Dataset.from_tensor_slices(
        {"image": images[idx], "label": labels[idx].astype(np.int64)})

  def fitted(self, spec: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = self._select(spec)
    return fit_images(images, size), labels.astype(np.int64)


_IDX_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx(\d)-ubyte(\.gz)?$")


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file of unsigned bytes (gzipped or not), validating it."""
  with open(path, "rb") as f:
    raw = f.read()
  if raw[:2] == b"\x1f\x8b":
    try:
      raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
      raise DataError(f"{path}: corrupt or truncated gzip file ({e}). "
                      "Download the file again.") from None
  if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] == 0:
    raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()!r}, "
                    "expected 00000801 for labels or 00000803 for images).")
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f"{path}: truncated IDX header.")
  dims = struct.unpack(f">{ndim}I", raw[4:header])
  expected = header + int(np.prod(dims))
  if len(raw) != expected:
    raise DataError(f"{path}: IDX header promises {dims} = {expected} bytes but the file "
                    f"holds {len(raw)} bytes (truncated or corrupt). Download it again.")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def load_idx_dir(directory: str) -> ArraySource:
  if not os.path.isdir(directory):
    raise DataError(f"idx: directory {directory!r} does not exist. Point "
                    "--config.dataset=idx:DIR at a folder with MNIST-format files such as "
                    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.")
  found: dict[tuple[str, str], str] = {}
  for fname in sorted(os.listdir(directory)):
    m = _IDX_NAME.match(fname)
    if m:
      found[(m.group(1), m.group(2))] = os.path.join(directory, fname)
  images, labels = {}, {}
  for prefix, split in (("train", "train"), ("t10k", "test")):
    img, lab = found.get((prefix, "images")), found.get((prefix, "labels"))
    if img is None and lab is None:
      continue
    if img is None or lab is None:
      missing = f"{prefix}-{'images-idx3' if img is None else 'labels-idx1'}-ubyte[.gz]"
      raise DataError(f"idx:{directory}: {missing} is missing for the {split!r} split.")
    x, y = read_idx(img), read_idx(lab)
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4 or y.ndim != 1:
      raise DataError(f"{img}: expected images [N, H, W] and labels [N], got shapes "
                      f"{x.shape} and {y.shape}.")
    if len(x) != len(y):
      raise DataError(f"idx:{directory}: {len(x)} images in {os.path.basename(img)} but "
                      f"{len(y)} labels in {os.path.basename(lab)}; the files do not belong "
                      "together.")
    if len(x) == 0:
      raise DataError(f"{img}: holds no images.")
    images[split], labels[split] = x, y
  if not images:
    raise DataError(f"idx:{directory}: no IDX files found. Expected train-images-idx3-ubyte "
                    "and train-labels-idx1-ubyte and/or t10k-images-idx3-ubyte and "
                    "t10k-labels-idx1-ubyte (optionally .gz).")
  return ArraySource(f"idx:{directory}", images, labels)


def load_digits() -> ArraySource:
  """scikit-learn's 1,797 8x8 digits: `train` = the first 1,500, `test` = the last 297."""
  from sklearn.datasets import load_digits as sk_load_digits
  d = sk_load_digits()
  x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  y = d.target.astype(np.int64)
  return ArraySource("digits", {"train": x[:1500], "test": x[1500:]},
                     {"train": y[:1500], "test": y[1500:]})


# ---------------------------------------------------------------------------
# folder:


_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_SPLIT_NAMES = ("train", "test", "validation", "valid", "val", "eval")


@dataclasses.dataclass
class FolderSource(_IndexedSource):
  """Image files on disk, decoded in the pipeline."""
  name: str
  files: dict[str, list[str]]
  labels: dict[str, np.ndarray]
  class_names: list[str]
  channels: int
  image_shape: tuple[int, int, int] | None  # None when sizes differ

  @property
  def splits(self) -> dict[str, int]:
    return {k: len(v) for k, v in self.files.items()}

  @property
  def num_classes(self) -> int:
    return max(1, len(self.class_names))

  def _select(self, spec):
    ranges = resolve_split(spec, self.splits)
    files = [f for s, a, b in ranges for f in self.files[s][a:b]]
    labels = np.concatenate([self.labels[s][a:b] for s, a, b in ranges])
    return files, labels

  def examples(self, spec: str, process_index: int, process_count: int):
    from jaxgan.data.tf import tf
    files, labels = self._select(spec)
    idx = shard_indices(len(files), process_index, process_count)
    ds = tf.data.Dataset.from_tensor_slices(
        {"path": np.asarray(files, dtype=object)[idx].astype(str), "label": labels[idx]})
    channels = self.channels

    def decode(ex):
      image = tf.io.decode_image(tf.io.read_file(ex["path"]), channels=channels,
                                 expand_animations=False)
      return {"image": image, "label": ex["label"]}

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def fitted(self, spec: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    files, labels = self._select(spec)
    mode = "L" if self.channels == 1 else "RGB"
    images = []
    for path in files:
      with Image.open(path) as im:
        x = np.asarray(im.convert(mode), np.uint8)
      images.append(fit_images(x.reshape(*x.shape[:2], self.channels)[None], size)[0])
    return np.stack(images), labels.astype(np.int64)


def _list_images(directory: str) -> list[str]:
  return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                if f.lower().endswith(_IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(directory, f)))


def load_folder(directory: str) -> FolderSource:
  from PIL import Image, UnidentifiedImageError
  if not os.path.isdir(directory):
    raise DataError(f"folder: directory {directory!r} does not exist. Point "
                    "--config.dataset=folder:DIR at a folder of PNG/JPEG images with one "
                    "subfolder per class (optionally inside train/ and test/ subfolders).")
  subdirs = sorted(d for d in os.listdir(directory)
                   if os.path.isdir(os.path.join(directory, d)))
  split_dirs = {d: os.path.join(directory, d) for d in subdirs if d in _SPLIT_NAMES}
  if not split_dirs:
    split_dirs = {"train": directory}

  # Per split: {class name: [files]}; files directly inside a split folder
  # form one unnamed class.
  per_split: dict[str, dict[str, list[str]]] = {}
  for split, sdir in split_dirs.items():
    classes = {"": _list_images(sdir)}
    for c in sorted(os.listdir(sdir)):
      if os.path.isdir(os.path.join(sdir, c)) and not (sdir == directory and c in _SPLIT_NAMES):
        classes[c] = _list_images(os.path.join(sdir, c))
    per_split[split] = {c: f for c, f in classes.items() if f}
  class_names = sorted({c for classes in per_split.values() for c in classes})
  label_of = {c: i for i, c in enumerate(class_names)}
  files, labels = {}, {}
  for split, classes in per_split.items():
    pairs = [(f, label_of[c]) for c in sorted(classes) for f in classes[c]]
    if not pairs:
      raise DataError(f"folder:{directory}: split {split!r} ({split_dirs[split]}) holds no "
                      f"PNG/JPEG images ({', '.join(_IMAGE_EXTENSIONS)}), neither directly "
                      "nor in class subfolders.")
    files[split] = [f for f, _ in pairs]
    labels[split] = np.asarray([lab for _, lab in pairs], np.int64)

  # Validate every file now, so a corrupt image is an error before training,
  # not a crash hours in. Image.verify() checks the file without decoding it all.
  sizes, modes = set(), set()
  for path in (f for fs in files.values() for f in fs):
    try:
      with Image.open(path) as im:
        im.verify()
        sizes.add(im.size)
        modes.add(im.mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
      raise DataError(f"folder:{directory}: {path} is not a readable PNG/JPEG image ({e}). "
                      "Remove or replace the file.") from None
  channels = 1 if modes <= {"L", "LA", "I", "I;16", "1"} else 3
  image_shape = None
  if len(sizes) == 1:
    (w, h), = sizes
    image_shape = (h, w, channels)
  return FolderSource(f"folder:{directory}", files, labels,
                      [c or "default" for c in class_names], channels, image_shape)


# ---------------------------------------------------------------------------
# TFDS catalog


def _network_available(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
  try:
    with socket.create_connection((host, 443), timeout=timeout):
      return True
  except OSError:
    return False


@dataclasses.dataclass
class TFDSSource:
  name: str
  builder: object

  @property
  def splits(self) -> dict[str, int]:
    return {k: v.num_examples for k, v in self.builder.info.splits.items()}

  @property
  def image_shape(self):
    shape = self.builder.info.features["image"].shape
    return tuple(shape) if None not in shape else None

  @property
  def channels(self) -> int:
    return self.builder.info.features["image"].shape[-1]

  @property
  def num_classes(self) -> int:
    features = self.builder.info.features
    return getattr(features["label"], "num_classes", 1) if "label" in features else 1

  def _check_split(self, spec: str):
    if self.splits:  # Unknown only for mocked data.
      resolve_split(spec, self.splits)

  def _shards(self, spec: str, process_count: int):
    import tensorflow_datasets as tfds
    self._check_split(spec)
    return tfds.even_splits(spec, n=process_count)

  def shard_sizes(self, spec: str, process_count: int) -> list[int]:
    sizes = []
    for p, shard in enumerate(self._shards(spec, process_count)):
      try:
        sizes.append(self.builder.info.splits[shard].num_examples)
      except (KeyError, ValueError):  # split sizes unknown (mocked data)
        sizes.append(int(self.examples(spec, p, process_count).cardinality()))
    return sizes

  def examples(self, spec: str, process_index: int, process_count: int):
    from jaxgan.data.tf import tf
    shard = self._shards(spec, process_count)[process_index]
    ds = self.builder.as_dataset(split=shard, shuffle_files=False)
    return ds.map(lambda ex: {"image": ex["image"],
                              "label": tf.cast(ex.get("label", 0), tf.int64)},
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def fitted(self, spec: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The split in memory: read through tf.data where TensorFlow is
    installed, else by random access (`tfds.data_source`, which needs the
    dataset prepared in the array_record format: `jaxgan.data.prepare` does)."""
    self._check_split(spec)
    file_format = str(getattr(self.builder.info, "file_format", "") or "")
    if "array_record" not in file_format and tensorflow_available():
      import tensorflow_datasets as tfds
      examples = tfds.as_numpy(self.examples(spec, 0, 1))
    else:
      examples = self._data_source(spec)
    images, labels = [], []
    for ex in examples:
      images.append(fit_images(np.asarray(ex["image"])[None], size)[0])
      labels.append(int(ex["label"]))
    if not images:
      raise DataError(f"Split {spec!r} of {self.name} has no examples.")
    return np.stack(images), np.asarray(labels, np.int64)

  def _data_source(self, spec: str):
    try:
      source = self.builder.as_data_source(split=spec)
    except (NotImplementedError, ValueError, FileNotFoundError) as e:
      raise DataError(
          f"TFDS dataset {self.name!r} cannot be read without TensorFlow ({e}): it is prepared "
          "in the tfrecord format. Prepare it in array_record (`python -m jaxgan.data.prepare "
          f"{self.name}` does) or install TensorFlow (pip install 'jaxgan[tf]').") from None
    return ({"image": ex["image"], "label": ex.get("label", 0)} for ex in source)


def load_tfds(name: str, data_dir: str | None) -> TFDSSource:
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(
        f"Unknown dataset {name!r}. Use a TFDS catalog name (mnist, fashion_mnist, cifar10, "
        "celeb_a, ...), idx:DIR for MNIST-format files, folder:DIR for a folder of images, "
        "npz:FILE for NumPy arrays, or digits for scikit-learn's bundled digits.") from None
  looked_in = os.path.dirname(os.path.dirname(builder.data_path))
  if not builder.is_prepared():
    if not _network_available():
      raise DataError(
          f"TFDS dataset {name!r} is not prepared in {looked_in} and this machine cannot "
          "download it (no network). Either prepare it on a machine with network:\n"
          f"    python -m jaxgan.data.prepare {name} --data_dir {looked_in}\n"
          "and copy that directory here (or pass --config.data_dir=DIR), or use local files: "
          "--config.dataset=idx:DIR (MNIST-format IDX files), folder:DIR (a folder of images), "
          "or digits (scikit-learn's bundled digits, no files needed).")
    builder.download_and_prepare()
  if "image" not in builder.info.features:
    raise DataError(f"TFDS dataset {name!r} has no 'image' feature; jaxgan needs an image "
                    "dataset.")
  return TFDSSource(name, builder)


def tensorflow_available() -> bool:
  """Whether TensorFlow can be imported here (the tf.data pipeline needs it)."""
  try:
    import jaxgan.data.tf  # noqa: F401
  except ImportError:
    return False
  return True


# ---------------------------------------------------------------------------
# Resizing to the training resolution, without TensorFlow


def fit_images(images: np.ndarray, size: int) -> np.ndarray:
  """uint8 [N, H, W, C] -> uint8 [N, size, size, C]: centre-cropped to a square,
  then resized (antialiased bilinear: area-like when shrinking, bilinear when
  growing, as the tf.data pipeline's `tf.image.resize(antialias=True)`), rounded."""
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  images = images[:, top:top + side, left:left + side]
  with jax.default_device(jax.local_devices(backend="cpu")[0]):
    chunks = [np.asarray(_resize(images[i:i + 1024], size)) for i in range(0, n, 1024)]
  return np.concatenate(chunks).astype(np.uint8)


@functools.partial(jax.jit, static_argnums=1)
def _resize(images, size: int):
  """One compiled resize per (input shape, size): a folder or TFDS split
  fitted image by image compiles once per distinct image size."""
  n, _, _, c = images.shape
  x = jax.image.resize(images.astype(np.float32), (n, size, size, c), "linear", antialias=True)
  return jax.numpy.clip(jax.numpy.round(x), 0, 255)


# ---------------------------------------------------------------------------
# A user's own arrays: npz:FILE, arrays:NAME

_REGISTERED: dict[str, ArraySource] = {}


def _array_source(name: str, splits: dict) -> ArraySource:
  """{split: images or (images, labels)} -> a validated ArraySource."""
  images, labels = {}, {}
  for split, value in splits.items():
    x, y = value if isinstance(value, tuple) else (value, None)
    x = np.asarray(x)
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.dtype != np.uint8 or not len(x):
      raise DataError(f"{name}: split {split!r} must hold uint8 images [N, H, W] or "
                      f"[N, H, W, 1 or 3] with N > 0, got {x.dtype} {x.shape}.")
    y = np.zeros(len(x), np.int64) if y is None else np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
      raise DataError(f"{name}: labels of split {split!r} must be non-negative integers [N] "
                      f"with N = {len(x)} images, got {y.dtype} {y.shape}.")
    images[split], labels[split] = x, y.astype(np.int64)
  if not images:
    raise DataError(f"{name}: no splits.")
  if len({x.shape[1:] for x in images.values()}) > 1:
    raise DataError(f"{name}: splits have different image shapes "
                    f"{ {k: x.shape[1:] for k, x in images.items()} }.")
  return ArraySource(name, images, labels)


def register_arrays(name: str, splits: dict) -> None:
  """Makes `--config.dataset=arrays:NAME` read these in-memory arrays:
  `splits` maps a split name to uint8 images [N, H, W(, C)] or to
  (images, integer labels [N])."""
  _REGISTERED[name] = _array_source(f"arrays:{name}", splits)


def load_npz(path: str) -> ArraySource:
  if not os.path.isfile(path):
    raise DataError(f"npz: file {path!r} does not exist. Save your arrays with "
                    "np.savez(FILE, train_images=..., train_labels=..., test_images=..., "
                    "test_labels=...).")
  try:
    with np.load(path) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, zlib.error) as e:
    raise DataError(f"npz:{path}: not a readable .npz file ({e}).") from None
  splits = {k[:-len("_images")]: (v, arrays.get(k[:-len("_images")] + "_labels"))
            for k, v in arrays.items() if k.endswith("_images")}
  if not splits:
    raise DataError(f"npz:{path}: holds {sorted(arrays)} but no <split>_images array "
                    "(e.g. train_images, with train_labels).")
  return _array_source(f"npz:{path}", splits)


def get_source(dataset: str, data_dir: str | None = None):
  """The source a `dataset` config string names (see the module docstring)."""
  if not dataset:
    raise DataError("config.dataset is empty; name a TFDS dataset, idx:DIR, folder:DIR or "
                    "digits.")
  if dataset == "digits":
    return load_digits()
  if dataset.startswith("idx:"):
    return load_idx_dir(os.path.expanduser(dataset[len("idx:"):]))
  if dataset.startswith("folder:"):
    return load_folder(os.path.expanduser(dataset[len("folder:"):]))
  if dataset.startswith("npz:"):
    return load_npz(os.path.expanduser(dataset[len("npz:"):]))
  if dataset.startswith("arrays:"):
    name = dataset[len("arrays:"):]
    if name not in _REGISTERED:
      raise DataError(f"No arrays registered as {name!r} (registered: "
                      f"{', '.join(sorted(_REGISTERED)) or 'none'}); call "
                      "jaxgan.data.register_arrays(NAME, {'train': (images, labels)}) first.")
    return _REGISTERED[name]
  return load_tfds(dataset, data_dir)
