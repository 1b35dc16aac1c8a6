"""End to end: train_and_evaluate writes the whole run directory, resumes,
and stops cleanly on a NaN loss."""

import glob
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from conftest import TINY_DCGAN, requires_tf
from experiments import dcgan
from experiments.configs.dcgan import get_config
from jaxgan.checkpoint import Checkpointer
from jaxgan.loop import NonFiniteLossError, train_and_evaluate
from jaxgan.tasks.gan import GANTask
from jaxgan.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
  config = get_config()
  config.update(dict(dataset="digits", batch_size=16, num_train_steps=4, log_every_steps=2,
                     sample_every_steps=2, checkpoint_every_steps=2, eval_every_steps=4,
                     eval_split="test[:40]", num_sample_images=16))
  config.update(overrides)
  return config


def test_run_directory_and_resume(tmp_path):
  workdir = str(tmp_path / "run")
  result = dcgan.train_and_evaluate(tiny_config(), workdir)
  assert (result.start_step, result.step) == (0, 4)

  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["dataset"] == "digits"
  records = read_metrics(workdir)
  assert [r["step"] for r in records] == [2, 4]
  for r in records:
    assert r["images_per_sec"] > 0 and r["wall_time_s"] > 0
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "pixel_std_real", "pixel_std_fake"):
      assert isinstance(r[key], float)
  assert 0.0 <= records[-1]["eval_d_real"] <= 1.0 and records[-1]["eval_d_loss"] > 0
  assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  samples = sorted(os.listdir(os.path.join(workdir, "samples")))
  assert samples == ["live_step_0000002.png", "live_step_0000004.png",
                     "step_0000002.png", "step_0000004.png"]
  assert Checkpointer(workdir).all_steps() == [2, 4]

  # Same workdir again, longer: resumes at step 4, does not start over.
  resumed = dcgan.train_and_evaluate(tiny_config(num_train_steps=6), workdir)
  assert (resumed.start_step, resumed.step) == (4, 6)
  assert int(jax.device_get(resumed.state.step)) == 6
  assert [r["step"] for r in read_metrics(workdir)] == [2, 4, 6]
  assert Checkpointer(workdir).latest_step() == 6


class _NaNAfter(GANTask):
  """A GAN whose losses turn NaN from step 4 on."""

  def train_step(self, state, batch):
    new_state, metrics = super().train_step(state, batch)
    bad = new_state.step >= 4
    metrics = {k: jnp.where(bad, jnp.nan, v) if k != "finite" else jnp.where(bad, 0.0, v)
               for k, v in metrics.items()}
    return new_state, metrics


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "nan")
  config = tiny_config(num_train_steps=8, log_every_steps=4, eval_every_steps=0, **TINY_DCGAN)
  with pytest.raises(NonFiniteLossError, match="NaN/Inf at step 4.*last good checkpoint is step 2"):
    train_and_evaluate(config, workdir, lambda c, data: _NaNAfter(c, data.info.image_shape))
  assert Checkpointer(workdir).all_steps() == [2]


def test_a_diverged_run_stops_and_resumes_with_lower_learning_rates(tmp_path):
  """At a learning rate of 1e6 the losses stay finite but huge: the
  divergence threshold stops the run without saving; the message names this
  task's learning-rate fields, and rerunning with them lowered resumes from
  the last good checkpoint, the change recorded in run.json."""
  workdir = str(tmp_path / "diverged")
  fields = dict(num_train_steps=4, log_every_steps=1, eval_every_steps=0,
                sample_every_steps=1000, **TINY_DCGAN)
  dcgan.train_and_evaluate(tiny_config(**fields), workdir)
  fields.update(num_train_steps=8)
  with pytest.raises(NonFiniteLossError) as e:
    dcgan.train_and_evaluate(tiny_config(**fields, g_learning_rate=1e6, d_learning_rate=1e6),
                             workdir)
  message = str(e.value)
  assert re.search(r"diverged beyond divergence_threshold=1e\+08 at step [5-8] ", message)
  assert "last good checkpoint is step 4" in message
  assert "--config.d_learning_rate (now 1e+06) and --config.g_learning_rate (now 1e+06)" \
      in message
  assert "learning_rate " not in message.replace("_learning_rate", "")  # no field it lacks
  assert Checkpointer(workdir).all_steps() == [2, 4]
  resumed = dcgan.train_and_evaluate(tiny_config(**fields, g_learning_rate=1e-4,
                                                 d_learning_rate=1e-4), workdir)
  assert (resumed.start_step, resumed.step) == (4, 8)
  with open(os.path.join(workdir, "run.json")) as f:
    starts = json.load(f)["starts"]
  assert starts[-1]["start_step"] == 4
  assert starts[-1]["changed"] == {"d_learning_rate": [1e6, 1e-4],
                                   "g_learning_rate": [1e6, 1e-4]}
  # Other fields stay refused; so does a run directory without its config.json.
  with pytest.raises(ValueError, match="seed: 0 -> 1"):
    dcgan.train_and_evaluate(tiny_config(**dict(fields, num_train_steps=9), seed=1), workdir)
  os.remove(os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="holds checkpoints but no config.json"):
    dcgan.train_and_evaluate(tiny_config(**dict(fields, num_train_steps=9)), workdir)


def test_a_stop_logs_the_steps_since_the_last_log(tmp_path):
  """SIGTERM between logs: the steps since the last log are logged at the
  stop's checkpoint (marked with how many steps the means cover), so none
  goes unlogged across a preemption."""
  import signal
  from jaxgan.loop import Preempted

  def send_sigterm(task, state, data):  # an evaluator, called at step 3
    os.kill(os.getpid(), signal.SIGTERM)
    return {}

  workdir = str(tmp_path / "stopped")
  config = tiny_config(num_train_steps=50, log_every_steps=1000, eval_every_steps=3,
                       checkpoint_every_steps=1000, sample_every_steps=1000, **TINY_DCGAN)
  with pytest.raises(Preempted, match="Stopped by SIGTERM at step 4"):
    train_and_evaluate(config, workdir, lambda c, data: GANTask(c, data.info.image_shape),
                       evaluators=[send_sigterm])
  records = read_metrics(workdir)
  assert [(r["step"], r["logged_steps"]) for r in records] == [(3, 3), (4, 1)]
  assert Checkpointer(workdir).latest_step() == 4


def test_a_training_time_budget_ends_the_run_and_carries_over_restarts(tmp_path, monkeypatch):
  """max_train_seconds: the run ends at the first step past the budget as at
  its last step (checkpoint, sample grid, final log); evaluations do not
  count; a resume gets only what is left, and a larger budget trains on.
  The clock is a fake that advances one second each time it is read, so
  the step reached is the same on any machine."""
  import itertools
  from jaxgan import loop

  ticks = itertools.count()
  offset = [0.0]
  monkeypatch.setattr(loop.TrainClock, "_now", staticmethod(lambda: next(ticks) + offset[0]))

  def slow_evaluation(task, state, data):  # 1,000 s at each evaluation: not training
    offset[0] += 1000.0
    return {}

  workdir = str(tmp_path / "budget")
  make = lambda c, data: GANTask(c, data.info.image_shape)  # noqa: E731
  fields = dict(num_train_steps=100, log_every_steps=1000, eval_every_steps=3,
                checkpoint_every_steps=1000, sample_every_steps=1000, **TINY_DCGAN)
  result = train_and_evaluate(tiny_config(**fields, max_train_seconds=20.0), workdir, make,
                              evaluators=[slow_evaluation])
  stop = result.step
  assert 3 < stop < 100 and result.start_step == 0
  assert Checkpointer(workdir).latest_step() == stop
  assert read_metrics(workdir)[-1]["step"] == stop
  assert os.path.exists(os.path.join(workdir, "samples", f"step_{stop:07d}.png"))
  with open(os.path.join(workdir, "train_seconds.json")) as f:
    totals = json.load(f)
  assert list(totals) == [str(stop)] and 20.0 <= totals[str(stop)] < 1000.0

  with pytest.raises(ValueError, match="max_train_seconds must be a number of seconds >= 0"):
    train_and_evaluate(tiny_config(**fields, max_train_seconds=-1.0), workdir, make)

  # The budget is spent: the same command trains nothing.
  again = train_and_evaluate(tiny_config(**fields, max_train_seconds=20.0), workdir, make)
  assert (again.start_step, again.step) == (stop, stop)
  # A larger budget (safe to change on resume) continues from the recorded total.
  more = train_and_evaluate(tiny_config(**fields, max_train_seconds=40.0), workdir, make)
  assert more.start_step == stop and stop < more.step < 100
  with open(os.path.join(workdir, "train_seconds.json")) as f:
    totals = json.load(f)
  assert 40.0 <= totals[str(more.step)] < 60.0


def _cli(*args, timeout=120):
  return subprocess.run([sys.executable, "-m", "experiments.dcgan", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)


def test_cli_reports_bad_input_clearly(tmp_path):
  missing = tmp_path / "no_such_dir"
  proc = _cli(f"--workdir={tmp_path / 'run'}", f"--config.dataset=idx:{missing}")
  assert proc.returncode == 1
  assert f"error: idx: directory '{missing}' does not exist" in proc.stderr
  assert "Traceback" not in proc.stderr
  proc = _cli(f"--workdir={tmp_path / 'run'}", "--config.batch_sise=8")
  assert proc.returncode != 0 and "batch_sise" in proc.stderr


@requires_tf
def test_prepare_rejects_unknown_dataset():
  proc = subprocess.run([sys.executable, "-m", "jaxgan.data.prepare", "mnistt"], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1
  assert "error: 'mnistt' is not a TFDS catalog dataset" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_vae_run_directory_and_resume(tmp_path):
  """The VAE on the same loop: eval lines in nats (with k), the three figures,
  checkpoints, and a resume at the saved step."""
  from experiments import vae
  from experiments.configs.vae import get_config as vae_config
  config = vae_config()
  config.update(dict(dataset="digits", batch_size=16, num_train_steps=4, log_every_steps=2,
                     sample_every_steps=4, checkpoint_every_steps=2, eval_every_steps=4,
                     eval_split="test[:20]", num_sample_images=16, num_importance_samples=8,
                     latent_dim=8, model="mlp"))  # the conv VAE trains in test_vae
  workdir = str(tmp_path / "vae")
  result = vae.train_and_evaluate(config, workdir)
  assert (result.start_step, result.step) == (0, 4)
  records = read_metrics(workdir)
  assert [r["step"] for r in records] == [2, 4]
  last = records[-1]
  assert last["eval_nll_k"] == 8 and last["images_per_sec"] > 0
  # IWAE with k = 8 is a tighter bound than the ELBO (on 20 images, with margin).
  assert 0 < last["eval_nll"] < last["eval_neg_elbo"] + 1.0
  assert abs(last["eval_neg_elbo"] - last["eval_rec_nll"] - last["eval_kl"]) < 1e-3
  assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
      "interpolation_step_0000004.png", "reconstructions_step_0000004.png",
      "step_0000004.png"]
  from PIL import Image
  strip = Image.open(os.path.join(workdir, "samples", "interpolation_step_0000004.png"))
  assert strip.size[0] > 2 * strip.size[1]  # 4 rows of 10 images: a wide strip
  assert os.path.exists(os.path.join(workdir, "config.json"))
  assert Checkpointer(workdir).all_steps() == [2, 4]
  with open(os.path.join(workdir, "best", "best.json")) as f:
    assert json.load(f) == {"metric": "eval_nll", "mode": "min", "value": last["eval_nll"],
                            "step": 4}

  config.num_train_steps = 6
  resumed = vae.train_and_evaluate(config, workdir)
  assert (resumed.start_step, resumed.step) == (4, 6)


def test_tensorboard_events_are_written_without_tensorflow(tmp_path):
  """RunWriter's event files hold the scalars and images TensorBoard shows,
  and writing them imports no TensorFlow (a subprocess: this one has it)."""
  import subprocess
  import sys
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  script = (
      "import sys, numpy as np\n"
      "from jaxgan.writers import RunWriter\n"
      f"w = RunWriter({str(tmp_path)!r})\n"
      "w.write_metrics(3, {'d_loss': 0.25, 'eval_fid': 12.5, 'note': 'x'})\n"
      "w.write_metrics(5, {'d_loss': 0.5})\n"
      "w.write_images(5, {'samples': np.zeros((4, 8, 8, 1)) - 1.0})\n"
      "w.close()\n"
      "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.returncode == 0, out.stderr
  events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
  events.Reload()
  assert [(e.step, e.value) for e in events.Scalars("d_loss")] == [(3, 0.25), (5, 0.5)]
  assert [e.value for e in events.Scalars("eval_fid")] == [12.5]
  # The batch as one grid image (tensorboardX tiles the 4 8x8 images in a row).
  assert [(e.step, e.width, e.height) for e in events.Images("samples")] == [(5, 32, 8)]
