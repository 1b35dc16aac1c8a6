"""Untrusted and careless input: crafted and damaged weights files (.pth,
.h5), IDX files and images end in the reader's own one-line error, never a
crash, another exception type or a read outside the file's bytes; image
bombs are refused from the header; one run owns its directory.

The `.pth` files are written here without torch, by a small pickler that
emits what `torch.save` emits (the zip archive and the legacy pickle
sequence), so each field can be set to what an attacker would choose."""

import collections
import gzip
import io
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest

from experiments import dcgan
from experiments.configs.dcgan import get_config as dcgan_config
from conftest import TINY_DCGAN
from jaxgan import images, torchfile
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data, DataError
from jaxgan.data.arrays import read_idx
from jaxgan.runlock import RunLock, RunLockedError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARRAYS = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
          "conv.bias": np.array([0.5, -1.0], np.float32),
          "steps": np.array(7, np.int64)}


# --- a torch.save writer without torch ----------------------------------------

_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage"}


class _Global:
  """A GLOBAL opcode `module name` (callable, as pickle wants of a reduce)."""

  def __init__(self, module, name):
    self.module, self.name = module, name

  def __call__(self, *args):
    raise AssertionError("only pickled, never called")


class _Storage:
  def __init__(self, key, type_name, numel):
    self.key, self.type_name, self.numel = key, type_name, numel


class _Tensor:
  def __init__(self, *args):
    self.args = args + (False, collections.OrderedDict())

  def __reduce__(self):
    return _Global("torch._utils", "_rebuild_tensor_v2"), self.args


class _Pickler(pickle._Pickler):
  dispatch = dict(pickle._Pickler.dispatch)

  def _save_global(self, obj):
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    self.memoize(obj)

  dispatch[_Global] = _save_global

  def persistent_id(self, obj):
    if isinstance(obj, _Storage):
      return ("storage", _Global("torch", obj.type_name), obj.key, "cpu", obj.numel)
    return None


def _dumps(obj) -> bytes:
  f = io.BytesIO()
  _Pickler(f, protocol=2).dump(obj)
  return f.getvalue()


def _state(arrays: dict, override: dict):
  """(the pickled state dict's object, {storage key: bytes}); `override`:
  {name: dict of tensor fields (offset, size, stride, numel, type) to forge}."""
  obj, blobs = collections.OrderedDict(), {}
  for i, (name, a) in enumerate(arrays.items()):
    a = np.ascontiguousarray(a)
    fields = dict(offset=0, size=a.shape, stride=tuple(s // a.itemsize for s in a.strides),
                  numel=a.size, type=_STORAGE_NAMES[a.dtype])
    fields.update(override.get(name, {}))
    storage = _Storage(str(i), fields["type"], fields["numel"])
    obj[name] = _Tensor(storage, fields["offset"], fields["size"], fields["stride"])
    blobs[str(i)] = a.tobytes()
  return obj, blobs


def write_zip(path, arrays=ARRAYS, override={}, byteorder="little", pkl=None) -> bytes:
  obj, blobs = _state(arrays, override)
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", _dumps(obj) if pkl is None else pkl)
    z.writestr("archive/byteorder", byteorder)
    for key, b in blobs.items():
      z.writestr(f"archive/data/{key}", b)
  return _dumps(obj)


def write_legacy(path, arrays=ARRAYS, override={}, numels=None):
  obj, blobs = _state(arrays, override)
  with open(path, "wb") as f:
    for record in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001,
                                                   "little_endian": True}, obj, list(blobs)):
      f.write(_dumps(record))
    for i, (key, b) in enumerate(blobs.items()):
      a = list(arrays.values())[i]
      f.write(struct.pack("<q", a.size if numels is None else numels[i]) + b)


@pytest.mark.parametrize("write", [write_zip, write_legacy])
def test_the_writer_makes_files_the_reader_reads_exactly(tmp_path, write):
  write(tmp_path / "ok.pth")
  loaded = torchfile.load_state_dict(str(tmp_path / "ok.pth"))
  assert set(loaded) == set(ARRAYS)
  for k, v in ARRAYS.items():
    assert loaded[k].dtype == v.dtype
    np.testing.assert_array_equal(loaded[k], v)


# Each forged field, and what the error names.
FORGED = [
    ({"conv.bias": dict(size=(4096,), stride=(1,))}, r"conv\.bias: .*reads element 4095 of a "
                                                     r"storage of 2"),
    ({"conv.bias": dict(size=(2,), offset=1)}, r"conv\.bias: .*reads element 2"),
    ({"conv.bias": dict(size=(2,), stride=(10**12,))}, "conv.bias"),
    ({"conv.bias": dict(offset=-1)}, "offset -1"),
    ({"conv.bias": dict(stride=(-1,))}, "negative"),
    ({"conv.bias": dict(size=(-2,))}, "negative"),
    ({"conv.bias": dict(size=(2, 1), stride=(1,))}, "differ in length"),
    ({"conv.bias": dict(size=("2",))}, "not a tuple of integers"),
    ({"conv.bias": dict(size=(2**40, 2**40), stride=(0, 0))}, "more than"),
    ({"conv.bias": dict(numel=5)}, "storage 1 holds 2 elements, its header says 5"),
    ({"conv.bias": dict(type="PythonStorage")}, "unsupported tensor storage type"),
]


@pytest.mark.parametrize("write", [write_zip, write_legacy])
@pytest.mark.parametrize("override,message", FORGED)
def test_forged_tensor_fields_are_refused_naming_the_tensor(tmp_path, write, override, message):
  path = tmp_path / "forged.pth"
  write(path, override=override)
  with pytest.raises(torchfile.TorchFileError, match=message) as e:
    torchfile.load_state_dict(str(path))
  assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_forged_archives_are_refused(tmp_path):
  cases = {}
  write_zip(tmp_path / "order.pth", byteorder="middle")
  cases["order.pth"] = "neither 'little' nor 'big'"
  with zipfile.ZipFile(tmp_path / "missing.pth", "w") as z:
    z.writestr("archive/data.pkl", _dumps(_state(ARRAYS, {})[0]))
  cases["missing.pth"] = "missing from the archive"
  with zipfile.ZipFile(tmp_path / "bomb.pth", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", _dumps(_state(ARRAYS, {})[0]))
    z.writestr("archive/data/0", bytes(64 * 2**20))  # 64 MiB of zeros in ~64 KiB
  cases["bomb.pth"] = "zip bomb"
  write_legacy(tmp_path / "numel.pth", numels=[2**50, 2, 1])
  cases["numel.pth"] = "truncated or damaged"
  write_legacy(tmp_path / "negative.pth", numels=[-1, 2, 1])
  cases["negative.pth"] = "claims -1 elements"
  for name, message in cases.items():
    with pytest.raises(torchfile.TorchFileError, match=message):
      torchfile.load_state_dict(str(tmp_path / name))


def _check_reader(read, path: str, error, cases, budget_s: float = 5.0) -> int:
  """Writes each of `cases` (bytes) to `path` and reads it: an array result
  or `error`, never another exception, each within `budget_s`. Returns how
  many were refused."""
  refused = 0
  for data in cases:
    with open(path, "wb") as f:
      f.write(data)
    start = time.time()
    try:
      read(path)
    except error as e:
      assert "\n" not in str(e).strip(), str(e)
      refused += 1
    assert time.time() - start < budget_s
  return refused


def _mutations(raw: bytes, rng, n: int):
  """Truncations, 1-8 flipped bits, and spliced runs of 0x00/0xff bytes."""
  for i in range(n):
    kind = i % 3
    if kind == 0:
      yield raw[:rng.integers(0, len(raw))]
    elif kind == 1:
      b = bytearray(raw)
      for pos in rng.integers(0, len(b), rng.integers(1, 9)):
        b[pos] ^= 1 << int(rng.integers(0, 8))
      yield bytes(b)
    else:
      b = bytearray(raw)
      pos, length = int(rng.integers(0, len(b))), int(rng.integers(1, 9))
      b[pos:pos + length] = bytes([int(rng.choice([0, 255]))]) * length
      yield bytes(b)


def test_fuzzed_torch_files_end_in_torchfileerror(tmp_path):
  rng = np.random.default_rng(0)
  path = str(tmp_path / "fuzz.pth")
  write_legacy(tmp_path / "legacy.pth")
  legacy = (tmp_path / "legacy.pth").read_bytes()
  pkl = write_zip(tmp_path / "zip.pth")
  archive = (tmp_path / "zip.pth").read_bytes()

  def rezipped(pickles):  # the pickle damaged inside an intact archive
    for p in pickles:
      write_zip(tmp_path / "z.pth", pkl=p)
      yield (tmp_path / "z.pth").read_bytes()

  read = torchfile.load_state_dict
  refused = _check_reader(read, path, torchfile.TorchFileError, _mutations(legacy, rng, 300))
  refused += _check_reader(read, path, torchfile.TorchFileError, _mutations(archive, rng, 150))
  refused += _check_reader(read, path, torchfile.TorchFileError,
                           rezipped(_mutations(pkl, rng, 300)))
  assert refused > 400  # most damage is seen (some flips only change values)


def test_a_crafted_pth_is_one_line_from_the_command(tmp_path):
  """The 257-byte file of the report (a tensor over a too-small storage)
  through `experiments.recognize`: exit 1 and one error line, no crash."""
  weights = tmp_path / "evil.pth"
  write_zip(weights, arrays={"features.0.weight": np.zeros(1, np.float32)},
            override={"features.0.weight": dict(size=(64, 3, 3, 3), stride=(27, 9, 3, 1))})
  image = tmp_path / "x.png"
  from PIL import Image
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
  proc = subprocess.run([sys.executable, "-m", "experiments.recognize", str(image),
                         f"--weights={weights}"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 1, proc.stderr[-2000:]
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith("error: ") and str(weights) in lines[-1]
  assert "features.0.weight" in lines[-1] and "Traceback" not in proc.stderr


# --- IDX, HDF5, images ----------------------------------------------------------

def _idx_bytes(array: np.ndarray) -> bytes:
  return (bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
          + array.astype(np.uint8).tobytes())


def test_fuzzed_and_bomb_idx_files_end_in_dataerror(tmp_path):
  rng = np.random.default_rng(1)
  raw = _idx_bytes(rng.integers(0, 256, (6, 5, 4)))
  path = str(tmp_path / "f-idx3-ubyte")
  cases = list(_mutations(raw, rng, 200)) + list(_mutations(gzip.compress(raw), rng, 200))
  assert _check_reader(read_idx, path, DataError, cases) > 200  # flips in pixels stay valid
  # A header claiming 2**96 bytes, and a gzip bomb (256 MiB of zeros claiming
  # 120 bytes): refused at once, without decompressing it all.
  huge = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
  bomb = gzip.compress(raw[:4 + 12] + bytes(2**28), compresslevel=1)
  start = time.time()
  with pytest.raises(DataError, match="claims"):
    _check_reader(read_idx, path, (), [huge])
  with pytest.raises(DataError, match="more than 136"):
    _check_reader(read_idx, path, (), [bomb])
  assert time.time() - start < 5


# One process per case batch: a crash inside the HDF5 C library must fail
# this test, not end pytest.
_H5_FUZZ = """
import sys, numpy as np
from jaxgan.models import vgg
path, cases = sys.argv[1], np.load(sys.argv[2])
refused = 0
for i in range(len(cases.files)):
  with open(path, "wb") as f:
    f.write(cases[f"c{i}"].tobytes())
  try:
    vgg._keras_arrays(path, 16)
  except vgg.WeightsFileError as e:
    assert "\\n" not in str(e), str(e)
    refused += 1
print("refused", refused)
"""


def test_fuzzed_h5_files_end_in_weightsfileerror(tmp_path):
  h5py = pytest.importorskip("h5py")
  good = tmp_path / "good.h5"
  with h5py.File(good, "w") as f:
    f.attrs["layer_names"] = [b"block1_conv1", b"fc1"]
    for name in ("block1_conv1", "fc1"):
      g = f.create_group(name)
      g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
      g.create_dataset(f"{name}/kernel:0", data=np.ones((3, 3, 3, 4), np.float32))
      g.create_dataset(f"{name}/bias:0", data=np.zeros(4, np.float32))
  from jaxgan.models import vgg
  assert set(vgg._keras_arrays(str(good), 16)) == {"conv1_1", "fc6"}
  one = tmp_path / "one.h5"  # one array in a layer: the report's "not enough values to unpack"
  with h5py.File(one, "w") as f:
    f.attrs["layer_names"] = [b"fc1"]
    f.create_group("fc1").attrs["weight_names"] = [b"fc1/kernel:0"]
    f["fc1"].create_dataset("fc1/kernel:0", data=np.ones(3, np.float32))
  with pytest.raises(vgg.WeightsFileError, match="'fc1' holds 1 arrays"):
    vgg._keras_arrays(str(one), 16)
  rng = np.random.default_rng(2)
  raw = good.read_bytes()
  cases = {f"c{i}": np.frombuffer(c, np.uint8) for i, c in enumerate(_mutations(raw, rng, 150))}
  np.savez(tmp_path / "cases.npz", **cases)
  proc = subprocess.run([sys.executable, "-c", _H5_FUZZ, str(tmp_path / "fuzz.h5"),
                         str(tmp_path / "cases.npz")], cwd=REPO, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert int(proc.stdout.split()[-1]) > 30


def _png_header(width: int, height: int) -> bytes:
  """A PNG that claims width x height grey pixels and holds almost nothing
  (what a decompression bomb's header says)."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                             0, 0, 0))
          + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_fuzzed_images_end_in_imagefileerror(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(3)
  pixels = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
  path = str(tmp_path / "img")
  for fmt in ("PNG", "JPEG"):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    raw = buf.getvalue()
    for read in (lambda p: images.read_image(p, "RGB"), images.check_image_header):
      assert _check_reader(read, path, images.ImageFileError, _mutations(raw, rng, 150)) > 30


def test_image_bombs_are_refused_from_the_header_by_every_reader(tmp_path, monkeypatch):
  from jaxgan.evaluation import load_samples
  from jaxgan.restoration.masks import make_mask
  from jaxgan.texture.image_files import ImageError, load_image
  bomb = tmp_path / "data" / "bomb.png"
  bomb.parent.mkdir()
  bomb.write_bytes(_png_header(13000, 13000))  # 169 megapixels in 80 bytes
  limit = r"13000x13000 image .* over the limit of 67 megapixels.*--max_image_pixels"
  start = time.time()
  with pytest.raises(images.ImageFileError, match=limit):
    images.read_image(str(bomb), "RGB")
  with pytest.raises(ImageError, match=limit):  # texture, style transfer, recognize
    load_image(str(bomb))
  with pytest.raises(ValueError, match=limit):  # inpainting masks
    make_mask(str(bomb), 64)
  with pytest.raises(DataError, match=limit):  # --samples
    load_samples(str(bomb.parent))
  config = dcgan_config()
  config.dataset = f"folder:{bomb.parent}"
  with pytest.raises(DataError, match=f"folder:.*{limit}"):  # datasets, before training
    Data(config).source
  assert time.time() - start < 5
  # Pillow's own guard: an error (not a warning) only at twice its limit; a
  # 30000x30000 header is the one-line error too.
  bomb.write_bytes(_png_header(30000, 30000))
  with pytest.raises(images.ImageFileError, match=r"900000000 pixels.*--max_image_pixels"):
    images.read_image(str(bomb))
  # Raised by the environment (what --max_image_pixels sets): then it is
  # decoded, and this one's missing pixels are the error.
  monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, str(30000 * 30000))
  with pytest.raises(images.ImageFileError, match="not a readable image"):
    images.read_image(str(bomb))
  monkeypatch.setenv(images.MAX_IMAGE_PIXELS_ENV, "lots")
  with pytest.raises(images.ImageFileError, match="not a positive whole number"):
    images.read_image(str(bomb))


# --- one run per directory ------------------------------------------------------

def test_a_second_run_on_a_directory_is_refused_and_a_killed_one_releases_it(tmp_path):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  config = dcgan_config()
  config.update(dict(dataset="digits", batch_size=16, num_train_steps=2, log_every_steps=1,
                     checkpoint_every_steps=2, sample_every_steps=1000, eval_every_steps=0,
                     **TINY_DCGAN))
  with RunLock(workdir):
    with pytest.raises(RunLockedError, match=f"in use by another training run \\(pid "
                                             f"{os.getpid()} on "):
      dcgan.train_and_evaluate(config, workdir)
    assert sorted(os.listdir(workdir)) == [".lock"]  # nothing written
    # The command: one line, exit 1.
    proc = subprocess.run([sys.executable, "-m", "experiments.dcgan", "--workdir", workdir,
                           "--config.dataset=digits"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(
        f"error: {workdir} is in use by another training run (pid {os.getpid()}")
  # A holder killed with SIGKILL leaves no stale lock.
  holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                             "from jaxgan.runlock import RunLock\n"
                             "lock = RunLock(sys.argv[1]); print('held', flush=True)\n"
                             "time.sleep(300)", workdir], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError, match=f"pid {holder.pid} "):
      RunLock(workdir)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
  result = dcgan.train_and_evaluate(config, workdir)
  assert result.step == 2
  with RunLock(workdir):  # released at the end of the run
    pass


# --- a damaged checkpoint, read by the commands that restore runs ---------------

@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_restoring_a_run_falls_back_from_a_damaged_newest_checkpoint(tmp_path, capsys):
  """`jaxgan.runs.restore` (evaluate, sample grids, extractors, ...) uses
  the newest checkpoint that restores, as training resumes, but moves
  nothing (a training may be running); an asked-for damaged step is one
  line naming it."""
  import glob
  import gc
  from jaxgan import runs
  workdir = str(tmp_path / "run")
  config = dcgan_config()
  config.update(dict(dataset="digits", batch_size=16, num_train_steps=4, log_every_steps=2,
                     checkpoint_every_steps=2, sample_every_steps=1000, eval_every_steps=0,
                     keep_checkpoints=3, **TINY_DCGAN))
  dcgan.train_and_evaluate(config, workdir)
  data = max(glob.glob(os.path.join(workdir, "checkpoints", "4", "**", "d", "*"),
                       recursive=True), key=os.path.getsize)
  with open(data, "r+b") as f:
    f.truncate(10)
  capsys.readouterr()
  run = runs.restore(workdir, expect="gan")
  assert run.step == 2
  out = capsys.readouterr().out
  assert "Checkpoint step 4" in out and "used step 2 instead" in out
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  with pytest.raises(ValueError, match=r"Checkpoint step 4 in .* cannot be restored") as e:
    runs.restore(workdir, 4)
  assert "\n" not in str(e.value) and len(str(e.value)) < 600
  gc.collect()


# --- a full disk ------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
  """A 4 MiB tmpfs (where this user may mount one; skipped elsewhere)."""
  mount = tmp_path / "disk"
  mount.mkdir()
  proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                        capture_output=True, text=True)
  if proc.returncode:
    pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()[:100]})")
  try:
    yield mount
  finally:
    subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax's reads
def test_a_full_disk_is_one_line_naming_the_failed_save_and_the_last_good_one(small_disk):
  """A run checkpoints step 2; then the disk fills up (a ballast file leaves
  100 KB, less than a checkpoint) and the resumed run's next save fails."""
  workdir = str(small_disk / "run")
  fields = dict(dataset="digits", batch_size=16, checkpoint_every_steps=2,
                keep_checkpoints=100, log_every_steps=2, sample_every_steps=1000,
                eval_every_steps=0, **TINY_DCGAN)
  command = ([sys.executable, "-m", "experiments.dcgan", "--workdir", workdir]
             + [f"--config.{k}={v}" for k, v in fields.items()])
  first = subprocess.run(command + ["--config.num_train_steps=2"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  stat = os.statvfs(small_disk)
  with open(small_disk / "ballast", "wb") as f:
    f.write(bytes(max(0, stat.f_bavail * stat.f_frsize - 100_000)))
  proc = subprocess.run(command + ["--config.num_train_steps=40"], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  # Beside the progress bar and the input and resume lines: the error, alone.
  lines = [line for line in proc.stderr.splitlines()
           if line.strip() and not line.startswith(("run:", "Input:", "Resuming"))]
  assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
  error = lines[0]
  assert re.match(r"error: Saving the checkpoint of step 4 failed: No space left on device",
                  error), error
  assert "The last good checkpoint is step 2 in " in error
  assert Checkpointer(workdir).all_steps() == [2]
  log = re.search(r"Background tracebacks: (\S+)\.\)", error).group(1)
  assert os.path.getsize(log) > 0  # the details, out of the terminal's way
  state = Checkpointer(workdir).restore(_tiny_state_shape(fields), 2)  # intact
  assert int(state.step) == 2


def _tiny_state_shape(fields):
  import jax
  from jaxgan.tasks.gan import make_task
  config = dcgan_config()
  config.update(fields)
  task = make_task(config, Data(config))
  return jax.eval_shape(task.init_state, jax.random.PRNGKey(0))
