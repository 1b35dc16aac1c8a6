"""Reads a PyTorch state dict (`torch.save` file) into NumPy arrays, without torch.

Both of torch's formats are read: the zip archive (torch >= 1.6) and the
older sequence of pickles, which files such as pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth` use. Only tensors and the containers
around them are rebuilt; any other object in the pickle is refused, so an
untrusted file cannot run code. Every field of every tensor (storage type,
shape, strides, offset, the storage's size, byte order) is checked against
the bytes the file holds before any array is built, so a crafted file cannot
read memory it does not own either: whatever a file holds, `load_state_dict`
returns arrays or raises `TorchFileError` naming the file (and the tensor),
never another exception (tests/test_untrusted_files.py fuzzes it).
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile

import numpy as np

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class TorchFileError(ValueError):
  pass


class _StorageType:
  def __init__(self, name: str):
    if name not in _DTYPES:
      raise TorchFileError(f"unsupported tensor storage type torch.{name}")
    self.dtype = np.dtype(_DTYPES[name])


# The most elements one tensor may claim (2**36: 256 GiB of float32), so that
# shape arithmetic stays far from overflow; real checkpoints are far smaller.
_MAX_ELEMENTS = 2 ** 36


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _int_tuple(x, what: str) -> tuple[int, ...]:
  if not isinstance(x, (tuple, list)) or not all(_is_int(v) for v in x):
    raise TorchFileError(f"tensor {what} {x!r} is not a tuple of integers")
  return tuple(x)


class _Tensor:
  """A view of a storage, materialised once every storage has been read."""

  def __init__(self, storage, offset, size, stride):
    if not isinstance(storage, str):
      raise TorchFileError(f"tensor storage {storage!r} is not a storage of the file")
    if not _is_int(offset) or offset < 0:
      raise TorchFileError(f"tensor storage offset {offset!r} is not a non-negative integer")
    self.storage, self.offset = storage, offset
    self.size, self.stride = _int_tuple(size, "shape"), _int_tuple(stride, "strides")
    if len(self.size) != len(self.stride):
      raise TorchFileError(f"tensor shape {self.size} and strides {self.stride} differ in "
                           "length")
    if any(n < 0 for n in self.size) or any(s < 0 for s in self.stride):
      raise TorchFileError(f"tensor shape {self.size} or strides {self.stride} are negative")
    if math.prod(self.size) > _MAX_ELEMENTS:
      raise TorchFileError(f"tensor shape {self.size} claims more than {_MAX_ELEMENTS} "
                           "elements")

  def to_numpy(self, storages: dict) -> np.ndarray:
    if self.storage not in storages:
      raise TorchFileError(f"tensor storage {self.storage!r} is not in the file")
    flat = storages[self.storage]
    if 0 in self.size:
      return np.zeros(self.size, flat.dtype)
    # The last element the view reads must lie inside the storage.
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if last >= len(flat):
      raise TorchFileError(
          f"tensor of shape {self.size}, strides {self.stride} and offset {self.offset} reads "
          f"element {last} of a storage of {len(flat)} elements")
    item = flat.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[self.offset:], self.size, [s * item for s in self.stride], writeable=False).copy()


def _rebuild_tensor(storage=None, storage_offset=None, size=None, stride=None, *unused):
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
  return data


class _Unpickler(pickle.Unpickler):
  """Allows only what a state dict needs; storages become keys, read later."""

  _ALLOWED = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
      ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
      ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  }

  def __init__(self, file):
    super().__init__(file)
    self.storages = {}  # key -> (dtype, numel or None)

  def find_class(self, module, name):
    if (module, name) in self._ALLOWED:
      return self._ALLOWED[(module, name)]
    if module == "torch" and name.endswith("Storage"):
      return _StorageType(name)
    raise TorchFileError(f"refusing to load {module}.{name}: not part of a tensor state dict")

  def persistent_load(self, pid):
    # ('storage', storage_type, key, location, numel[, view_metadata])
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise TorchFileError(f"unexpected persistent id {pid!r}")
    if len(pid) < 3 or not isinstance(pid[1], _StorageType):
      raise TorchFileError(f"persistent id {pid!r} does not name a tensor storage type")
    storage_type, key = pid[1], pid[2]
    if not isinstance(key, (str, int)) or isinstance(key, bool):
      raise TorchFileError(f"storage key {key!r} is not a string")
    key = str(key)
    if len(pid) > 5 and pid[5] is not None:
      raise TorchFileError("storage views are not supported")
    numel = pid[4] if len(pid) > 4 else None
    if numel is not None and (not _is_int(numel) or numel < 0):
      raise TorchFileError(f"storage {key} claims {numel!r} elements")
    if key in self.storages and self.storages[key][0] != storage_type.dtype:
      raise TorchFileError(f"storage {key} is given two dtypes")
    self.storages[key] = (storage_type.dtype, numel)
    return key


def _materialise(obj, storages, name: str = ""):
  try:
    if isinstance(obj, _Tensor):
      return obj.to_numpy(storages)
  except TorchFileError as e:
    raise TorchFileError(f"{name or 'a tensor'}: {e}") from None
  if isinstance(obj, dict):
    return {k: _materialise(v, storages, f"{name}.{k}" if name else str(k))
            for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v, storages, f"{name}[{i}]") for i, v in enumerate(obj))
  return obj


def _storage_array(data: bytes, dtype: np.dtype, numel, key: str) -> np.ndarray:
  """A storage's bytes as a flat array, after checking they hold whole
  elements and as many as the pickle says."""
  if len(data) % dtype.itemsize:
    raise TorchFileError(f"storage {key} holds {len(data)} bytes, not a whole number of "
                         f"{dtype.itemsize}-byte {dtype.name} elements")
  if numel is not None and len(data) != numel * dtype.itemsize:
    raise TorchFileError(f"storage {key} holds {len(data) // dtype.itemsize} elements, "
                         f"its header says {numel}")
  return np.frombuffer(data, dtype)


# A compressed zip member may expand at most this much (torch.save stores
# members uncompressed), so that a small file cannot claim gigabytes.
_MAX_EXPANSION = 100


def _load_zip(path: str):
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
      raise TorchFileError("zip file without data.pkl: not a torch.save file")
    for info in z.infolist():
      if (info.compress_type != zipfile.ZIP_STORED
          and info.file_size > _MAX_EXPANSION * info.compress_size + 2 ** 20):
        raise TorchFileError(f"zip member {info.filename} expands {info.compress_size} bytes "
                             f"to {info.file_size}: refused as a zip bomb")
    prefix = pkl[0][:-len("data.pkl")]
    unpickler = _Unpickler(io.BytesIO(z.read(pkl[0])))
    obj = unpickler.load()
    byteorder = z.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
    if byteorder not in ("little", "big"):
      raise TorchFileError(f"byteorder {byteorder[:20]!r} is neither 'little' nor 'big'")
    storages = {}
    for key, (dtype, numel) in unpickler.storages.items():
      member = f"{prefix}data/{key}"
      if member not in names:
        raise TorchFileError(f"storage {key} ({member}) is missing from the archive")
      order = dtype.newbyteorder("<" if byteorder == "little" else ">")
      storages[key] = _storage_array(z.read(member), order, numel, key)
  return obj, storages


def _load_legacy(f):
  magic = _Unpickler(f).load()
  if magic != _LEGACY_MAGIC:
    raise TorchFileError("not a torch.save file (bad magic number)")
  _Unpickler(f).load()  # protocol version
  sys_info = _Unpickler(f).load()
  if not isinstance(sys_info, dict):
    raise TorchFileError("its system-information record is not a dict")
  if not sys_info.get("little_endian", True):
    raise TorchFileError("big-endian torch files are not supported")
  unpickler = _Unpickler(f)
  obj = unpickler.load()
  keys = _Unpickler(f).load()
  if not isinstance(keys, list):
    raise TorchFileError("its list of storage keys is not a list")
  size = os.fstat(f.fileno()).st_size
  storages = {}
  for key in keys:
    if str(key) not in unpickler.storages:
      raise TorchFileError(f"storage {key!r} is listed but no tensor uses it")
    dtype, header_numel = unpickler.storages[str(key)]
    (numel,) = struct.unpack("<q", f.read(8))
    if numel < 0 or numel * dtype.itemsize > size - f.tell():
      raise TorchFileError(f"storage {key} claims {numel} elements; the file is truncated "
                           "or damaged")
    storages[str(key)] = _storage_array(f.read(numel * dtype.itemsize), dtype, header_numel,
                                        str(key))
  return obj, storages


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """{name: array} from a `torch.save`d state dict (zip or legacy format)."""
  try:
    if zipfile.is_zipfile(path):
      obj, storages = _load_zip(path)
    else:
      with open(path, "rb") as f:
        obj, storages = _load_legacy(f)
    obj = _materialise(obj, storages)
  except TorchFileError as e:
    raise TorchFileError(f"{path}: {e}") from None
  except OSError as e:
    raise TorchFileError(f"{path}: cannot be read ({e.strerror or e})") from None
  except Exception as e:  # noqa: BLE001 - any other failure of a damaged file's parse
    # (pickle, zip, struct and the containers a crafted pickle builds raise
    # many types) is the same one-line error.
    raise TorchFileError(f"{path}: not a readable torch.save file ({type(e).__name__}: "
                         f"{str(e)[:200]})") from None
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise TorchFileError(f"{path}: holds a {type(obj).__name__}, not a state dict")
  return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
