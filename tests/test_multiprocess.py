"""Two processes x 2 CPU devices (jax.distributed on localhost, gloo
collectives) train the small test DCGAN (conftest.TINY_DCGAN) to the same
parameters as one process x 4 devices given the same global batches (the
three processes run at once): the two processes stream a folder of PNGs
(data_pipeline="streamed", a worker process each, each reading only its own
rows), the one process holds it in memory (indexed); likewise the self-conditioned
`cluster_projection` preset, whose k-means clusters process 0 fits and
broadcasts. Two processes also stop together: at a training-time budget,
and on SIGTERM sent to one of them. The tests start and reap their
processes themselves, with timeouts, so they cannot hang."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import TINY_DCGAN, assert_adam_states_close, env_with_devices, write_folder
from experiments.configs import gan as gan_configs
from jaxgan import sharding
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data
from jaxgan.tasks.gan import make_task
from jaxgan.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, BATCH = 3, 16
FIELDS = dict(TINY_DCGAN, dataset="digits", batch_size=BATCH, num_train_steps=STEPS, log_every_steps=1,
              checkpoint_every_steps=STEPS, sample_every_steps=STEPS, eval_every_steps=STEPS,
              eval_split="test[:40]", num_sample_images=4)
# preset: (how its run is started, its fields). `dcgan` through the
# `experiments.dcgan` command, the other through `experiments.gan`.
CASES = {
    "dcgan": (["-m", "experiments.dcgan"], FIELDS),
    "cluster_projection": (["-m", "experiments.gan", "--config",
                            "experiments/configs/gan.py:cluster_projection"],
                           dict(FIELDS, cluster_conditioning=4)),
}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(num_devices: int) -> dict:
  """XLA's default CPU kernels, `num_devices` devices. jaxgan's YNNPACK flag
  is left out: the multi-process CPU client appears not to apply it (with
  and without it the two processes computed the same to ~1e-6 relative, where
  one process with it differs by a few percent after 3 steps), so the test
  compares like with like."""
  env = env_with_devices(num_devices, drop_flags=("--xla_cpu_experimental_ynn_fusion_type",))
  return dict(env, JAX_PLATFORMS="cpu", JAXGAN_XLA_DEFAULTS="0")


def _run_processes(preset: str, fields: dict, workdir: str, reference_out: str,
                   timeout: float = 420):
  """The two-process run and, at the same time, the one-process reference
  (of the indexed pipeline)."""
  command, _ = CASES[preset]
  reference_fields = dict(fields, data_pipeline="indexed")
  args = [sys.executable, *command, "--workdir", workdir,
          f"--coordinator_address=localhost:{_free_port()}", "--num_processes=2"]
  args += [f"--config.{k}={v}" for k, v in fields.items()]
  procs = [subprocess.Popen(args + [f"--process_id={i}"], cwd=REPO, env=_env(2),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  procs.append(subprocess.Popen([sys.executable, "-c", _REFERENCE, reference_out, preset,
                                 repr(reference_fields)],
                                cwd=REPO, env=_env(4), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True))
  return _reap(procs, timeout)


def _reap(procs: list, timeout: float):
  """Each process's exit status and output, waiting `timeout` seconds in all
  (past it the test fails); whatever still runs then is killed."""
  deadline = time.time() + timeout
  outputs = []
  try:
    for p in procs:
      out, _ = p.communicate(timeout=max(1.0, deadline - time.time()))
      outputs.append(out)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.communicate()
  return [p.returncode for p in procs], outputs


# One process, 4 devices, the same global batches as the two-process run;
# saves its state's leaves.
_REFERENCE = """
import sys
import jax, numpy as np
from experiments.configs.gan import get_config
from jaxgan import sharding
from jaxgan.data import Data
from jaxgan.tasks.gan import make_task
out, preset, fields = sys.argv[1], sys.argv[2], eval(sys.argv[3])
config = get_config(preset)
config.update(fields)
data = Data(config)
task = make_task(config, data)
mesh = sharding.make_mesh(jax.devices())
repl = sharding.replicated(mesh)
state = jax.jit(task.init_state, out_shardings=repl)(jax.random.PRNGKey(config.seed))
# The indexed pipeline: batch b is the same whatever the process count.
feed = data.train_feed(mesh, 0)
batches = feed.inputs()
step = jax.jit(lambda s, x, resident: task.train_step(s, feed.to_batch(x, resident)),
               out_shardings=(repl, repl))
for _ in range(config.num_train_steps):
  state, _ = step(state, next(batches), feed.resident)
feed.close()
np.savez(out, *[np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))])
"""


@pytest.mark.parametrize("preset", list(CASES))
def test_two_processes_match_one_process_with_four_devices(tmp_path, preset):
  workdir, out = str(tmp_path / "run"), str(tmp_path / "reference.npz")
  fields = CASES[preset][1]
  if preset == "dcgan":
    fields = dict(fields, dataset=write_folder(tmp_path / "folder"), train_split="train[:80]",
                  eval_split="train[80:]", data_pipeline="streamed", data_workers=1)
  codes, outputs = _run_processes(preset, fields, workdir, out)
  assert codes == [0, 0, 0], "\n\n".join(o[-3000:] for o in outputs)
  if preset == "dcgan":
    assert "Input: streamed pipeline, 1 worker process" in outputs[0]

  # Process 0 alone wrote the logs and metadata; both wrote the checkpoint.
  assert [r["step"] for r in read_metrics(workdir)] == [1, 2, 3]
  with open(os.path.join(workdir, "run.json")) as f:
    (start,) = json.load(f)["starts"]
  assert start["process_count"] == 2 and start["device_count"] == 4
  assert start["local_device_count"] == 2
  assert os.path.exists(os.path.join(workdir, "samples", f"step_{STEPS:07d}.png"))

  # The two-process checkpoint, restored here, against the reference's state.
  config = gan_configs.get_config(preset)
  config.update(fields)
  task = make_task(config, Data(config))
  repl = sharding.replicated(sharding.make_mesh(jax.devices()))
  two = jax.device_get(Checkpointer(workdir).restore(
      jax.eval_shape(task.init_state, jax.random.PRNGKey(0)), STEPS, repl))
  arrays = np.load(out)
  one = jax.tree.unflatten(jax.tree.structure(two),
                           [arrays[f"arr_{i}"] for i in range(len(arrays.files))])
  stats = lambda s: jax.tree.leaves((s.g.opt_state, s.d.opt_state, s.g.batch_stats,
                                     s.d.batch_stats))
  params = lambda s: jax.tree.leaves((s.g.params, s.d.params, s.g_ema))

  # Tolerance (conftest.assert_adam_states_close): all-reduces sum in another
  # order across processes and the rounding differences grow over the steps,
  # so moments and batch statistics to 1e-4 of each leaf's scale (measured:
  # 4e-7 after 3 steps; a wrong shard or seed gives differences of order 1).
  assert int(one.step) == int(two.step) == STEPS
  # The clusters both processes trained with: process 0's, as one process fits them.
  assert (one.clusters is None) == (preset != "cluster_projection")
  jax.tree.map(np.testing.assert_array_equal, one.clusters, two.clusters)
  assert_adam_states_close(stats(one), stats(two), params(one), params(two),
                           config.d_learning_rate, steps=STEPS)


# Evaluation's sampling and feature extraction on a mesh of every device of
# every process (`sharding.map_batch`): a freshly initialised test DCGAN's 37
# samples (batches of 20, so rows are padded) and a freshly initialised
# classifier's features of them. Argument 1: "distributed" (then coordinator,
# process count and id) or "one" (this process, one device). The parameters
# go in as host NumPy arrays (the GAN's) and on one local device (the
# classifier's, as `jaxgan.runs.restore` gives them).
_EVALUATE = """
import sys, types
import jax, numpy as np
if sys.argv[2] == "distributed":
  jax.distributed.initialize(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
from experiments.configs.classifier import get_config as classifier_config
from experiments.configs.gan import get_config as gan_config
from jaxgan import sharding
from jaxgan.evaluation.extractors import ClassifierExtractor
from jaxgan.evaluation.generators import generate
from jaxgan.tasks.classifier import ClassifierTask
from jaxgan.tasks.gan import make_task
from jaxgan.data import Data
mesh = None if sys.argv[2] == "distributed" else sharding.make_mesh(jax.devices()[:1])
config = gan_config("dcgan")
config.update(dict(image_size=16, ngf=8, ndf=8, dataset="digits"))
task = make_task(config, Data(config))
state = jax.device_get(jax.jit(task.init_state)(jax.random.PRNGKey(3)))
fake = generate(task, state, 37, seed=5, batch_size=20, mesh=mesh)
clf_config = classifier_config()
clf_config.update(dict(dataset="digits", image_size=16))
clf_task = ClassifierTask(clf_config, (16, 16, 1), 10)
# As jaxgan.runs.restore gives a state: on this process's first device.
clf_state = jax.device_put(jax.device_get(jax.jit(clf_task.init_state)(jax.random.PRNGKey(4))),
                           jax.local_devices()[0])
run = types.SimpleNamespace(config=clf_config, task=clf_task, state=clf_state, step=0,
                            dir="none", checkpoint_sha256=lambda: "none")
features, probs = ClassifierExtractor(run, batch_size=20, mesh=mesh)(fake)
np.savez(sys.argv[1], fake=fake, features=features, probs=probs,
         devices=jax.device_count(), processes=jax.process_count())
"""


def test_evaluation_split_over_two_processes_equals_one_device(tmp_path):
  """Sampling and feature extraction with each batch's rows split over 2
  processes x 2 devices: every process gets all 37 rows back, equal to one
  process on one device."""
  address = f"localhost:{_free_port()}"
  outs = [str(tmp_path / f"{name}.npz") for name in ("p0", "p1", "one")]
  commands = [[sys.executable, "-c", _EVALUATE, outs[i], "distributed", address, "2", str(i)]
              for i in range(2)] + [[sys.executable, "-c", _EVALUATE, outs[2], "one"]]
  procs = [subprocess.Popen(c, cwd=REPO, env=_env(2), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for c in commands]
  codes, outputs = _reap(procs, 300)
  assert codes == [0, 0, 0], "\n\n".join(o[-3000:] for o in outputs)
  p0, p1, one = (np.load(o) for o in outs)
  assert int(p0["processes"]) == 2 and int(p0["devices"]) == 4 and int(one["processes"]) == 1
  assert one["fake"].shape == (37, 16, 16, 1)
  for name in ("fake", "features", "probs"):
    np.testing.assert_array_equal(p0[name], p1[name])
    np.testing.assert_allclose(p0[name], one[name], rtol=1e-5, atol=1e-6)


def _start_dcgan_pair(workdir: str, fields: dict) -> list:
  """`experiments.dcgan` as two processes x 2 devices, output piped."""
  args = [sys.executable, "-m", "experiments.dcgan", "--workdir", workdir,
          f"--coordinator_address=localhost:{_free_port()}", "--num_processes=2"]
  args += [f"--config.{k}={v}" for k, v in fields.items()]
  return [subprocess.Popen(args + [f"--process_id={i}"], cwd=REPO, env=_env(2),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for i in range(2)]


def test_a_budget_or_a_signal_on_one_process_stops_both_at_the_same_step(tmp_path):
  """The stopping decisions agree across processes (loop._max_over_processes:
  they compare every 10 steps). A training-time budget, which the two
  processes' clocks pass at different moments, stops both at the same step;
  so does SIGTERM sent to process 1 alone, where without the agreement
  process 0 would wait forever in the next step's collectives (and this test
  would time out)."""
  workdir = str(tmp_path / "run")
  fields = dict(TINY_DCGAN, dataset="digits", batch_size=BATCH, num_train_steps=100_000,
                log_every_steps=1, checkpoint_every_steps=1000, sample_every_steps=100_000,
                eval_every_steps=0, max_train_seconds=0.5)

  def ckpt_steps():
    ckpt = Checkpointer(workdir)
    try:
      return sorted(ckpt.all_steps())
    finally:
      ckpt.close()

  # 1. The budget is spent before step 10 (it counts the compilation), so
  # both stop at step 10, where they first compare clocks, and end normally.
  codes, outputs = _reap(_start_dcgan_pair(workdir, fields), 300)
  assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
  assert "Stopped at step 10 of 100000: the training time budget" in outputs[0]
  assert ckpt_steps() == [10]
  with open(os.path.join(workdir, "train_seconds.json")) as f:
    assert list(json.load(f)) == ["10"]

  # 2. Resumed without a budget (safe to change), it trains on until
  # process 1 alone gets SIGTERM: both stop at one step, a multiple of 10,
  # checkpoint it and exit with 128 + SIGTERM.
  procs = _start_dcgan_pair(workdir, dict(fields, max_train_seconds=0))
  deadline = time.time() + 300
  try:
    while (time.time() < deadline and all(p.poll() is None for p in procs)
           and not any(r["step"] > 12 for r in read_metrics(workdir))):
      time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
  finally:
    codes, outputs = _reap(procs, 300)
  assert codes == [128 + signal.SIGTERM] * 2, "\n\n".join(o[-3000:] for o in outputs)
  stops = [re.findall(r"Stopped by SIGTERM at step (\d+);", o) for o in outputs]
  assert stops[0] == stops[1] and len(stops[0]) == 1, outputs
  stop = int(stops[0][0])
  assert stop % 10 == 0 and stop > 10
  assert ckpt_steps() == [10, stop]
  assert [r["step"] for r in read_metrics(workdir)] == list(range(1, stop + 1))
