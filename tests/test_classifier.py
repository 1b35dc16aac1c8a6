"""Classifiers: shapes, the per-class report, augmentation, and an end-to-end run."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import random_init, requires_tf
from experiments import classifier
from experiments.configs.classifier import get_config
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data
from jaxgan.models.registry import CLASSIFIERS as MODELS, make_classifier
from jaxgan.tasks.classifier import ClassifierTask, classification_report
from jaxgan.writers import read_metrics


@pytest.mark.parametrize("name", MODELS)
def test_shapes(name):
  model = make_classifier(name, 10)
  x = jnp.zeros((2, 32, 32, 3))
  variables = random_init(model, x, train=False)
  logits, features = jax.jit(lambda v, x: model.apply(v, x, train=False, return_features=True))(
      variables, x)
  assert logits.shape == (2, 10) and features.ndim == 2 and features.shape[0] == 2
  if name.startswith("resnet"):
    assert "batch_stats" in variables


def test_fast_cnn_is_conv_pool_stages_with_max_features_and_scaled_logits():
  """fast_cnn's parameter count by hand, and its forward pass recomputed
  with lax convolutions and numpy from its own parameters (train=False)."""
  model = make_classifier("fast_cnn", 10)
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  variables = random_init(model, x, train=False)
  # BatchNorm running statistics away from (0, 1), so the check sees them used.
  stats = jax.tree_util.tree_map_with_path(
      lambda path, v: v + 0.3 if "mean" in str(path[-1]) else v * 2.0, variables["batch_stats"])
  variables = {"params": variables["params"], "batch_stats": stats}
  count = sum(v.size for v in jax.tree.leaves(variables["params"]))
  widths, previous, expected = (64, 128, 128), 24, 2 * 2 * 3 * 24 + 2 * 24
  for w in widths:
    expected += 9 * previous * w + 2 * w + 9 * w * w + 2 * w
    previous = w
  assert count == expected + 128 * 10  # no biases: BatchNorm follows every convolution

  p, st = variables["params"], variables["batch_stats"]
  conv = lambda y, k: jax.lax.conv_general_dilated(
      y, k, (1, 1), "SAME" if k.shape[0] == 3 else "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")
  bn = lambda y, i: np.maximum(
      (y - st[f"BatchNorm_{i}"]["mean"]) / np.sqrt(st[f"BatchNorm_{i}"]["var"] + 1e-5)
      * p[f"BatchNorm_{i}"]["scale"] + p[f"BatchNorm_{i}"]["bias"], 0)
  pool = lambda y: y[:, :y.shape[1] // 2 * 2, :y.shape[2] // 2 * 2].reshape(
      y.shape[0], y.shape[1] // 2, 2, y.shape[2] // 2, 2, y.shape[3]).max(axis=(2, 4))
  y = bn(np.asarray(conv(x, p["Conv_0"]["kernel"])), 0)
  assert y.shape == (2, 31, 31, 24)
  for s in range(3):
    y = bn(pool(np.asarray(conv(y, p[f"Conv_{1 + 2 * s}"]["kernel"]))), 1 + 2 * s)
    y = bn(np.asarray(conv(y, p[f"Conv_{2 + 2 * s}"]["kernel"])), 2 + 2 * s)
  assert y.shape == (2, 3, 3, 128)  # 31 -> 15 -> 7 -> 3
  features = y.max(axis=(1, 2))
  logits, got = model.apply(variables, x, train=False, return_features=True)
  np.testing.assert_allclose(got, features, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(logits, features @ np.asarray(p["Dense_0"]["kernel"]) / 8,
                             rtol=1e-4, atol=1e-4)


def test_report_matches_scikit_learn():
  from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 5, 300)
  predicted = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 5, 300))
  predicted[predicted == 4] = 3  # class 4 is never predicted: precision 0, not NaN
  report = classification_report(confusion_matrix(labels, predicted, labels=range(5)))
  p, r, f, s = precision_recall_fscore_support(labels, predicted, labels=range(5),
                                               zero_division=0)
  assert report["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
  for i, row in enumerate(report["per_class"]):
    assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
        (p[i], r[i], f[i], s[i]))
  assert report["macro_f1"] == pytest.approx(np.mean(f))
  assert report["macro_precision"] == pytest.approx(np.mean(p))


def _config(**overrides):
  config = get_config()
  config.update(dict(dataset="digits", batch_size=32, num_train_steps=150, log_every_steps=50,
                     eval_every_steps=150, checkpoint_every_steps=75, learning_rate=3e-3,
                     augment_crop_padding=0))  # scikit-learn's digits fill their frame
  config.update(overrides)
  return config


def _shift(x, dy, dx):
  """x [H, W, C] in [-1, 1] moved by (dy, dx), the uncovered border black (-1)."""
  out = np.full_like(x, -1.0)
  h, w = x.shape[:2]
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
      x[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
  return out


@requires_tf
def test_augmentation_shifts_and_flips_deterministically_and_resumes():
  """Each augmented image is its plain counterpart shifted by at most the
  padding and possibly mirrored; the stream is a function of (seed, position),
  so it repeats and a resumed stream matches."""
  plain = Data(_config()).train_dataset(8).take(3)
  plain = [b["image"] for b in plain.as_numpy_iterator()]
  data = Data(_config(augment_crop_padding=2, augment_flip=True))
  aug = [b["image"] for b in data.train_dataset(8).take(3).as_numpy_iterator()]
  again = [b["image"] for b in data.train_dataset(8).take(3).as_numpy_iterator()]
  resumed = [b["image"] for b in data.train_dataset(8, start_batch=2).take(1).as_numpy_iterator()]
  np.testing.assert_array_equal(aug[2], again[2])
  np.testing.assert_array_equal(resumed[0], aug[2])
  moves = set()
  for x, y in zip(np.concatenate(plain), np.concatenate(aug)):  # same examples, same order
    found = [(dy, dx, flip) for flip in (False, True) for dy in range(-2, 3)
             for dx in range(-2, 3)
             if np.allclose(_shift(x[:, ::-1] if flip else x, dy, dx), y, atol=1e-5)]
    assert found, "augmented image is not a shift (and flip) of the original"
    moves.add(found[0])
  assert len(moves) >= 6  # of 24 examples: the shifts and flips vary


def test_train_evaluate_report_and_resume(tmp_path):
  workdir = str(tmp_path / "clf")
  result = classifier.train_and_evaluate(_config(), workdir)
  assert (result.start_step, result.step) == (0, 150)
  records = read_metrics(workdir)
  last = records[-1]
  assert 0.0 <= last["eval_accuracy"] <= 1.0
  assert last["eval_accuracy"] > 0.85, last  # 8x8 digits resized to 28x28, 150 steps
  assert last["eval_macro_f1"] > 0.8 and last["images_per_sec"] > 0
  with open(os.path.join(workdir, "eval", "report_step_0000150.json")) as f:
    report = json.load(f)
  confusion = np.array(report["confusion"])
  assert confusion.shape == (10, 10) and confusion.sum() == 297  # the whole test split
  assert report["accuracy"] == pytest.approx(np.trace(confusion) / 297)
  assert report["accuracy"] == pytest.approx(last["eval_accuracy"])
  png = Image.open(os.path.join(workdir, "eval", "confusion_step_0000150.png"))
  assert png.size[0] > 300
  assert not os.path.exists(os.path.join(workdir, "samples"))
  assert Checkpointer(workdir).all_steps() == [75, 150]
  with open(os.path.join(workdir, "best", "best.json")) as f:
    assert json.load(f)["value"] == last["eval_accuracy"]

  resumed = classifier.train_and_evaluate(_config(num_train_steps=160), workdir)
  assert (resumed.start_step, resumed.step) == (150, 160)


def test_eval_step_counts_only_real_examples():
  task = ClassifierTask(_config(), (28, 28, 1), 10)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  batch = {"image": jnp.zeros((6, 28, 28, 1)), "label": jnp.array([0, 1, 2, 3, 0, 0]),
           "mask": jnp.array([1, 1, 1, 1, 0, 0], jnp.float32)}
  sums = jax.device_get(jax.jit(task.eval_step)(state, batch, jnp.int32(0)))
  assert sums["count"] == 4 and sums["confusion"].sum() == 4
  np.testing.assert_array_equal(sums["confusion"].sum(axis=1)[:4], [1, 1, 1, 1])


def test_bad_config_is_rejected():
  with pytest.raises(ValueError, match="Unknown config.model \(classifier\) .vgg.; use one of small_cnn"):
    ClassifierTask(_config(model="vgg"), (28, 28, 1), 10)
  with pytest.raises(ValueError, match="optimizer"):
    ClassifierTask(_config(optimizer="lamb"), (28, 28, 1), 10)
  with pytest.raises(ValueError, match="at least 2"):
    ClassifierTask(_config(), (28, 28, 1), 1)


def test_seed_cifar10_preset_is_the_seeds_cnn():
  """Three valid 3x3 convolutions of 32, 64, 128 filters, each before a 2x2
  max-pool (32 -> 30 -> 15 -> 13 -> 6 -> 4 -> 2), dense 128, dropout, 10
  logits; Adam at batch 64."""
  config = get_config("seed_cifar10")
  assert (config.model, config.optimizer, config.batch_size, config.image_size) == (
      "seed_cifar_cnn", "adam", 64, 32)
  variables = jax.eval_shape(lambda: make_classifier(config.model, 10).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False))
  shapes = {k: v["kernel"].shape for k, v in variables["params"].items()}
  assert shapes == {"Conv_0": (3, 3, 3, 32), "Conv_1": (3, 3, 32, 64), "Conv_2": (3, 3, 64, 128),
                    "Dense_0": (2 * 2 * 128, 128), "Dense_1": (128, 10)}
  with pytest.raises(ValueError, match="Unknown classifier preset 'imagenet'; use one of "
                     "seed_cifar10, cifar10"):
    get_config("imagenet")


def test_shift_and_flip_averaging_means_six_views():
  task = ClassifierTask(_config(eval_flip_tta=True, eval_shift_tta=1), (8, 8, 1), 4)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  images = np.random.default_rng(1).uniform(-1, 1, (3, 8, 8, 1)).astype(np.float32)
  batch = {"image": jnp.asarray(images), "label": jnp.array([0, 1, 2]), "mask": jnp.ones(3)}
  sums = jax.device_get(jax.jit(task.eval_step)(state, batch, jnp.int32(0)))
  views = [np.stack([_shift(x, d, d) for x in v]) for v in (images, images[:, :, ::-1])
           for d in (0, 1, -1)]
  p = np.mean([np.asarray(jax.nn.softmax(task.apply(state, jnp.asarray(v)))) for v in views], 0)
  np.testing.assert_allclose(sums["loss"], -np.log(p[np.arange(3), [0, 1, 2]]).sum(), rtol=1e-5)
  with pytest.raises(ValueError, match="eval_shift_tta must be >= 0"):
    ClassifierTask(_config(eval_shift_tta=-1), (8, 8, 1), 4)


def test_label_smoothing_and_flip_averaging():
  config = _config(label_smoothing=0.2, eval_flip_tta=True)
  task = ClassifierTask(config, (8, 8, 1), 4)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  logits = jnp.array([[2.0, 0.0, -1.0, 0.5]])
  want = -(0.85 * jax.nn.log_softmax(logits)[0, 1] +
           0.05 * jax.nn.log_softmax(logits)[0, [0, 2, 3]].sum())
  assert float(task._loss(logits, jnp.array([1]))[0]) == pytest.approx(float(want), rel=1e-6)
  images = jnp.asarray(np.random.default_rng(0).normal(size=(3, 8, 8, 1)), jnp.float32)
  batch = {"image": images, "label": jnp.array([0, 1, 2]), "mask": jnp.ones(3)}
  sums = jax.device_get(jax.jit(task.eval_step)(state, batch, jnp.int32(0)))
  p = (jax.nn.softmax(task.apply(state, images)) +
       jax.nn.softmax(task.apply(state, images[:, :, ::-1]))) / 2
  np.testing.assert_allclose(sums["loss"], -np.log(np.asarray(p)[np.arange(3), [0, 1, 2]]).sum(),
                             rtol=1e-5)
  np.testing.assert_array_equal(np.argmax(sums["confusion"], axis=1)[np.arange(3)],
                                np.argmax(np.asarray(p), axis=1))
