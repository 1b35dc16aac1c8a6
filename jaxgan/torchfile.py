"""Reads a PyTorch state dict (`torch.save` file) into NumPy arrays, without torch.

Both of torch's formats are read: the zip archive (torch >= 1.6) and the
older sequence of pickles, which files such as pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth` use. Only tensors and the containers
around them are rebuilt; any other object in the pickle is refused, so an
untrusted file cannot run code.
"""

from __future__ import annotations

import collections
import io
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


class _Tensor:
  """A view of a storage, materialised once every storage has been read."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def to_numpy(self, storages: dict) -> np.ndarray:
    flat = storages[self.storage]
    item = flat.dtype.itemsize
    if not self.size:
      return np.array(flat[self.offset])
    return np.lib.stride_tricks.as_strided(
        flat[self.offset:], self.size, [s * item for s in self.stride]).copy()


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
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
    storage_type, key = pid[1], str(pid[2])
    if len(pid) > 5 and pid[5] is not None:
      raise TorchFileError("storage views are not supported")
    self.storages[key] = (storage_type.dtype, pid[4] if len(pid) > 4 else None)
    return key


def _materialise(obj, storages):
  if isinstance(obj, _Tensor):
    return obj.to_numpy(storages)
  if isinstance(obj, dict):
    return {k: _materialise(v, storages) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v, storages) for v in obj)
  return obj


def _load_zip(path: str):
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
      raise TorchFileError("zip file without data.pkl: not a torch.save file")
    prefix = pkl[0][:-len("data.pkl")]
    unpickler = _Unpickler(io.BytesIO(z.read(pkl[0])))
    obj = unpickler.load()
    byteorder = z.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
    storages = {}
    for key, (dtype, _) in unpickler.storages.items():
      storages[key] = np.frombuffer(z.read(f"{prefix}data/{key}"),
                                    dtype.newbyteorder("<" if byteorder == "little" else ">"))
  return obj, storages


def _load_legacy(f):
  magic = _Unpickler(f).load()
  if magic != _LEGACY_MAGIC:
    raise TorchFileError("not a torch.save file (bad magic number)")
  _Unpickler(f).load()  # protocol version
  sys_info = _Unpickler(f).load()
  if not sys_info.get("little_endian", True):
    raise TorchFileError("big-endian torch files are not supported")
  unpickler = _Unpickler(f)
  obj = unpickler.load()
  keys = _Unpickler(f).load()
  storages = {}
  for key in keys:
    dtype, _ = unpickler.storages[str(key)]
    (numel,) = struct.unpack("<q", f.read(8))
    data = f.read(numel * dtype.itemsize)
    if len(data) != numel * dtype.itemsize:
      raise TorchFileError("file is truncated")
    storages[str(key)] = np.frombuffer(data, dtype)
  return obj, storages


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """{name: array} from a `torch.save`d state dict (zip or legacy format)."""
  try:
    if zipfile.is_zipfile(path):
      obj, storages = _load_zip(path)
    else:
      with open(path, "rb") as f:
        obj, storages = _load_legacy(f)
  except TorchFileError as e:
    raise TorchFileError(f"{path}: {e}") from None
  except (pickle.UnpicklingError, EOFError, KeyError, struct.error, zipfile.BadZipFile) as e:
    raise TorchFileError(f"{path}: not a readable torch.save file ({e})") from None
  obj = _materialise(obj, storages)
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise TorchFileError(f"{path}: holds a {type(obj).__name__}, not a state dict")
  return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
