"""cifar10:PATH: the official binary and python layouts, folders and archives,
read alike; bad files refused with the file's name; pickles never run code."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from jaxgan.data import Data, DataError, get_source
from jaxgan.data import cifar10

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                      "shared", "data", "cifar10")
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _batches(rng, sizes=(3, 3, 3, 3, 4, 2)):
  """{batch name: (planes uint8 [N, 3072], labels [N])}: 5 train batches and a
  test batch. Record 0 of data_batch_1 has distinct planes: R = 4 * row,
  G = 4 * column, B = 200."""
  out = {}
  for name, n in zip(cifar10.TRAIN_BATCHES + (cifar10.TEST_BATCH,), sizes):
    planes = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    out[name] = (planes, rng.integers(0, 10, n))
  rows, cols = np.mgrid[0:32, 0:32]
  out["data_batch_1"][0][0] = np.concatenate([(4 * rows).ravel(), (4 * cols).ravel(),
                                              np.full(1024, 200)]).astype(np.uint8)
  return out


def _write_binary(root, batches):
  os.makedirs(root, exist_ok=True)
  for name, (planes, labels) in batches.items():
    records = np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1)
    with open(os.path.join(root, name + ".bin"), "wb") as f:
      f.write(records.tobytes())
  with open(os.path.join(root, "batches.meta.txt"), "w") as f:
    f.write("\n".join(NAMES) + "\n\n")
  return root


def _write_python(root, batches):
  os.makedirs(root, exist_ok=True)
  for name, (planes, labels) in batches.items():
    with open(os.path.join(root, name), "wb") as f:  # as the official ones: bytes keys
      pickle.dump({b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                   b"data": planes, b"filenames": [b"x.png"] * len(labels)}, f, protocol=2)
  with open(os.path.join(root, "batches.meta"), "wb") as f:
    pickle.dump({b"label_names": [n.encode() for n in NAMES], b"num_vis": 3072}, f, protocol=2)
  return root


def _tar(folder, path):
  with tarfile.open(path, "w:gz") as tar:
    tar.add(folder, arcname=os.path.basename(folder))
  return path


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
  root = tmp_path_factory.mktemp("cifar")
  batches = _batches(np.random.default_rng(0))
  binary = _write_binary(str(root / "cifar-10-batches-bin"), batches)
  python = _write_python(str(root / "py" / "cifar-10-batches-py"), batches)
  return batches, {
      "binary folder": binary,
      "binary archive": _tar(binary, str(root / "cifar-10-binary.tar.gz")),
      "python folder": python,
      "python archive": _tar(python, str(root / "cifar-10-python.tar.gz")),
      "parent folder": str(root / "py"),
  }


def test_every_layout_reads_the_same_images_labels_and_names(layouts):
  batches, paths = layouts
  want_train = np.concatenate([batches[b][1] for b in cifar10.TRAIN_BATCHES])
  reference = None
  for kind, path in paths.items():
    source = get_source(f"cifar10:{path}")
    assert source.splits == {"train": 16, "test": 2}, kind
    assert source.class_names == NAMES and source.num_classes == 10, kind
    train, test = source.fitted("train", 32), source.fitted("test", 32)
    np.testing.assert_array_equal(train[1], want_train)
    np.testing.assert_array_equal(test[1], batches["test_batch"][1])
    if reference is None:
      reference = (train, test)
    for got, ref in zip((train, test), reference):
      np.testing.assert_array_equal(got[0], ref[0])
      assert got[0].shape[1:] == (32, 32, 3) and got[0].dtype == np.uint8


def test_channel_order_and_orientation(layouts):
  _, paths = layouts
  image = get_source(f"cifar10:{paths['binary folder']}").fitted("train[:1]", 32)[0][0]
  rows, cols = np.mgrid[0:32, 0:32]
  np.testing.assert_array_equal(image[..., 0], 4 * rows)  # red: brighter downwards
  np.testing.assert_array_equal(image[..., 1], 4 * cols)  # green: brighter to the right
  assert np.all(image[..., 2] == 200)


def test_the_pipeline_and_class_names_reach_the_data(layouts):
  from experiments.configs.classifier import get_config
  _, paths = layouts
  config = get_config()
  config.update(dict(dataset=f"cifar10:{paths['python archive']}", image_size=32,
                     train_split="train[:12]", eval_split="train[12:]", batch_size=4))
  data = Data(config)
  assert data.info.image_shape == (32, 32, 3) and data.info.class_names == tuple(NAMES)
  assert (data.info.num_train_examples, data.info.num_eval_examples) == (12, 4)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "is not a whole number of 3073-byte CIFAR-10 records"),
    ("label", "record 1 has label 10, outside 0-9"),
    ("missing", "data_batch_3.bin is missing"),
])
def test_bad_binary_files_name_the_file(tmp_path, damage, message):
  root = _write_binary(str(tmp_path / "cifar-10-batches-bin"), _batches(np.random.default_rng(1)))
  path = os.path.join(root, "data_batch_3.bin")
  raw = bytearray(open(path, "rb").read())
  if damage == "truncate":
    open(path, "wb").write(raw[:-5])
  elif damage == "label":
    raw[cifar10.RECORD] = 10
    open(path, "wb").write(raw)
  else:
    os.remove(path)
  with pytest.raises(DataError, match=message) as e:
    get_source(f"cifar10:{root}")
  assert "data_batch_3" in str(e.value)


def test_damaged_archive_and_empty_folder(tmp_path):
  bad = tmp_path / "cifar-10-binary.tar.gz"
  bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 40)
  with pytest.raises(DataError, match="not a readable CIFAR-10 archive"):
    get_source(f"cifar10:{bad}")
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no CIFAR-10 batches in"):
    get_source(f"cifar10:{tmp_path / 'empty'}")
  with pytest.raises(DataError, match="does not exist"):
    get_source(f"cifar10:{tmp_path / 'nowhere'}")


class _Exploit:
  """Unpickling this calls os.system: a pickle that runs code."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path, protocol):
  root = _write_python(str(tmp_path / "cifar-10-batches-py"), _batches(np.random.default_rng(2)))
  marker = tmp_path / "pwned"
  payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Exploit(str(marker))]}
  with open(os.path.join(root, "data_batch_2"), "wb") as f:
    pickle.dump(payload, f, protocol=protocol)
  with pytest.raises(DataError, match=r"data_batch_2: the pickle names (posix|os|nt)\.system"):
    get_source(f"cifar10:{root}")
  assert not marker.exists()
  # The guard behind the opcode check refuses it too.
  with pytest.raises(pickle.UnpicklingError, match="refused global"):
    cifar10._AllowListUnpickler(io.BytesIO(pickle.dumps(payload, protocol=protocol))).load()
  assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_batches_pickled_at_any_protocol_load(protocol):
  batch = {b"data": (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072),
           b"labels": [1, 2]}
  out = cifar10.safe_unpickle(pickle.dumps(batch, protocol=protocol), "batch")
  np.testing.assert_array_equal(out[b"data"], batch[b"data"])
  assert out[b"labels"] == [1, 2]


def test_a_foreign_pickle_is_refused(tmp_path):
  root = _write_python(str(tmp_path / "cifar-10-batches-py"), _batches(np.random.default_rng(3)))
  with open(os.path.join(root, "test_batch"), "wb") as f:
    pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f, protocol=2)
  with pytest.raises(DataError, match=r"test_batch: 'data' is not a uint8 array \[N, 3072\]"):
    get_source(f"cifar10:{root}")


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data/cifar10 is not here")
def test_the_shared_cifar10_files():
  source = get_source(f"cifar10:{SHARED}/cifar-10-batches-bin")
  assert source.splits == {"train": 5085} and source.class_names == NAMES
  images, labels = source.fitted("train[:5]", 32)
  assert list(labels) == [6, 9, 9, 4, 1]  # frog, truck, truck, deer, automobile
  assert images.shape == (5, 32, 32, 3) and 80 < images.mean() < 180
