"""cifar10:PATH, CIFAR-10 from its official files (no TFDS, no network).

PATH is any of the official downloads, as distributed:
- `cifar-10-batches-bin/` (extracted `cifar-10-binary.tar.gz`): records of 1
  label byte and 3,072 pixel bytes (the red, green and blue 32x32 planes,
  row-major), `batches.meta.txt` with the class names;
- `cifar-10-binary.tar.gz` itself, read in memory without extracting;
- `cifar-10-batches-py/` (extracted `cifar-10-python.tar.gz`) or that archive:
  pickled dicts, read by `safe_unpickle`, which accepts only what the official
  batches hold (a dict, bytes or str, ints, lists and one uint8 array) and
  refuses any other pickle content before building an object: a file can
  never run code;
- a folder holding one of the above (e.g. `cifar10:~/data/cifar10`).

Splits: `train` (data_batch_1 ... data_batch_5, in order) and `test`
(test_batch), where present; record counts follow from the file sizes.
Every file is read and checked when the source is opened: a size that is not
a whole number of records, a label outside 0-9, a missing batch or a damaged
archive is a `DataError` naming the file.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import tarfile
import zlib

import numpy as np

from jaxgan.data.arrays import ArraySource
from jaxgan.data.base import DataError

RECORD = 1 + 32 * 32 * 3
NUM_CLASSES = 10
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BINARY_DIR, PYTHON_DIR = "cifar-10-batches-bin", "cifar-10-batches-py"
ARCHIVES = {"cifar-10-binary.tar.gz": BINARY_DIR, "cifar-10-python.tar.gz": PYTHON_DIR}


def load_cifar10(path: str) -> ArraySource:
  """The CIFAR-10 source at `path` (see the module docstring)."""
  files, where = _files(path)
  binary = any(name.endswith(".bin") for name in files)
  suffix = ".bin" if binary else ""
  images, labels = {}, {}
  train = [b for b in TRAIN_BATCHES if b + suffix in files]
  if train and len(train) < len(TRAIN_BATCHES):
    missing = [b + suffix for b in TRAIN_BATCHES if b not in train]
    raise DataError(f"cifar10:{path}: {', '.join(missing)} is missing from {where} (the "
                    "train split is data_batch_1 ... data_batch_5). Download the dataset again.")
  splits = {"train": train, "test": [TEST_BATCH] if TEST_BATCH + suffix in files else []}
  for split, batches in splits.items():
    if not batches:
      continue
    parts = [(_read_binary if binary else _read_python)(files[b + suffix], f"{where}/{b}{suffix}")
             for b in batches]
    images[split] = np.concatenate([x for x, _ in parts])
    labels[split] = np.concatenate([y for _, y in parts])
  if not images:
    raise DataError(f"cifar10:{path}: no CIFAR-10 batches in {where} (expected "
                    f"data_batch_1{suffix or '.bin'} ... data_batch_5 and/or test_batch, "
                    f"from {' or '.join(ARCHIVES)}).")
  names = _class_names(files, binary, where)
  return ArraySource(f"cifar10:{path}", images, labels, class_names=names)


def _files(path: str) -> tuple[dict[str, bytes], str]:
  """{file name: bytes} of the batch folder or archive at `path`, and where
  they came from (for messages)."""
  if os.path.isfile(path):
    return _archive(path), path
  if not os.path.isdir(path):
    raise DataError(f"cifar10: {path!r} does not exist. Point --config.dataset=cifar10:PATH at "
                    f"{BINARY_DIR}/, {PYTHON_DIR}/ or one of {', '.join(ARCHIVES)}.")
  for sub in (BINARY_DIR, PYTHON_DIR):
    if os.path.isdir(os.path.join(path, sub)):
      return _files(os.path.join(path, sub))
  for archive in ARCHIVES:
    if os.path.isfile(os.path.join(path, archive)):
      return _files(os.path.join(path, archive))
  wanted = set(TRAIN_BATCHES + (TEST_BATCH, "batches.meta"))
  files = {}
  for name in sorted(os.listdir(path)):
    if name in wanted or name.removesuffix(".bin") in wanted or name == "batches.meta.txt":
      with open(os.path.join(path, name), "rb") as f:
        files[name] = f.read()
  return files, path


def _archive(path: str) -> dict[str, bytes]:
  try:
    with tarfile.open(path, "r:*") as tar:
      files = {}
      for member in tar.getmembers():
        if member.isfile():
          files[os.path.basename(member.name)] = tar.extractfile(member).read()
      return files
  except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
    raise DataError(f"cifar10:{path}: not a readable CIFAR-10 archive ({e}). Download "
                    f"{os.path.basename(path)} again.") from None


def _read_binary(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
  if not raw or len(raw) % RECORD:
    raise DataError(f"{where}: {len(raw)} bytes is not a whole number of {RECORD}-byte CIFAR-10 "
                    "records (truncated or not a CIFAR-10 batch). Download it again.")
  records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
  return _checked(records[:, 1:], records[:, 0], where)


def _checked(pixels: np.ndarray, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
  """[N, 3072] planes (R, G, B, each row-major) -> uint8 [N, 32, 32, 3], labels int64."""
  labels = np.asarray(labels, np.int64)
  bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
  if bad.size:
    raise DataError(f"{where}: record {bad[0]} has label {labels[bad[0]]}, outside 0-9 (a "
                    "damaged or foreign file).")
  images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def _read_python(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
  batch = safe_unpickle(raw, where)
  data, labels = _key(batch, "data", where), _key(batch, "labels", where)
  if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
      or data.shape[1] != RECORD - 1):
    raise DataError(f"{where}: 'data' is not a uint8 array [N, 3072] (a foreign file).")
  if not isinstance(labels, list) or len(labels) != len(data) or not all(
      isinstance(v, int) for v in labels):
    raise DataError(f"{where}: 'labels' is not a list of {len(data)} integers (a foreign file).")
  return _checked(data, labels, where)


def _key(batch, name: str, where: str):
  if not isinstance(batch, dict):
    raise DataError(f"{where}: holds a {type(batch).__name__}, not a CIFAR-10 batch (a dict).")
  for key in (name, name.encode()):
    if key in batch:
      return batch[key]
  raise DataError(f"{where}: no {name!r} entry (keys: {sorted(map(str, batch))}).")


def _class_names(files: dict[str, bytes], binary: bool, where: str) -> list[str] | None:
  if binary and "batches.meta.txt" in files:
    names = [n.strip() for n in files["batches.meta.txt"].decode("utf-8", "replace").splitlines()]
    names = [n for n in names if n]
  elif not binary and "batches.meta" in files:
    names = _key(safe_unpickle(files["batches.meta"], f"{where}/batches.meta"), "label_names",
                 f"{where}/batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
  else:
    return None
  return names if len(names) == NUM_CLASSES else None


# -- pickles that cannot run code ------------------------------------------------------

# The only callables an official batch's pickle names: numpy's array
# reconstruction (numpy 1 and 2 spellings; `_frombuffer` where a batch was
# re-saved at protocol 5) and, in pickles written by Python 3 at protocol 2,
# the bytes encoder. Their results are then checked to be what a batch holds.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})
# Opcodes that build objects by other means (class instances, extensions,
# persistent ids) or that official batches never contain.
_REFUSED_OPCODES = frozenset({"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
                              "PERSID", "BINPERSID", "NEXT_BUFFER",
                              "READONLY_BUFFER"})
_STRINGS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                      "STRING", "BINSTRING", "SHORT_BINSTRING"})


def _check_pickle(raw: bytes, where: str) -> None:
  """Refuses a pickle that names anything outside `_ALLOWED_GLOBALS` or uses
  an opcode of `_REFUSED_OPCODES`, from its opcodes alone (nothing is built)."""
  recent = collections.deque(maxlen=2)  # the last two pushes: a string, or None for anything else
  memo: dict = {}  # memo index -> what was stored there (STACK_GLOBAL often reads it)
  try:
    for op, arg, _ in pickletools.genops(raw):
      name = op.name
      if name in _REFUSED_OPCODES:
        raise DataError(f"{where}: the pickle uses {name}, which CIFAR-10 batches never do; "
                        "refused without loading it.")
      if name in ("GLOBAL", "STACK_GLOBAL"):
        if name == "GLOBAL":
          module, _, attr = str(arg).partition(" ")
          target = (module, attr)
        else:
          target = tuple(recent) if len(recent) == 2 else (None, None)
        if target not in _ALLOWED_GLOBALS:
          raise DataError(f"{where}: the pickle names {'.'.join(map(str, target))}, which "
                          "CIFAR-10 batches never do; refused without loading it (a pickle "
                          "can run code).")
        recent.append(None)
      elif name in _STRINGS:
        recent.append(arg if isinstance(arg, str) else None)
      elif name == "MEMOIZE":
        memo[len(memo)] = recent[-1] if recent else None
      elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[arg] = recent[-1] if recent else None
      elif name in ("GET", "BINGET", "LONG_BINGET"):
        recent.append(memo.get(arg))
      elif name != "FRAME":
        recent.append(None)
  except DataError:
    raise
  except (ValueError, EOFError) as e:  # pickletools' errors on a damaged stream
    raise DataError(f"{where}: not a readable pickle ({e}). Download it again.") from None


class _AllowListUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if (module, name) not in _ALLOWED_GLOBALS:  # a second guard behind _check_pickle
      raise pickle.UnpicklingError(f"refused global {module}.{name}")
    return super().find_class(module, name)


def safe_unpickle(raw: bytes, where: str):
  """The object a CIFAR-10 python-format file pickles, or a DataError naming
  the file: its opcodes and the callables it names are checked against what
  the official batches contain before anything is unpickled."""
  _check_pickle(raw, where)
  try:
    return _AllowListUnpickler(io.BytesIO(raw), encoding="bytes").load()
  except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError) as e:
    raise DataError(f"{where}: not a readable CIFAR-10 batch ({e}).") from None
