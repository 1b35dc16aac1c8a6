"""Class-conditional GANs (projection, ACGAN), the SNGAN ResNet, conditional
evaluation (intra-FID, class accuracy, CAS) and training a classifier on a
GAN's samples."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_DCGAN, assert_resumes_bitwise
from experiments import classifier as classifier_experiment
from experiments import gan as gan_experiment
from experiments.configs import classifier as classifier_configs
from experiments.configs import gan as gan_configs
from jaxgan import evaluation, metrics, runs
from jaxgan.models.conditioning import ConditionalBatchNorm
from jaxgan.models.dcgan import make_dcgan
from jaxgan.models.sngan import avg_pool, make_sngan, upsample
from jaxgan.tasks.gan import GANTask
from jaxgan.writers import read_metrics

K = 10


def _config(preset, **overrides):
  config = gan_configs.get_config(preset)
  config.update(dict(batch_size=16, num_sample_images=16))
  config.update(overrides)
  return config


def _num_params(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _init(module, x, labels=None, **kw):
  return module.init(jax.random.PRNGKey(0), x, train=False, labels=labels, **kw)


# -- models ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size, conditional", [(28, "projection"), (28, "acgan"),
                                               (16, "projection"), (16, "acgan")])
def test_conditional_dcgan_shapes(size, conditional):
  g, d = make_dcgan(size, 1, ngf=8, ndf=8, num_classes=K, conditional=conditional)
  z, labels = jnp.zeros((3, 100)), jnp.array([0, 4, 9])
  g_vars = _init(g, z, labels)
  x = g.apply(g_vars, z, train=False, labels=labels)
  assert x.shape == (3, size, size, 1)
  out = d.apply(_init(d, x, labels), x, train=False, labels=labels)
  if conditional == "acgan":
    assert out[0].shape == (3,) and out[1].shape == (3, K)
  else:
    assert out.shape == (3,)
  with pytest.raises(ValueError, match="needs labels"):
    g.apply(g_vars, z, train=False)


def test_projection_adds_the_class_embedding_inner_product():
  """D(x, y) = D_uncond(x) + <E[y], h(x)>: the label moves the output; without
  the embedding's rows it is the unconditional D with the same weights; the
  term is linear in E[y]."""
  _, d = make_dcgan(16, 1, ndf=8, num_classes=K, conditional="projection")
  _, plain = make_dcgan(16, 1, ndf=8)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 16, 1))
  variables = _init(d, x, jnp.array([0, 0]))
  out = lambda v, y: d.apply(v, x, train=False, labels=jnp.full((2,), y))
  shared = {k: v for k, v in variables["params"].items() if k != "Projection_0"}
  base = plain.apply({**variables, "params": shared}, x, train=False)
  embedding = variables["params"]["Projection_0"]["Dense_0"]["kernel"]  # [K, F]
  with_rows = lambda e: {**variables, "params": {**shared, "Projection_0": {
      "Dense_0": {"kernel": e}}}}
  assert not np.allclose(out(variables, 3), out(variables, 7))
  for y in range(K):
    np.testing.assert_allclose(out(with_rows(jnp.zeros_like(embedding)), y), base,
                               rtol=1e-6, atol=1e-6)
  term = out(variables, 5) - base
  doubled = out(with_rows(embedding.at[5].multiply(2.0)), 5) - base
  np.testing.assert_allclose(doubled, 2 * term, rtol=1e-4, atol=1e-5)
  # Another row's change leaves class 5's output alone.
  np.testing.assert_allclose(out(with_rows(embedding.at[2].multiply(3.0)), 5),
                             out(variables, 5), rtol=1e-6, atol=1e-6)


def test_conditional_batchnorm_uses_the_labels_scale_and_offset():
  cbn = ConditionalBatchNorm(num_classes=3)
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 4, 4, 5)) * 3.0 + 1.0
  labels = jnp.array([0, 1, 2, 0, 1, 2])
  variables = cbn.init(jax.random.PRNGKey(0), x, labels, train=True)
  scale = jnp.arange(15.0).reshape(3, 5) / 10 + 0.5
  bias = -jnp.arange(15.0).reshape(3, 5) / 7
  variables = {**variables, "params": {**variables["params"], "scale": scale, "bias": bias}}
  y, _ = cbn.apply(variables, x, labels, train=True, mutable=["batch_stats"])
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  want = (x - mean) / jnp.sqrt(var + 1e-5) * scale[labels][:, None, None] + \
      bias[labels][:, None, None]
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_acgan_class_loss_by_hand():
  task = GANTask(_config("acgan"), (28, 28, 1), K)
  logits = jnp.array([[2.0, 0.0] + [-30.0] * 8, [0.0, 1.0] + [-30.0] * 8])
  # Cross-entropy of two nearly-binary cases: log(1 + e^-2) and log(1 + e^-1).
  want = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
  np.testing.assert_allclose(task._class_loss(logits, jnp.array([0, 1])), want, rtol=1e-5)


def test_acgan_losses_add_the_class_terms_to_both_networks():
  """With class_loss_weight 0 and 1 the adversarial parts agree, and the
  step's G and D gradients differ only through the class terms: D's total
  is its adversarial loss plus CE(real) + CE(fake), G's plus CE(fake)."""
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(-1, 1, (16, 16, 16, 1)).astype(np.float32),
           "label": rng.integers(0, K, 16).astype(np.int32)}
  results = {}
  for weight in (0.0, 1.0):
    task = GANTask(_config("acgan", class_loss_weight=weight, **TINY_DCGAN), (16, 16, 1), K)
    state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
    results[weight] = jax.jit(task.train_step)(state, batch)
  (s0, m0), (s1, m1) = results[0.0], results[1.0]
  # Same initial state and draws: the metrics computed before the updates agree.
  for key in ("d_loss", "d_class_loss", "class_accuracy_real", "d_real", "d_fake"):
    np.testing.assert_allclose(m0[key], m1[key], rtol=1e-6)
  assert 2 * 0.5 * math.log(K) < float(m1["d_class_loss"]) < 2 * 2 * math.log(K)
  assert float(m1["g_class_loss"]) > 0
  changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(s0.d.params),
                                                   jax.tree.leaves(s1.d.params))]
  assert any(changed)


def test_sngan_resnet_shapes_and_parameter_counts():
  """The CIFAR-10 models of Miyato et al. (2018): G 4,276,739 parameters, D
  1,053,825, counted by hand from the architecture below."""
  # G: linear 128 -> 4*4*256; three blocks of (BN 2*256, conv3x3 256->256 +
  # bias, BN, conv3x3, 1x1 shortcut 256->256 + bias); BN; conv3x3 256->3 + bias.
  block_g = 2 * 512 + 2 * (9 * 256 * 256 + 256) + (256 * 256 + 256)
  want_g = (128 * 16 * 256 + 16 * 256) + 3 * block_g + 512 + (9 * 256 * 3 + 3)
  # D: optimized block (conv3x3 3->128, conv3x3 128->128, 1x1 shortcut 3->128),
  # a down-sampling block (2 convs + 1x1 shortcut), two plain blocks (2 convs),
  # linear 128 -> 1.
  conv = lambda i, o, k=3: k * k * i * o + o
  want_d = (conv(3, 128) + conv(128, 128) + conv(3, 128, 1) + 2 * conv(128, 128)
            + conv(128, 128, 1) + 4 * conv(128, 128) + 129)
  assert (want_g, want_d) == (4_276_739, 1_053_825)
  g, d = make_sngan(32, 3, ngf=256, ndf=128)
  z = jnp.zeros((2, 128))
  g_vars = jax.eval_shape(lambda: _init(g, z))
  d_vars = jax.eval_shape(lambda: _init(d, jnp.zeros((2, 32, 32, 3))))
  assert _num_params(g_vars["params"]) == want_g
  assert _num_params(d_vars["params"]) == want_d
  assert jax.eval_shape(lambda: g.apply(_init(g, z), z, train=False)).shape == (2, 32, 32, 3)
  assert jax.eval_shape(lambda v: d.apply(v, jnp.zeros((2, 32, 32, 3)), train=False),
                        d_vars).shape == (2,)
  # Projection adds a K x 128 embedding to D and K-class BN scales to G.
  gp, dp = make_sngan(32, 3, num_classes=K, conditional="projection")
  labels = jnp.zeros((2,), jnp.int32)
  dp_vars = jax.eval_shape(lambda: _init(dp, jnp.zeros((2, 32, 32, 3)), labels))
  assert _num_params(dp_vars["params"]) == want_d + K * 128
  gp_vars = jax.eval_shape(lambda: _init(gp, z, labels))
  assert _num_params(gp_vars["params"]) == want_g + 3 * 2 * 2 * 256 * (K - 1)
  for size in (48, 64):
    g, _ = make_sngan(size, 3, ngf=16, ndf=16)
    assert jax.eval_shape(lambda: g.apply(_init(g, z), z, train=False)).shape[1] == size


def test_resampling_helpers():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  np.testing.assert_array_equal(upsample(x), jnp.repeat(jnp.repeat(x, 2, 1), 2, 2))
  want = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
  np.testing.assert_allclose(avg_pool(x), want)


# -- the task -----------------------------------------------------------------------------

def test_conditional_grid_has_one_row_per_class(tmp_path):
  config = _loop_config("cgan_projection", num_train_steps=1, num_sample_images=16)
  gan_experiment.train_and_evaluate(config, str(tmp_path))
  png = np.asarray(Image.open(tmp_path / "samples" / "step_0000001.png"))
  # 10 rows and round(sqrt(16)) = 4 columns of 16x16 images, 2-pixel padding, x2.
  assert png.shape == (2 * (K * 18 + 2), 2 * (4 * 18 + 2))
  task = GANTask(config, (16, 16, 1), K)
  assert np.array_equal(np.asarray(task.sample_labels), np.repeat(np.arange(K), 4))
  # One z per column, shared down the rows.
  np.testing.assert_array_equal(task.sample_z[:4], task.sample_z[4:8])


def _loop_config(preset, **overrides):
  fields = dict(dataset="digits", num_train_steps=2, log_every_steps=1, sample_every_steps=2,
                checkpoint_every_steps=2, eval_every_steps=2, eval_split="test[:32]",
                **TINY_DCGAN)
  return _config(preset, **{**fields, **overrides})


def test_acgan_run_resumes_bitwise_and_logs_class_metrics(tmp_path):
  assert_resumes_bitwise(gan_experiment.train_and_evaluate,
                         _loop_config("acgan", eval_every_steps=4), str(tmp_path))
  record = read_metrics(str(tmp_path / "straight"))[-1]
  for key in ("d_class_loss", "g_class_loss", "class_accuracy_real",
              "eval_class_accuracy_real", "eval_class_accuracy_fake"):
    assert np.isfinite(record[key]), key
  assert 0 <= record["eval_class_accuracy_real"] <= 1


def test_fake_labels_are_uniform_and_the_unconditional_step_draws_none():
  task = GANTask(_config("acgan"), (28, 28, 1), K)
  labels = task._fake_labels(None, jax.random.PRNGKey(3), 20000)
  counts = np.bincount(np.asarray(labels), minlength=K)
  assert counts.sum() == 20000 and np.all(np.abs(counts / 20000 - 0.1) < 0.01)
  assert GANTask(_config("dcgan"), (28, 28, 1), K)._fake_labels(None, jax.random.PRNGKey(3), 4) is None


@pytest.mark.parametrize("overrides, num_classes, message", [
    (dict(conditional="projection"), 1, "needs labelled data with at least 2 classes"),
    (dict(conditional="auxiliary"), K, "Unknown config.conditional 'auxiliary'"),
    (dict(model="progan"), K, "Unknown config.model 'progan'; use one of dcgan, sngan, biggan"),
    (dict(model="sngan"), K, "SNGAN ResNet needs image_size divisible by 8"),
])
def test_conditional_config_errors(overrides, num_classes, message):
  config = _config("dcgan", **overrides)
  with pytest.raises(ValueError, match=message):
    GANTask(config, (config.image_size, config.image_size, 1), num_classes)


def test_sngan_preset_trains_at_32(tmp_path):
  config = _loop_config("sngan_projection", image_size=32, ngf=8, ndf=8, n_critic=1,
                        batch_size=8, num_train_steps=1, eval_every_steps=1)
  result = gan_experiment.train_and_evaluate(config, str(tmp_path))
  record = read_metrics(str(tmp_path))[-1]
  assert np.isfinite(record["d_loss"]) and np.isfinite(record["eval_d_loss"])
  assert result.state.g_ema["params"]["Dense_0"]["kernel"].shape == (128, 4 * 4 * 8)


# -- evaluation --------------------------------------------------------------------------

def test_intra_fid_with_one_class_equals_fid_and_averages_classes():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(60, 4)), rng.normal(1.0, 1.0, size=(50, 4))
  mean, per_class = metrics.intra_fid(real, np.zeros(60), fake, np.zeros(50))
  assert mean == pytest.approx(metrics.fid_from_features(real, fake), rel=1e-12)
  assert per_class == {0: pytest.approx(mean)}
  real_labels, fake_labels = np.arange(60) % 3, np.arange(50) % 3
  mean, per_class = metrics.intra_fid(real, real_labels, fake, fake_labels)
  want = [metrics.fid_from_features(real[real_labels == c], fake[fake_labels == c])
          for c in range(3)]
  assert mean == pytest.approx(np.mean(want)) and sorted(per_class) == [0, 1, 2]
  with pytest.raises(ValueError, match="class 2 has 20 real and 1 generated"):
    metrics.intra_fid(real, real_labels, fake[:5], fake_labels[:5])
  probs = np.eye(3)[[0, 1, 2, 0]]
  assert metrics.class_accuracy(probs, [0, 1, 1, 0]) == 0.75


@pytest.fixture(scope="module")
def conditional_runs(tmp_path_factory):
  """A tiny cgan_projection run and a classifier trained on digits (16x16)."""
  root = tmp_path_factory.mktemp("cond")
  gan_dir, clf_dir = str(root / "gan"), str(root / "clf")
  gan_experiment.train_and_evaluate(_loop_config("cgan_projection", num_train_steps=2), gan_dir)
  clf = classifier_configs.get_config()
  clf.update(dict(dataset="digits", image_size=16, batch_size=32, num_train_steps=30,
                  eval_every_steps=30, log_every_steps=30, checkpoint_every_steps=30,
                  eval_split="test[:64]"))
  classifier_experiment.train_and_evaluate(clf, clf_dir)
  return gan_dir, clf_dir, clf


def test_evaluation_reports_intra_fid_and_class_accuracy(conditional_runs):
  gan_dir, clf_dir, _ = conditional_runs
  extractor = runs.extractor(f"classifier:{clf_dir}")
  gan = runs.restore(gan_dir)
  result = evaluation.evaluate_generator(gan, extractor, split="test[:100]")
  assert np.isfinite(result["intra_fid"]) and len(result["intra_fid_per_class"]) == K
  assert 0 <= result["class_accuracy"] <= 1
  real_acc = result["protocol"]["real_class_accuracy"]
  assert real_acc > 0.3  # the classifier trained 30 steps knows the real digits
  # Real images standing in for the samples: class accuracy is the real accuracy.
  baseline = evaluation.evaluate_generator(gan, extractor, split="test[:100]",
                                           baseline_split="test[100:200]")
  want = metrics.class_accuracy(
      *_probs_and_labels(extractor, gan_dir, "test[100:200]"))
  assert baseline["class_accuracy"] == pytest.approx(want)


def _probs_and_labels(extractor, run_dir, split):
  from jaxgan.data import Data
  images, labels = Data(runs.load_config(run_dir)).first_images(split, with_labels=True)
  return extractor(images)[1], labels


def test_sample_classes_draws_the_asked_classes(conditional_runs):
  gan_dir, _, _ = conditional_runs
  labels = np.array([3, 3, 7, 0])
  gan = runs.restore(gan_dir, expect="gan")
  a = evaluation.sample_classes(gan, labels, seed=5)
  b = evaluation.sample_classes(gan, labels, seed=5)
  assert a.shape == (4, 16, 16, 1) and np.array_equal(a, b)
  # The label is an input of the generator: the same z under another class differs.
  c = evaluation.sample_classes(gan, np.array([4, 3, 7, 0]), seed=5)
  assert not np.allclose(a[0], c[0]) and np.allclose(a[1:], c[1:], atol=1e-6)


def test_classifier_on_generated_data_and_the_cas(conditional_runs, tmp_path):
  gan_dir, clf_dir, clf = conditional_runs
  cas = clf.copy_and_resolve_references()
  # A constant learning rate: a cosine schedule depends on num_train_steps,
  # which the interrupted run below changes.
  cas.update(dict(eval_every_steps=4, log_every_steps=2, checkpoint_every_steps=2,
                  generated_data=gan_dir, schedule="constant"))
  straight = assert_resumes_bitwise(classifier_experiment.train_and_evaluate, cas,
                                    str(tmp_path))
  # The generator rides along in the state, untouched by training.
  gan = runs.restore(gan_dir)
  for a, b in zip(jax.tree.leaves(jax.device_get(gan.state.g_ema)),
                  jax.tree.leaves(jax.device_get(straight.state.generator))):
    np.testing.assert_array_equal(a, b)
  result = evaluation.classification_accuracy_score(
      gan, runs.classifier_run(str(tmp_path / "straight")), runs.classifier_run(clf_dir),
      split="test[:64]")
  assert 0 <= result["cas"] <= 1 and result["cas_real_accuracy"] > 0.3
  with pytest.raises(ValueError, match="was not trained on this run's samples"):
    evaluation.classification_accuracy_score(gan, runs.classifier_run(clf_dir))


def test_generated_batches_mix_samples_and_real_images(conditional_runs):
  gan_dir, _, clf = conditional_runs
  config = clf.copy_and_resolve_references()
  config.update(dict(generated_data=gan_dir, generated_fraction=0.25))
  task = runs.build(config)
  state = task.init_state(jax.random.PRNGKey(0))
  batch = {"image": np.full((16, 16, 16, 1), 0.5, np.float32),
           "label": np.full(16, 9, np.int32)}
  images, labels = task._mix_generated(state, batch, jax.random.PRNGKey(1))
  assert images.shape == (16, 16, 16, 1)
  assert np.all(np.asarray(images[4:]) == 0.5) and np.all(np.asarray(labels[4:]) == 9)
  assert not np.any(np.all(np.asarray(images[:4]) == 0.5, axis=(1, 2, 3)))


def test_generated_data_errors(conditional_runs, tmp_path):
  gan_dir, _, clf = conditional_runs
  plain = str(tmp_path / "plain")
  gan_experiment.train_and_evaluate(_loop_config("dcgan", num_train_steps=1), plain)
  config = clf.copy_and_resolve_references()
  config.generated_data = plain
  with pytest.raises(ValueError, match="not a class-conditional GAN run"):
    runs.build(config)
  config.update(dict(generated_data=gan_dir, generated_fraction=1.5))
  with pytest.raises(ValueError, match="generated_fraction must be in"):
    runs.build(config)
  config.update(dict(generated_fraction=1.0, image_size=28))
  with pytest.raises(ValueError, match="makes 10-class images of shape"):
    runs.build(config)
  config.update(dict(generated_data=clf_dir_of(conditional_runs), image_size=16))
  with pytest.raises(ValueError, match="config.generated_data: .* is a classifier run"):
    runs.build(config)


def clf_dir_of(conditional_runs):
  return conditional_runs[1]


def test_inpainting_refuses_a_conditional_run(conditional_runs):
  from experiments import inpaint
  gan_dir, _, _ = conditional_runs
  with pytest.raises(ValueError, match="class-conditional GAN.*pass an unconditional GAN run"):
    inpaint._model(gan_dir)
