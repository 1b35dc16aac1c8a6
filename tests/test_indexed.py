"""The indexed pipeline (data in memory, batches by index, on the device or
the host), several steps per call, the user's own arrays, and training,
evaluating and resuming where TensorFlow cannot be imported."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import TINY_DCGAN, requires_tf
from experiments import classifier, dcgan, gan
from experiments.configs.classifier import get_config as classifier_config
from experiments.configs.dcgan import get_config as dcgan_config
from experiments.configs.gan import get_config as gan_config
from jaxgan import loop, sharding
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data, DataError, indexed, register_arrays
from jaxgan.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def assert_bitwise_equal(a, b):
  la, lb = leaves(a), leaves(b)
  assert len(la) == len(lb) and all(x.tobytes() == y.tobytes() for x, y in zip(la, lb))


def clf_config(**overrides):
  # 64 digits in batches of 16 (4 batches an epoch), shifted, flipped and cut
  # out on the device.
  c = classifier_config()
  c.update(dict(dataset="digits", train_split="train[:64]", eval_split="test[:40]",
                batch_size=16, num_train_steps=7, log_every_steps=2, eval_every_steps=7,
                checkpoint_every_steps=3, learning_rate=3e-3, augment_crop_padding=2,
                augment_flip=True, augment_cutout=3))
  c.update(overrides)
  return c


def test_device_and_host_batches_agree_bitwise_and_resume(tmp_path):
  on = classifier.train_and_evaluate(clf_config(data_on_device=True), str(tmp_path / "on"))
  off = classifier.train_and_evaluate(clf_config(data_on_device=False), str(tmp_path / "off"))
  assert_bitwise_equal(on.state, off.state)
  assert read_metrics(str(tmp_path / "on")) != []
  # Killed after step 3 (mid-epoch; the learning rate follows num_train_steps,
  # so the copy keeps it), resumed with the other placement.
  part = str(tmp_path / "part")
  shutil.copytree(str(tmp_path / "off"), part)
  for step in Checkpointer(part).all_steps():
    if step > 3:
      shutil.rmtree(os.path.join(part, "checkpoints", str(step)))
  resumed = classifier.train_and_evaluate(clf_config(data_on_device=True), part)
  assert resumed.start_step == 3
  assert_bitwise_equal(on.state, resumed.state)
  assert read_metrics(part)[-1]["eval_accuracy"] == read_metrics(str(tmp_path / "on"))[-1][
      "eval_accuracy"]


def _first_batches(mesh, config, n=6, start=0):
  feed = Data(config).train_feed(mesh, start)
  try:
    it = feed.inputs()
    return [np.asarray(next(it)["image"]) for _ in range(n)]
  finally:
    feed.close()


def test_order_is_the_same_on_one_or_eight_devices_and_follows_the_step(num_devices):
  config = clf_config(data_on_device=False)
  eight = _first_batches(sharding.make_mesh(), config)
  one = _first_batches(sharding.make_mesh(jax.devices()[:1]), config)
  for a, b in zip(eight, one):
    np.testing.assert_array_equal(a, b)
  # Batch 5 from a resume at batch 5 is batch 5 of the whole stream.
  np.testing.assert_array_equal(_first_batches(sharding.make_mesh(), config, 1, 5)[0], eight[5])
  # Each epoch (4 batches) is a permutation of the split; epochs differ.
  images, _ = Data(config).split("train[:64]")
  epoch = np.concatenate(eight[:4])
  assert sorted(map(bytes, epoch)) == sorted(map(bytes, images))
  assert not np.array_equal(epoch, np.concatenate([*eight[4:], *eight[:2]]))
  assert not np.array_equal(_first_batches(sharding.make_mesh(), clf_config(seed=1, data_on_device=False), 1)[0],
                            eight[0])


def test_augmentation_shifts_and_flips_with_a_black_border():
  x = np.zeros((64, 8, 8, 1), np.float32)
  x[:, 2:6, 2:6] = 255.0
  numbers = np.zeros(64, np.int32)
  out = np.asarray(indexed.augment(x, numbers, 0, 2, True))
  again = np.asarray(indexed.augment(x, numbers, 0, 2, True))
  np.testing.assert_array_equal(out, again)  # same (seed, batch, row): same image
  assert len({o.tobytes() for o in out}) > 5  # rows differ
  assert set(np.unique(out)) <= {0.0, 255.0} and np.all(out.sum(axis=(1, 2, 3)) == 16 * 255)
  other = np.asarray(indexed.augment(x, numbers + 1, 0, 2, True))
  assert not np.array_equal(out, other)
  # A flip alone mirrors the image.
  y = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1).repeat(32, 0)
  flipped = np.asarray(indexed.augment(y, np.zeros(32, np.int32), 0, 0, True))
  assert all(np.array_equal(f, y[0]) or np.array_equal(f, y[0][:, ::-1]) for f in flipped)
  assert any(np.array_equal(f, y[0][:, ::-1]) for f in flipped)


def _cutout_holes(out, plain):
  """Per image, the (rows, columns) spanned by the pixels where `out` is
  mid-grey and `plain` is not; asserts they form one filled rectangle."""
  spans = []
  for o, p in zip(out, plain):
    ys, xs = np.nonzero(np.any(o != p, axis=-1))
    assert np.all(o[ys, xs] == 127.5)
    box = o[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert np.all(box == 127.5)  # a filled rectangle, nothing changed outside it
    spans.append((ys.max() - ys.min() + 1, xs.max() - xs.min() + 1, ys.min(), xs.min()))
  return spans


def test_cutout_greys_one_square_clipped_at_the_border_and_keeps_the_shifts():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 127, (256, 12, 12, 3)).astype(np.float32)  # never mid-grey
  numbers = np.arange(256, dtype=np.int32) // 16
  plain = np.asarray(indexed.augment(x, numbers, 3, 2, True))
  out = np.asarray(indexed.augment(x, numbers, 3, 2, True, cutout=4))
  np.testing.assert_array_equal(out, indexed.augment(x, numbers, 3, 2, True, cutout=4))
  spans = _cutout_holes(out, plain)  # the shifts and flips are those of the run without
  assert max(h for h, _, _, _ in spans) == 4 and max(w for _, w, _, _ in spans) == 4
  assert {h for h, _, _, _ in spans} == {2, 3, 4}  # clipped at the border (centre 0, 1, ...)
  assert min(t for _, _, t, _ in spans) == 0  # everywhere, from the top edge to the bottom
  assert max(t + h for h, _, t, _ in spans) == 12
  with pytest.raises(ValueError, match="augment_cutout must be >= 0"):
    indexed.augment(x, numbers, 3, 2, True, cutout=-1)


@requires_tf
def test_tfdata_cutout_greys_one_square():
  from jaxgan.data import tfdata
  import tensorflow as tf
  rng = np.random.default_rng(1)
  x = rng.integers(0, 127, (128, 12, 12, 3)).astype(np.float32)
  plain, out = (np.stack([tfdata._augmenter(0, False, 7, cutout)(tf.constant(im), tf.constant(
      i, tf.int64)).numpy() for i, im in enumerate(x)]) for cutout in (0, 5))
  np.testing.assert_array_equal(plain, x)
  spans = _cutout_holes(out, plain)
  assert max(h for h, _, _, _ in spans) == 5 and min(h for h, _, _, _ in spans) == 3


@requires_tf
def test_indexed_and_tfdata_give_the_same_evaluation_images():
  """Without resizing, bitwise the same images in [-1, 1]; resized, the indexed
  pipeline's uint8 rounding keeps them within one grey level of tf.data's."""
  for size, tolerance in ((8, 0.0), (16, 1.01 * 2 / 255), (6, 1.01 * 2 / 255)):
    config = clf_config(image_size=size)
    tf_images = Data(clf_config(image_size=size, data_pipeline="tfdata")).first_images("test")
    images = Data(config).first_images("test")
    assert images.shape == tf_images.shape == (297, size, size, 1)
    assert np.abs(images - tf_images).max() <= tolerance, size
  # Eval batches, padding included, bitwise alike.
  mesh = sharding.make_mesh()
  config = clf_config(image_size=8, eval_split="test[:50]")
  ours, n = Data(config).eval_batches(16, mesh)
  theirs, m = Data(clf_config(image_size=8, eval_split="test[:50]",
                              data_pipeline="tfdata")).eval_batches(16, mesh)
  assert n == m == 4
  for a, b in zip(ours, theirs):
    for key in ("image", "label", "mask"):
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


def test_steps_per_call_matches_single_steps_and_keeps_boundaries(tmp_path):
  config = dict(dataset="digits", batch_size=16, num_train_steps=8, log_every_steps=4,
                sample_every_steps=8, checkpoint_every_steps=4, eval_every_steps=0,
                num_sample_images=4, **TINY_DCGAN)
  one = dcgan.train_and_evaluate(_dc(config), str(tmp_path / "1"))
  three = dcgan.train_and_evaluate(_dc(config, steps_per_call=3), str(tmp_path / "3"))
  assert_bitwise_equal(one.state, three.state)
  assert [r["step"] for r in read_metrics(str(tmp_path / "3"))] == [4, 8]  # calls end at boundaries
  assert _same_metrics(str(tmp_path / "1"), str(tmp_path / "3"))
  assert sorted(os.listdir(tmp_path / "3" / "samples")) == ["live_step_0000008.png",
                                                            "step_0000008.png"]
  # The classifier (shifts and flips on the device) likewise.
  a = classifier.train_and_evaluate(clf_config(eval_every_steps=0), str(tmp_path / "c1"))
  b = classifier.train_and_evaluate(clf_config(eval_every_steps=0, steps_per_call=3),
                                    str(tmp_path / "c3"))
  assert_bitwise_equal(a.state, b.state)
  assert _same_metrics(str(tmp_path / "c1"), str(tmp_path / "c3"))
  # K may change on a resume (stopped at 4 with K = 3, resumed with K = 1).
  part = str(tmp_path / "part")
  dcgan.train_and_evaluate(_dc(config, steps_per_call=3, num_train_steps=4), part)
  assert_bitwise_equal(one.state, dcgan.train_and_evaluate(_dc(config), part).state)


def test_steps_per_call_with_several_batches_a_step_is_bitwise(tmp_path):
  # WGAN-GP with 2 critic updates a step: a call of 2 steps takes 4 batches.
  def run(k, workdir):
    c = gan_config("wgan_gp")
    c.update(dict(dataset="digits", batch_size=16, num_train_steps=2, log_every_steps=2,
                  sample_every_steps=2, checkpoint_every_steps=2, eval_every_steps=0,
                  num_sample_images=4, n_critic=2, steps_per_call=k, **TINY_DCGAN))
    return gan.train_and_evaluate(c, str(tmp_path / workdir)).state
  assert_bitwise_equal(run(1, "1"), run(2, "2"))
  assert _same_metrics(str(tmp_path / "1"), str(tmp_path / "2"))


def _same_metrics(run_a, run_b):
  """metrics.jsonl of two runs equal but for their timings."""
  timing = ("images_per_sec", "wall_time_s")
  strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]
  return strip(read_metrics(run_a)) == strip(read_metrics(run_b))


def _dc(fields, **overrides):
  c = dcgan_config()
  c.update(fields)
  c.update(overrides)
  return c


def test_nan_is_named_by_its_step_inside_a_call(tmp_path):
  from jaxgan.tasks.gan import GANTask
  import jax.numpy as jnp

  class NaNAfter(GANTask):
    def train_step(self, state, batch):
      new_state, metrics = super().train_step(state, batch)
      bad = new_state.step >= 3
      return new_state, {k: jnp.where(bad, jnp.nan if k != "finite" else 0.0, v)
                         for k, v in metrics.items()}

  config = _dc(dict(dataset="digits", batch_size=16, num_train_steps=8, log_every_steps=4,
                    sample_every_steps=8, checkpoint_every_steps=4, eval_every_steps=0,
                    steps_per_call=4, **TINY_DCGAN))
  with pytest.raises(loop.NonFiniteLossError, match="NaN/Inf at step 3.*checkpoint is none"):
    loop.train_and_evaluate(config, str(tmp_path / "nan"),
                            lambda c, data: NaNAfter(c, data.info.image_shape))


def test_bad_values_are_clear_errors(tmp_path, monkeypatch):
  for value in (0, -1):
    with pytest.raises(ValueError, match="steps_per_call must be an integer >= 1"):
      dcgan.train_and_evaluate(_dc(dict(dataset="digits", **TINY_DCGAN), steps_per_call=value),
                               str(tmp_path / "k"))
  with pytest.raises(ValueError, match="data_on_device must be 'auto', True or False"):
    Data(clf_config(data_on_device="sometimes")).train_feed(sharding.make_mesh())
  with pytest.raises(ValueError, match="data_on_device=True needs data_pipeline='indexed'"):
    Data(clf_config(data_on_device="True", data_pipeline="tfdata")).train_feed(
        sharding.make_mesh())
  with pytest.raises(ValueError, match="Unknown config.data_pipeline 'grain'"):
    Data(clf_config(data_pipeline="grain"))
  monkeypatch.setattr(indexed, "AUTO_DEVICE_BYTES", 1000)
  with pytest.raises(DataError, match="more than the 0 MiB budget.*data_on_device=False"):
    Data(clf_config(data_on_device=True)).train_feed(sharding.make_mesh())
  feed = Data(clf_config()).train_feed(sharding.make_mesh())  # "auto": on the host
  assert feed.resident is None
  feed.close()


def test_folder_images_are_fitted_with_one_compiled_resize(tmp_path):
  from PIL import Image
  from jaxgan.data import folder, resize
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (12, 41, 37), dtype=np.uint8)  # a size no other test uses
  for i, image in enumerate(x):
    (tmp_path / "train" / str(i % 2)).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(tmp_path / "train" / str(i % 2) / f"{i:02d}.png")
  before = resize._resize._cache_size()
  images, labels = folder.load_folder(str(tmp_path)).fitted("train", 28)
  assert resize._resize._cache_size() - before == 1  # one compilation, not one per image
  order = [i for c in (0, 1) for i in range(12) if i % 2 == c]  # class 0's files first
  np.testing.assert_array_equal(images, resize.center_crop_resize(x[order, :, :, None], 28))
  np.testing.assert_array_equal(labels, [0] * 6 + [1] * 6)


def test_npz_and_registered_arrays(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (40, 10, 12), dtype=np.uint8)
  y = np.arange(40) % 4
  np.savez(tmp_path / "d.npz", train_images=x[:30], train_labels=y[:30], test_images=x[30:],
           test_labels=y[30:])
  register_arrays("mine", {"train": (x[:30], y[:30]), "test": (x[30:], y[30:])})
  for dataset in (f"npz:{tmp_path / 'd.npz'}", "arrays:mine"):
    data = Data(clf_config(dataset=dataset, train_split="train", eval_split="test",
                           image_size=10))
    assert data.info.num_classes == 4 and data.info.num_train_examples == 30
    images, labels = data.first_images("test", with_labels=True)
    # Centre-cropped 10x12 -> 10x10: columns 1..10.
    np.testing.assert_array_equal(images[..., 0], x[30:, :, 1:11] * np.float32(2 / 255) - 1)
    np.testing.assert_array_equal(labels, y[30:])
  np.savez(tmp_path / "bad.npz", pictures=x)
  with pytest.raises(DataError, match="no <split>_images array"):
    Data(clf_config(dataset=f"npz:{tmp_path / 'bad.npz'}"))
  with pytest.raises(DataError, match="must hold uint8 images"):
    register_arrays("floats", {"train": x.astype(np.float32)})
  with pytest.raises(DataError, match="labels of split 'train' must be"):
    register_arrays("short", {"train": (x, y[:3])})
  with pytest.raises(DataError, match="No arrays registered as 'nope'.*register_arrays"):
    Data(clf_config(dataset="arrays:nope"))
  with pytest.raises(DataError, match="does not exist"):
    Data(clf_config(dataset=f"npz:{tmp_path / 'missing.npz'}"))


def test_train_evaluate_and_resume_without_tensorflow(tmp_path):
  """`import tensorflow` fails in these processes: training (digits and idx
  data), resuming, TensorBoard files and `experiments.evaluate` still work."""
  blocker = tmp_path / "blocker" / "tensorflow"
  blocker.mkdir(parents=True)
  (blocker / "__init__.py").write_text("raise ImportError('TensorFlow is blocked here')\n")
  env = {**os.environ, "PYTHONPATH": str(tmp_path / "blocker")}

  def run(module, *args):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

  clf, gan = str(tmp_path / "clf"), str(tmp_path / "gan")
  run("experiments.classifier", f"--workdir={clf}", "--config.dataset=digits",
      "--config.batch_size=32", "--config.num_train_steps=20", "--config.log_every_steps=10",
      "--config.eval_every_steps=20", "--config.checkpoint_every_steps=20")
  common = ["--config.dataset=digits", "--config.batch_size=16",
            "--config.image_size=16", "--config.ngf=8", "--config.ndf=8",
            "--config.log_every_steps=2", "--config.checkpoint_every_steps=2",
            "--config.eval_every_steps=4", f"--config.fid_features={clf}",
            "--config.num_eval_samples=64", "--config.eval_split=test[:64]"]
  run("experiments.dcgan", f"--workdir={gan}", *common, "--config.num_train_steps=2")
  run("experiments.dcgan", f"--workdir={gan}", *common, "--config.num_train_steps=4")
  assert [r["step"] for r in read_metrics(gan)] == [2, 4]
  assert "eval_fid" in read_metrics(gan)[-1]
  with open(os.path.join(gan, "run.json")) as f:
    assert [s["start_step"] for s in json.load(f)["starts"]] == [0, 2]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(gan))
  proc = run("experiments.evaluate", f"--workdir={gan}", f"--features={clf}",
             "--num_samples=64")
  assert "fid" in proc.stdout
  # A run of the tf.data pipeline says what it needs.
  proc = subprocess.run([sys.executable, "-m", "experiments.dcgan", *common,
                         "--config.data_pipeline=tfdata", f"--workdir={tmp_path / 'tf'}"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1 and "--config.data_pipeline=indexed" in proc.stderr
  assert "Traceback" not in proc.stderr
