"""Generator evaluation end to end: classifier features, metrics, CLI, export."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import classifier, dcgan
from experiments.configs.classifier import get_config as classifier_config
from experiments.configs.dcgan import get_config as dcgan_config
from jaxgan import evaluation
from jaxgan import runs as run_lib
from jaxgan.data import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
        "inception_score", "class_mix_tv", "protocol")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A digits classifier (60 steps) and a DCGAN run (2 steps) on digits."""
  root = tmp_path_factory.mktemp("eval")
  clf = classifier_config()
  clf.update(dict(dataset="digits", batch_size=32, num_train_steps=60, log_every_steps=60,
                  eval_every_steps=60, checkpoint_every_steps=60, learning_rate=3e-3,
                  augment_crop_padding=0))
  classifier.train_and_evaluate(clf, str(root / "clf"))
  gan = dcgan_config()
  gan.update(dict(dataset="digits", batch_size=16, num_train_steps=2, log_every_steps=1,
                  sample_every_steps=2, checkpoint_every_steps=2, eval_every_steps=1,
                  num_sample_images=16, fid_features=str(root / "clf"), num_eval_samples=100,
                  eval_split="test[:100]"))
  dcgan.train_and_evaluate(gan, str(root / "gan"))
  return str(root / "clf"), str(root / "gan")


def test_generator_scores_far_from_real_data(runs):
  """Real held-out digits score near the reference; an untrained generator
  is far away on every metric; the protocol records how."""
  clf_dir, gan_dir = runs
  extractor = run_lib.extractor(f"classifier:{clf_dir}")
  gan = run_lib.restore(gan_dir, expect="gan")
  real = evaluation.evaluate_generator(gan, extractor, split="train[:600]",
                                       baseline_split="train[600:1200]")
  init = evaluation.evaluate_generator(run_lib.restore(gan_dir, 0), extractor,
                                       split="train[:600]")
  for r in (real, init):
    assert set(KEYS) <= set(r)
  assert real["fid"] < 0.2 * init["fid"], (real["fid"], init["fid"])
  assert real["kid_mean"] < init["kid_mean"]
  assert real["precision"] > init["precision"] and real["recall"] > init["recall"]
  assert real["inception_score"] > 3 > init["inception_score"] >= 1
  assert real["class_mix_tv"] < 0.15 < init["class_mix_tv"]
  protocol = init["protocol"]
  assert protocol["extractor"] == "classifier:small_cnn"
  assert len(protocol["extractor_checkpoint_sha256"]) == 64
  assert (protocol["num_real"], protocol["num_generated"], protocol["step"]) == (600, 600, 0)
  assert protocol["reference"] == "digits train[:600]"
  with pytest.raises(DataError, match="No checkpoint for step 7"):
    run_lib.restore(gan_dir, 7)
  with pytest.raises(DataError, match="is a gan run .*needs a classifier"):
    run_lib.extractor(gan_dir)


def test_features_are_computed_at_full_float32_precision(runs, monkeypatch):
  """Extractors trace and run under default_matmul_precision("highest"), so
  GPUs do not fall back to TF32 in evaluation (on CPU it changes nothing)."""
  clf_dir, _ = runs
  extractor = run_lib.extractor(clf_dir)  # a bare run directory names a classifier run too
  seen, apply = [], extractor._apply

  def spy(params, x):
    seen.append(jax.config.jax_default_matmul_precision)
    return apply(params, x)

  monkeypatch.setattr(extractor, "_apply", spy)
  features, _ = extractor(np.zeros((5, 8, 8, 1), np.float32))
  assert seen == ["highest"] and features.shape[0] == 5
  assert "highest" in extractor.protocol["precision"]


def test_cli_writes_evaluation_json_and_exports(runs, tmp_path):
  clf_dir, gan_dir = runs
  export = str(tmp_path / "samples.npz")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", f"--workdir={gan_dir}",
       f"--features={clf_dir}", "--num_samples=50", f"--export={export}",
       "--texture_features=random", f"--save_reference={tmp_path / 'ref.npz'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "fid" in proc.stdout and "generator step 2" in proc.stdout
  with open(os.path.join(gan_dir, "evaluation.json")) as f:
    result = json.load(f)
  assert set(KEYS) <= set(result) and result["protocol"]["num_generated"] == 50
  assert result["texture_features"] == "random:0" and result["texture_distance"]["total"] > 0
  assert "texture distance (random:0)" in proc.stdout
  with np.load(tmp_path / "ref.npz") as f:  # the real side, for --reference
    assert f["features"].shape[0] == 100 and "digits test[:100]" in str(f["protocol"])
  assert result["protocol"]["reference"] == "digits test[:100]"  # the run's eval_split
  images = np.load(export)["images"]
  assert images.shape == (50, 28, 28, 1) and images.dtype == np.uint8

  # A features directory that is not a classifier run: the error the command
  # prints (as `error: ...`, exit 1: the DataError it catches) says how to make one.
  with pytest.raises(DataError, match="python -m experiments.classifier"):
    run_lib.extractor(f"classifier:{tmp_path / 'missing'}")


def test_training_logs_fid_and_keeps_the_best_checkpoint(runs):
  from jaxgan.writers import read_metrics
  _, gan_dir = runs
  records = read_metrics(gan_dir)
  assert [r["step"] for r in records] == [1, 2]
  for r in records:
    assert r["eval_fid"] > 0 and r["eval_kid_std"] >= 0 and "eval_kid_mean" in r
  best = min(records, key=lambda r: r["eval_fid"])
  with open(os.path.join(gan_dir, "best", "best.json")) as f:
    record = json.load(f)
  assert record == {"metric": "eval_fid", "mode": "min", "value": best["eval_fid"],
                    "step": best["step"]}
  assert records[-1]["best_eval_fid"] == best["eval_fid"]
  assert os.listdir(os.path.join(gan_dir, "best", "checkpoints")) == [str(best["step"])]


def test_texture_features_of_a_classifier_run(runs):
  """classifier:RUN features: its convolutions' activations over tiles of its
  input size; real digits are nearer each other in texture than to noise."""
  from jaxgan.data import Data
  from jaxgan.texture import gram
  clf_dir, _ = runs
  net = run_lib.texture_features(f"classifier:{clf_dir}")
  assert net.layers == ("Conv_0", "Conv_1")  # the small CNN's two convolutions
  out = net(np.zeros((2, 40, 40, 3), np.float32))
  assert set(out) == set(net.layers) and out["Conv_0"].shape[0] == 2
  digits = Data(run_lib.load_config(clf_dir)).first_images("train[:200]")
  digits = np.repeat((digits + 1.0) / 2.0, 3, axis=-1)
  noise = np.random.default_rng(0).uniform(0, 1, digits[:100].shape).astype(np.float32)
  near = gram.texture_distance(net, digits[:100], digits[100:])
  far = gram.texture_distance(net, noise, digits[100:])
  assert set(near) == {"Conv_0", "Conv_1", "total"}
  assert near["total"] < 0.2 * far["total"], (near, far)


def test_inpaint_command_writes_metrics_for_the_model_and_baselines(runs):
  from experiments import inpaint
  clf_dir, gan_dir = runs
  r = inpaint.inpaint(gan_dir, "center", num_images=8, features=clf_dir, steps=2, restarts=1)
  assert r["model"] == "gan" and r["missing_pixels"] == 196
  assert set(r["methods"]) == {"masked", "mean_fill", "nearest", "gan", "original"}
  for name in ("masked", "mean_fill", "nearest", "gan"):
    assert {"psnr_hole", "ssim_hole", "psnr", "ssim", "classifier_accuracy"} <= set(
        r["methods"][name])
  assert r["methods"]["original"]["classifier_accuracy"] >= r["methods"]["masked"][
      "classifier_accuracy"]
  for path in r["written"]:
    assert os.path.exists(path)
  with pytest.raises(ValueError, match="is a classifier run .*needs a gan or vae run"):
    inpaint.inpaint(clf_dir)


def test_superres_classifier_accuracy_and_feature_loss(runs, tmp_path):
  from experiments import superres
  from experiments.configs.superres import get_config
  from jaxgan.writers import read_metrics
  clf_dir, _ = runs
  config = get_config()
  config.update(dict(dataset="digits", batch_size=16, num_train_steps=2, features=8,
                     num_blocks=1, log_every_steps=2, sample_every_steps=2,
                     checkpoint_every_steps=2, eval_every_steps=2, eval_split="test[:64]",
                     sr_classifier=clf_dir, perceptual_classifier=clf_dir,
                     perceptual_weight=0.1))
  superres.train_and_evaluate(config, str(tmp_path / "sr"))
  last = read_metrics(str(tmp_path / "sr"))[-1]
  for key in ("eval_accuracy_sr", "eval_accuracy_bicubic", "eval_accuracy_hr"):
    assert 0.0 <= last[key] <= 1.0, key
  assert last["eval_accuracy_hr"] > 0.5  # the classifier on real digits
  assert last["perceptual_loss"] > 0 and last["pixel_loss"] > 0  # the feature loss is on


def test_reference_file_gives_the_same_numbers_without_the_real_images(runs, tmp_path,
                                                                        monkeypatch):
  """--save_reference then --reference: the same metrics, the real split not
  read again; a file made with other features is refused; a plain mu/sigma
  file (pytorch-fid, clean-fid) gives FID alone, with a warning."""
  clf_dir, gan_dir = runs
  extractor = run_lib.extractor(clf_dir)
  gan = run_lib.restore(gan_dir, expect="gan")
  ref = str(tmp_path / "reference.npz")
  direct = evaluation.evaluate_generator(gan, extractor, split="test[:100]", num_samples=80,
                                         save_reference=ref)

  def no_reading(*args, **kwargs):
    raise AssertionError("the real images were read")

  monkeypatch.setattr(gan.data, "first_images", no_reading)
  again = evaluation.evaluate_generator(gan, extractor, num_samples=80, reference=ref)
  metric_keys = [k for k in direct if k != "protocol"]
  assert {k: again[k] for k in metric_keys} == {k: direct[k] for k in metric_keys}
  assert again["protocol"]["reference"] == "digits test[:100]"
  assert again["protocol"]["num_real"] == 100 and again["protocol"]["reference_file"] == ref
  with pytest.raises(DataError, match="holds 'digits test\\[:100\\]', not split 'train'"):
    evaluation.evaluate_generator(gan, extractor, split="train", reference=ref)

  class OtherWeights:
    image_shape = extractor.image_shape
    protocol = {**extractor.protocol, "extractor_checkpoint_sha256": "0" * 64}
    __call__ = extractor.__call__

  with pytest.raises(DataError, match="was made with extractor_checkpoint_sha256"):
    evaluation.evaluate_generator(gan, OtherWeights(), reference=ref)

  with np.load(ref) as f:
    np.savez(tmp_path / "mu_sigma.npz", mu=f["mu"].astype(np.float32), sigma=f["sigma"])
  with pytest.warns(UserWarning, match="holds only mu and sigma"):
    fid_only = evaluation.evaluate_generator(gan, extractor, num_samples=80,
                                             reference=str(tmp_path / "mu_sigma.npz"))
  assert set(fid_only) == {"fid", "protocol"}
  assert fid_only["fid"] == pytest.approx(direct["fid"], rel=1e-5)
  with pytest.raises(DataError, match="not mu and sigma"):
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    evaluation.evaluate_generator(gan, extractor, reference=str(tmp_path / "bad.npz"))


def test_samples_written_elsewhere_score_like_the_run(runs, tmp_path):
  """--samples: the run's own samples, exported (uint8) as .npz and as PNGs,
  score the same in both forms, and as the run scores them (up to the uint8
  rounding of the export); bad files are one clear error."""
  clf_dir, gan_dir = runs
  extractor = run_lib.extractor(clf_dir)
  gan = run_lib.restore(gan_dir, expect="gan")
  direct = evaluation.evaluate_generator(gan, extractor, split="test[:100]", num_samples=60,
                                         export=str(tmp_path / "s.npz"))
  evaluation.export_samples(evaluation.load_samples(str(tmp_path / "s.npz")),
                            str(tmp_path / "pngs"))
  from_npz = evaluation.evaluate_generator(gan, extractor, split="test[:100]",
                                           samples=str(tmp_path / "s.npz"))
  from_png = evaluation.evaluate_generator(gan, extractor, split="test[:100]",
                                           samples=str(tmp_path / "pngs"))
  keys = [k for k in direct if k != "protocol"]
  assert {k: from_npz[k] for k in keys} == {k: from_png[k] for k in keys}
  assert from_npz["protocol"]["num_generated"] == 60
  assert from_npz["protocol"]["generated"] == f"samples read from {tmp_path / 's.npz'}"
  assert from_npz["fid"] == pytest.approx(direct["fid"], rel=0.02)
  np.savez(tmp_path / "float.npz", images=np.zeros((4, 8, 8, 1), np.float32))
  with pytest.raises(DataError, match="expected uint8 images"):
    evaluation.load_samples(str(tmp_path / "float.npz"))
  with pytest.raises(DataError, match="holds no PNG/JPEG"):
    evaluation.load_samples(str(tmp_path))


def test_cli_discriminator_rejection_sampling(runs, tmp_path):
  """`evaluate --drs P`: the samples scored are those the run's calibrated D
  kept (higher calibrated logits than the plain samples'), the protocol says
  how, the file is named after it; it is refused where it cannot apply."""
  clf_dir, gan_dir = runs
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", f"--workdir={gan_dir}",
       f"--features={clf_dir}", "--num_samples=40", "--drs=50", "--drs_round=300",
       f"--export={tmp_path / 'drs.npz'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "DRS 50 (kept" in proc.stdout
  with open(os.path.join(gan_dir, "evaluation_drs_50.json")) as f:
    result = json.load(f)
  drs = result["protocol"]["rejection_sampling"]
  assert result["protocol"]["num_generated"] == 40 and drs["kept"] >= 40
  assert drs["percentile"] == 50 and drs["candidates"] % 300 == 0
  assert drs["calibration"]["real"] == "digits train"
  assert drs["calibration"]["num_real"] == 300 and drs["calibration"]["num_generated"] == 300
  assert "discriminator rejection sampling at percentile 50" in result["protocol"]["generated"]

  gan = run_lib.restore(gan_dir, expect="gan")
  logit = lambda x: drs["calibration"]["scale"] * np.asarray(gan.task.discriminate(
      gan.state, x)) + drs["calibration"]["bias"]
  kept = evaluation.load_samples(str(tmp_path / "drs.npz"))
  plain = evaluation.generate(gan.task, gan.state, 40, gan.config.seed)
  assert logit(kept).mean() > logit(plain).mean()
  extractor = run_lib.extractor(clf_dir)
  with pytest.raises(ValueError, match="--drs filters the generator's samples"):
    evaluation.evaluate_generator(gan, extractor, baseline_split="test[:50]", drs=50)


def test_protocol_records_stylegan2_noise_inputs(runs, tmp_path):
  """A StyleGAN2 run's evaluation says how its samples got their noise
  inputs (per sample by default); a DCGAN's, having none, does not."""
  from experiments import gan as gan_experiment
  from experiments.configs import gan as gan_configs
  clf_dir, gan_dir = runs
  extractor = run_lib.extractor(clf_dir)
  config = gan_configs.get_config("stylegan2")
  config.update(dict(dataset="digits", image_size=8, ngf=8, ndf=8, latent_dim=16,
                     batch_size=8, num_train_steps=1, log_every_steps=1,
                     sample_every_steps=1, checkpoint_every_steps=1, eval_every_steps=0,
                     num_sample_images=4))
  config.model_options.mapping_layers = 1
  gan_experiment.train_and_evaluate(config, str(tmp_path / "sg2"))
  sg2 = evaluation.evaluate_generator(run_lib.restore(str(tmp_path / "sg2"), expect="gan"),
                                      extractor, split="test[:40]")
  assert sg2["protocol"]["generated"].endswith(", noise inputs 'random'")
  plain = evaluation.evaluate_generator(run_lib.restore(gan_dir, expect="gan"), extractor,
                                        split="test[:40]")
  assert "noise" not in plain["protocol"]["generated"]


def test_sampling_and_features_split_over_eight_devices_equal_one_devices(runs, num_devices):
  """generate and the classifier's feature extraction (the Inception
  extractor shares `_in_batches`) with each batch's rows split over the 8
  simulated devices (the default) give one device's numbers; 37 rows in batches of 20 do not divide by 8 (padding dropped)."""
  from jaxgan import sharding
  from jaxgan.evaluation.extractors import ClassifierExtractor
  from jaxgan.evaluation.generators import generate
  clf_dir, gan_dir = runs
  gan = run_lib.restore(gan_dir, expect="gan")
  one = sharding.make_mesh(jax.devices()[:1])
  eight = generate(gan.task, gan.state, 37, seed=5, batch_size=20)
  single = generate(gan.task, gan.state, 37, seed=5, batch_size=20, mesh=one)
  assert eight.shape == single.shape == (37, 28, 28, 1)
  np.testing.assert_allclose(eight, single, rtol=1e-5, atol=1e-6)
  clf = run_lib.restore(clf_dir, expect="classifier")
  f8, p8 = ClassifierExtractor(clf, batch_size=20)(eight)
  f1, p1 = ClassifierExtractor(clf, batch_size=20, mesh=one)(eight)
  assert f8.shape == f1.shape and len(f8) == 37
  np.testing.assert_allclose(f8, f1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(p8, p1, rtol=1e-5, atol=1e-7)


def test_cli_on_two_processes_equals_one(runs, tmp_path):
  """`experiments.evaluate` on 2 processes x 2 devices (jax.distributed on
  localhost): each computes its share, process 0 alone writes the result,
  which equals one process's scores."""
  import socket
  from conftest import env_with_devices
  clf_dir, gan_dir = runs
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  export = str(tmp_path / "samples.npz")
  env = dict(env_with_devices(2), JAX_PLATFORMS="cpu")
  procs = [subprocess.Popen(
      [sys.executable, "-m", "experiments.evaluate", f"--workdir={gan_dir}", "--step=2",
       f"--features={clf_dir}", "--num_samples=37", f"--export={export}",
       f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]
  try:
    outputs = [p.communicate(timeout=300)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.communicate()
  assert [p.returncode for p in procs] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
  assert "fid" in outputs[0] and "fid" not in outputs[1]  # process 0 reports
  with open(os.path.join(gan_dir, "evaluation_step_2.json")) as f:
    two = json.load(f)
  one = evaluation.evaluate_generator(run_lib.restore(gan_dir, 2),
                                      run_lib.extractor(f"classifier:{clf_dir}"), num_samples=37)
  assert two["protocol"]["num_generated"] == one["protocol"]["num_generated"] == 37
  for key in KEYS[:-1]:
    np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
  assert np.load(export)["images"].shape == (37, 28, 28, 1)


def test_cli_with_every_checkpoint_damaged_is_one_line(runs, tmp_path):
  """`experiments.evaluate` restores through `jaxgan.runs.restore` (the
  newest readable checkpoint, tests/test_untrusted_files.py); when none can
  be read, one error line and exit 1, not a TensorStore dump."""
  import glob
  import shutil
  clf_dir, gan_dir = runs
  copy = str(tmp_path / "gan")
  shutil.copytree(gan_dir, copy)
  for step_dir in glob.glob(os.path.join(copy, "checkpoints", "[0-9]*")):
    data = max(glob.glob(os.path.join(step_dir, "**", "d", "*"), recursive=True),
               key=os.path.getsize)
    with open(data, "r+b") as f:
      f.truncate(10)
  proc = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={copy}",
                         f"--features={clf_dir}", "--num_samples=20"], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: No checkpoint in {copy}/checkpoints can be restored")
  assert "pybind11" not in last and len(last) < 800
