"""Determinism and exact resume: same seed -> bitwise-identical parameters;
stopped mid-epoch and resumed -> bitwise identical to never stopped; a
resume with a different config is refused; SIGTERM checkpoints and exits."""

import json
import os
import signal

import jax
import numpy as np
import pytest

from conftest import TINY_DCGAN, signal_dcgan_run
from experiments import dcgan
from experiments.configs.dcgan import get_config
from jaxgan.checkpoint import Checkpointer
from jaxgan.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(**overrides):
  c = get_config()
  # 48 training images in batches of 16: an epoch is 3 steps. The small DCGAN:
  # these tests are about the loop.
  c.update(dict(dataset="digits", train_split="train[:48]", batch_size=16, num_train_steps=8,
                **TINY_DCGAN, log_every_steps=4, sample_every_steps=100, checkpoint_every_steps=4,
                eval_every_steps=0, num_sample_images=4, shuffle_buffer=48))
  c.update(overrides)
  return c


def leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def assert_bitwise_equal(a, b):
  la, lb = leaves(a), leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    assert x.dtype == y.dtype and x.shape == y.shape
    assert x.tobytes() == y.tobytes()


def test_same_seed_and_resume_mid_epoch_are_bitwise_identical(tmp_path):
  a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
  a = dcgan.train_and_evaluate(config(), a_dir)

  # Stopped at step 5, in the middle of the second epoch, then resumed.
  b = dcgan.train_and_evaluate(config(num_train_steps=5), b_dir)
  assert b.step == 5
  with open(os.path.join(b_dir, "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"step": 6, "d_loss": 0.0}) + "\n" + '{"step": 7, "d_lo')  # killed
  b = dcgan.train_and_evaluate(config(), b_dir)
  assert (b.start_step, b.step) == (5, 8)
  assert_bitwise_equal(a.state, b.state)
  # The lines logged after the checkpoint (and the torn one) were dropped.
  assert [r["step"] for r in read_metrics(b_dir)] == [4, 5, 8]

  # Two independent runs with the same seed agree bitwise at step 4 too.
  at4 = [Checkpointer(d).restore(a.state, 4) for d in (a_dir, b_dir)]
  assert_bitwise_equal(*at4)
  assert not all(np.array_equal(x, y) for x, y in zip(leaves(at4[0]), leaves(a.state)))

  # Provenance: one record per start.
  with open(os.path.join(b_dir, "run.json")) as f:
    starts = json.load(f)["starts"]
  assert [s["start_step"] for s in starts] == [0, 5]
  for key in ("seed", "git_commit", "git_dirty", "packages", "backend", "devices",
              "device_count", "process_count", "python", "command"):
    assert key in starts[0]
  assert starts[0]["packages"]["jax"] == jax.__version__
  assert starts[0]["device_count"] == jax.device_count() and starts[0]["process_count"] == 1

  # Resuming with a different config is refused, naming the fields; the
  # run directory is untouched.
  before = open(os.path.join(b_dir, "config.json")).read()
  with pytest.raises(ValueError, match=r"n_critic: 1 -> 2.*seed: 0 -> 1"):
    dcgan.train_and_evaluate(config(num_train_steps=10, seed=1, n_critic=2), b_dir)
  assert open(os.path.join(b_dir, "config.json")).read() == before
  assert Checkpointer(b_dir).latest_step() == 8


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  fields = dict(dataset="digits", batch_size=16, log_every_steps=1, checkpoint_every_steps=1000,
                sample_every_steps=1000, eval_every_steps=0, **TINY_DCGAN)
  returncode, err = signal_dcgan_run(workdir, fields, signal.SIGTERM, after_records=3)
  assert returncode == 128 + signal.SIGTERM, err[-2000:]
  assert "Stopped by SIGTERM at step" in err and "Rerun the same command to resume" in err
  step = Checkpointer(workdir).latest_step()
  assert step is not None and step >= 3 and step % 1000  # saved at the signal, not on schedule
  assert f"step {step};" in err

  # The rerun (here in this process: the same train_and_evaluate the command
  # runs, with the config the command line made) resumes at the saved step.
  c = get_config()
  c.update(dict(fields, num_train_steps=step + 1))
  capsys.readouterr()
  resumed = dcgan.train_and_evaluate(c, workdir)
  assert (resumed.start_step, resumed.step) == (step, step + 1)
  assert f"Resuming from the checkpoint at step {step}" in capsys.readouterr().err
  assert Checkpointer(workdir).latest_step() == step + 1


def test_runs_saved_before_a_field_existed_still_resume():
  """A config.json written before a field was added (e.g. `conditional`)
  matches a new config that sets it to the value reproducing that run, and
  only that value."""
  from jaxgan import provenance
  new = config()
  saved = provenance.config_dict(new)
  for name in provenance.ADDED_FIELDS:
    saved.pop(name, None)
  # New runs default to the indexed pipeline; the old run used tf.data.
  assert provenance.config_differences(saved, new) == ["data_pipeline"]
  new.data_pipeline = "tfdata"
  assert provenance.config_differences(saved, new) == []
  new.conditional = "projection"
  assert provenance.config_differences(saved, new) == ["conditional"]
  # A field added to another task's configs is not required of this one.
  classifier = provenance.config_dict(new)
  del classifier["class_loss_weight"], new["class_loss_weight"]
  assert provenance.config_differences(classifier, new) == []
