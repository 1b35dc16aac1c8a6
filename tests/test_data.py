"""Every data source yields correctly shaped, scaled, sharded batches and
rejects bad input with a clear error."""

import gzip
import os
import struct
import threading
import time

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from conftest import requires_tf

from jaxgan import sharding
from jaxgan.data import Data, DataError, device_batches, read_idx
from jaxgan.data import tfds as tfds_source


def _config(dataset, **overrides):
  c = ml_collections.ConfigDict(dict(
      dataset=dataset, data_dir=None, train_split="train", eval_split="test", image_size=28,
      batch_size=16, seed=0, shuffle_buffer=10_000, cache_data=True))
  c.update(overrides)
  return c


def _write_idx(path, array, compress=False):
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
  raw = header + array.astype(np.uint8).tobytes()
  with open(path, "wb") as f:
    f.write(gzip.compress(raw) if compress else raw)


@pytest.fixture
def idx_dir(tmp_path):
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
  train[0] = 0
  train[1] = 255
  _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train, compress=True)
  _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(40) % 10, compress=True)
  _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
  return tmp_path


def _check_batch(batch, size, channels, n):
  image = np.asarray(batch["image"])
  assert image.shape == (n, size, size, channels) and image.dtype == np.float32
  assert image.min() >= -1.0 and image.max() <= 1.0
  assert np.asarray(batch["label"]).dtype == np.int32


@requires_tf
def test_idx_source_batches_are_scaled_and_sharded(idx_dir, num_devices):
  data = Data(_config(f"idx:{idx_dir}", shuffle_buffer=1))
  assert data.info.image_shape == (28, 28, 1)
  assert (data.info.num_train_examples, data.info.num_eval_examples) == (40, 20)
  assert data.info.num_classes == 10
  mesh = sharding.make_mesh()
  ds = data.train_dataset(sharding.local_batch_size(16, mesh))
  batch = next(device_batches(ds, mesh))
  _check_batch(batch, 28, 1, 16)
  assert batch["image"].sharding.spec == jax.sharding.PartitionSpec("data")
  assert len(batch["image"].addressable_shards) == num_devices
  assert {s.data.shape for s in batch["image"].addressable_shards} == {(2, 28, 28, 1)}
  # Pixel 0 -> -1 and 255 -> +1 exactly (shuffle_buffer=1 keeps file order).
  first = np.asarray(batch["image"])
  assert np.all(first[0] == -1.0) and np.all(first[1] == 1.0)
  np.testing.assert_array_equal(np.asarray(batch["label"]), np.arange(16) % 10)


@requires_tf
def test_split_syntax_and_eval_padding(idx_dir):
  data = Data(_config(f"idx:{idx_dir}", train_split="train[:75%]+test[:5]",
                      eval_split="test[15:]"))
  assert data.info.num_train_examples == 35 and data.info.num_eval_examples == 5
  ds, num_batches = data.eval_dataset(4)
  batches = list(ds.as_numpy_iterator())
  assert num_batches == len(batches) == 2
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.tolist() == [1.0] * 5 + [0.0] * 3
  _check_batch(batches[0], 28, 1, 4)


@requires_tf
def test_process_shards_partition_the_split(idx_dir):
  data = Data(_config(f"idx:{idx_dir}", eval_split="test[:19]"))
  labels = []
  for p in range(3):
    ds, num_batches = data.eval_dataset(4, process_index=p, process_count=3)
    assert num_batches == 2  # Every process runs the same number of steps.
    for b in ds.as_numpy_iterator():
      labels.extend(b["label"][b["mask"] > 0].tolist())
  assert sorted(labels) == sorted((np.arange(20) % 10)[:19].tolist())


@requires_tf
def test_pipeline_is_deterministic_and_resumes_at_the_step(idx_dir):
  data = Data(_config(f"idx:{idx_dir}"))
  take = lambda ds, n: [b["image"] for _, b in zip(range(n), ds.as_numpy_iterator())]
  a, b = take(data.train_dataset(8), 7), take(data.train_dataset(8), 7)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  # Resuming at step 5 (mid second epoch: 5 steps per epoch) continues the stream.
  resumed = take(data.train_dataset(8, start_batch=5), 2)
  np.testing.assert_array_equal(resumed[0], a[5])
  np.testing.assert_array_equal(resumed[1], a[6])
  other = take(Data(_config(f"idx:{idx_dir}", seed=1)).train_dataset(8), 1)
  assert not np.array_equal(other[0], a[0])


@pytest.mark.parametrize("corruption,message", [
    ("truncate", "truncated or corrupt"),
    ("magic", "not an IDX file"),
    ("bad_gzip", "corrupt or truncated gzip"),
])
def test_idx_rejects_corrupt_files(idx_dir, corruption, message):
  path = idx_dir / "t10k-images-idx3-ubyte"
  raw = path.read_bytes()
  if corruption == "truncate":
    path.write_bytes(raw[:-100])
  elif corruption == "magic":
    path.write_bytes(b"\x00\x00\x09\x03" + raw[4:])
  else:
    gz = idx_dir / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:50])
  with pytest.raises(DataError, match=message):
    Data(_config(f"idx:{idx_dir}"))


def test_idx_rejects_mismatched_and_missing_files(idx_dir, tmp_path_factory):
  _write_idx(idx_dir / "t10k-labels-idx1-ubyte", np.arange(19) % 10)
  with pytest.raises(DataError, match="20 images .* but 19 labels"):
    Data(_config(f"idx:{idx_dir}"))
  os.remove(idx_dir / "t10k-labels-idx1-ubyte")
  with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.* is missing"):
    Data(_config(f"idx:{idx_dir}"))
  empty = tmp_path_factory.mktemp("empty")
  with pytest.raises(DataError, match="no IDX files found"):
    Data(_config(f"idx:{empty}"))
  with pytest.raises(DataError, match="does not exist"):
    Data(_config(f"idx:{empty}/nope"))


def test_real_mnist_files_when_present():
  from conftest import MNIST_DIR
  if not os.path.isdir(MNIST_DIR):
    pytest.skip("../shared/data/mnist is not beside the checkout")
  images = read_idx(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
  import hashlib
  # The decompressed bytes are the official MNIST test images.
  assert images.shape == (10000, 28, 28)
  header = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 10000, 28, 28)
  assert hashlib.md5(header + images.tobytes()).hexdigest() == "2646ac647ad5339dbf082846283269ea"


def _write_png(path, size, color, mode="RGB"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new(mode, size, color).save(path)


@requires_tf
def test_folder_source_with_class_and_split_subfolders(tmp_path):
  for split, n in (("train", 6), ("test", 3)):
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
      for i in range(n):
        _write_png(str(tmp_path / split / cls / f"{i}.png"), (40 + i, 30), color)
  data = Data(_config(f"folder:{tmp_path}", image_size=32, batch_size=4, train_split="train",
                      eval_split="test"))
  assert data.info.image_shape == (32, 32, 3)
  assert (data.info.num_train_examples, data.info.num_eval_examples) == (12, 6)
  batch = next(data.train_dataset(4).as_numpy_iterator())
  _check_batch(batch, 32, 3, 4)
  for image, label in zip(batch["image"], batch["label"]):
    # cat (label 0) is pure red, dog (label 1) pure blue, after resizing too.
    np.testing.assert_allclose(image.mean(axis=(0, 1)),
                               [1, -1, -1] if label == 0 else [-1, -1, 1], atol=1e-5)


@requires_tf
def test_folder_without_split_subfolders_is_one_train_split(tmp_path):
  for i in range(4):
    _write_png(str(tmp_path / "a" / f"{i}.jpg"), (28, 28), 200, mode="L")
  data = Data(_config(f"folder:{tmp_path}", eval_split="train[:2]", batch_size=2))
  assert data.info.image_shape == (28, 28, 1) and data.info.num_train_examples == 4
  batch = next(data.train_dataset(2).as_numpy_iterator())
  _check_batch(batch, 28, 1, 2)
  with pytest.raises(DataError, match="Unknown split 'test'"):
    Data(_config(f"folder:{tmp_path}", eval_split="test"))


def test_folder_rejects_empty_and_corrupt(tmp_path):
  (tmp_path / "empty" / "cls").mkdir(parents=True)
  with pytest.raises(DataError, match="holds no PNG/JPEG images"):
    Data(_config(f"folder:{tmp_path / 'empty'}"))
  _write_png(str(tmp_path / "bad" / "cls" / "ok.png"), (28, 28), (1, 2, 3))
  (tmp_path / "bad" / "cls" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
  with pytest.raises(DataError, match="broken.png: not a readable image"):
    Data(_config(f"folder:{tmp_path / 'bad'}"))


@requires_tf
def test_digits_offline_dataset():
  data = Data(_config("digits", image_size=32))
  assert data.info.image_shape == (32, 32, 1)
  assert (data.info.num_train_examples, data.info.num_eval_examples) == (1500, 297)
  batch = next(data.train_dataset(16).as_numpy_iterator())
  _check_batch(batch, 32, 1, 16)
  assert batch["image"].min() == -1.0 and batch["image"].max() > 0.9  # background and ink


@requires_tf
def test_tfds_mock_data(monkeypatch, tmp_path):
  import tensorflow_datasets as tfds
  monkeypatch.setattr(tfds_source, "_network_available", lambda *a, **k: True)
  with tfds.testing.mock_data(num_examples=24):
    data = Data(_config("mnist", data_dir=str(tmp_path), image_size=32, batch_size=8))
    assert data.info.image_shape == (32, 32, 1)
    batch = next(data.train_dataset(8).as_numpy_iterator())
    _check_batch(batch, 32, 1, 8)
    # mock_data gives every (sub-)split, so each process's shard, 24 examples.
    ds, num_batches = data.eval_dataset(10, process_index=1, process_count=2)
    batches = list(ds.as_numpy_iterator())
    assert num_batches == len(batches) == 3
    assert sum(float(b["mask"].sum()) for b in batches) == 24


def test_tfds_offline_fails_fast_with_remedies(monkeypatch, tmp_path):
  monkeypatch.setattr(tfds_source, "_network_available", lambda *a, **k: False)
  start = time.time()
  with pytest.raises(DataError) as e:
    Data(_config("mnist", data_dir=str(tmp_path)))
  assert time.time() - start < 10
  message = str(e.value)
  assert "'mnist'" in message and str(tmp_path) in message
  assert "python -m jaxgan.data.prepare mnist" in message and "idx:DIR" in message


def test_unknown_dataset_and_split():
  with pytest.raises(DataError, match="Unknown dataset 'mnistt'"):
    Data(_config("mnistt"))
  with pytest.raises(DataError, match="Bad split 'validation'"):
    Data(_config("digits", eval_split="validation"))


def test_batch_size_must_divide_over_devices(num_devices):
  with pytest.raises(ValueError, match="does not divide over the 8 devices"):
    sharding.local_batch_size(20, sharding.make_mesh())
  assert sharding.local_batch_size(24, sharding.make_mesh()) == 24


@requires_tf
def test_closing_device_batches_stops_the_prefetch_thread(idx_dir):
  """A prefetch thread left inside TensorFlow at interpreter exit aborts the
  process; closing the stream must stop it."""
  before = threading.active_count()
  mesh = sharding.make_mesh()
  batches = device_batches(Data(_config(f"idx:{idx_dir}")).train_dataset(16), mesh)
  next(batches)
  assert threading.active_count() == before + 1
  batches.close()
  assert threading.active_count() == before


@requires_tf
def test_tensorflow_import_leaves_the_environment_as_it_was():
  """jaxgan.data.tf imports TF with TF_USE_LEGACY_KERAS=1 (skipping its
  eager Keras import) and removes the variable again, so subprocesses and
  TF's lazy `tf.keras` see the user's environment."""
  from jaxgan.data.tf import tf
  assert list(tf.data.Dataset.range(3).as_numpy_iterator()) == [0, 1, 2]
  assert "TF_USE_LEGACY_KERAS" not in os.environ


@requires_tf
def test_tfds_mock_data_through_the_indexed_pipeline(monkeypatch, tmp_path):
  import tensorflow_datasets as tfds
  monkeypatch.setattr(tfds_source, "_network_available", lambda *a, **k: True)
  with tfds.testing.mock_data(num_examples=24):
    data = Data(_config("mnist", data_dir=str(tmp_path), image_size=32, batch_size=8,
                        data_pipeline="indexed"))
    images, labels = data.split("train")
    assert images.shape == (24, 32, 32, 1) and images.dtype == np.uint8
    assert labels.shape == (24,) and labels.max() < 10
    mesh = sharding.make_mesh()
    feed = data.train_feed(mesh)
    try:
      batch = jax.jit(feed.to_batch)(next(feed.inputs()), feed.resident)
    finally:
      feed.close()
    _check_batch(batch, 32, 1, 8)


@requires_tf
def test_tfdata_cache_is_refused_for_a_split_larger_than_the_budget(idx_dir, monkeypatch):
  """cache_data keeps decoded full-resolution examples: a shard that cannot fit
  is refused before any example is read, naming the fix; one that fits runs."""
  from jaxgan.data import tfdata
  with pytest.raises(DataError, match=r"cache_data=True would keep 1281167 decoded 64x64x3 "
                     r"examples of imagenet train .*--config.cache_data=False"):
    tfdata.check_cache_fits(1_281_167, (64, 64, 3), "imagenet", "train", budget=8 << 30)
  tfdata.check_cache_fits(1_281_167, (64, 64, 3), "imagenet", "train", budget=16 << 30)
  tfdata.check_cache_fits(10**9, None, "folder:x", "train", budget=1)  # sizes unknown
  data = Data(_config(f"idx:{idx_dir}", data_pipeline="tfdata"))
  monkeypatch.setattr(tfdata, "cache_budget_bytes", lambda: 40 * 28 * 28 - 1)
  with pytest.raises(DataError, match="cache_data=True would keep 40 decoded 28x28x1"):
    data.train_dataset(16)
  monkeypatch.setattr(tfdata, "cache_budget_bytes", lambda: 40 * 28 * 28)
  assert next(data.train_dataset(16).as_numpy_iterator())["image"].shape == (16, 28, 28, 1)
  data.config.cache_data = False
  monkeypatch.setattr(tfdata, "cache_budget_bytes", lambda: 1)
  assert next(data.train_dataset(16).as_numpy_iterator())["image"].shape == (16, 28, 28, 1)
