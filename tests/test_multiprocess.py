"""Two processes x 2 CPU devices (jax.distributed on localhost, gloo
collectives) train the DCGAN to the same parameters as one process x 4
devices given the same global batches. The test starts and reaps its
processes itself, with timeouts, so it cannot hang."""

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np

from conftest import compiled
from experiments.configs.dcgan import get_config
from jaxgan import sharding
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data
from jaxgan.tasks.gan import GANTask
from jaxgan.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, BATCH = 3, 16
FIELDS = dict(dataset="digits", batch_size=BATCH, num_train_steps=STEPS, log_every_steps=1,
              checkpoint_every_steps=STEPS, sample_every_steps=STEPS, eval_every_steps=STEPS,
              eval_split="test[:40]", num_sample_images=4)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _run_two_processes(workdir: str, timeout: float = 420):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  args = [sys.executable, "-m", "experiments.dcgan", "--workdir", workdir,
          f"--coordinator_address=localhost:{_free_port()}", "--num_processes=2"]
  args += [f"--config.{k}={v}" for k, v in FIELDS.items()]
  procs = [subprocess.Popen(args + [f"--process_id={i}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
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


def test_two_processes_match_one_process_with_four_devices(tmp_path):
  workdir = str(tmp_path / "run")
  codes, outputs = _run_two_processes(workdir)
  assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outputs)

  # Process 0 alone wrote the logs and metadata; both wrote the checkpoint.
  assert [r["step"] for r in read_metrics(workdir)] == [1, 2, 3]
  with open(os.path.join(workdir, "run.json")) as f:
    (start,) = json.load(f)["starts"]
  assert start["process_count"] == 2 and start["device_count"] == 4
  assert start["local_device_count"] == 2
  assert os.path.exists(os.path.join(workdir, "samples", f"step_{STEPS:07d}.png"))

  # Reference: one process, 4 devices, the same global batches (process p's
  # shard on devices 2p and 2p+1, as in the two-process run).
  config = get_config()
  config.update(FIELDS)
  task = GANTask(config, (28, 28, 1))
  devices = tuple(jax.devices()[:4])
  mesh, init, step = compiled(task, devices)
  data = Data(config)
  streams = [data.train_dataset(BATCH // 2, 0, process_index=p, process_count=2)
             .as_numpy_iterator() for p in range(2)]
  state = init(jax.random.PRNGKey(config.seed))
  for _ in range(STEPS):
    parts = [next(s) for s in streams]
    batch = {k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
    state, _ = step(state, sharding.to_global_batch(batch, mesh))
  two = Checkpointer(workdir).restore(state, STEPS)

  # Tolerance: all-reduces sum in another order across processes, and the
  # rounding differences grow over the steps. Batch statistics and Adam
  # moments to 1e-3 of each leaf's largest magnitude (measured: 1.4e-4 after 3
  # steps; a wrong shard or seed gives differences of order 1). Parameters:
  # Adam's update is ~lr * sign(g) early on, so an entry whose gradient is ~0
  # may move the other way: each within 2 * lr per step, and all but 1 in
  # 10^4 within 1e-6.
  assert int(two.step) == int(state.step) == STEPS
  for part in ("opt_state", "batch_stats"):
    for a, b in zip(jax.tree.leaves(jax.device_get((getattr(state.g, part), getattr(state.d, part)))),
                    jax.tree.leaves(jax.device_get((getattr(two.g, part), getattr(two.d, part))))):
      scale = max(float(np.max(np.abs(a))), 1e-8) if np.size(a) else 1.0
      np.testing.assert_allclose(b, a, rtol=0, atol=1e-3 * scale, err_msg=part)
  one_p = jax.tree.leaves(jax.device_get((state.g.params, state.d.params, state.g_ema)))
  two_p = jax.tree.leaves(jax.device_get((two.g.params, two.d.params, two.g_ema)))
  lr = config.learning_rate
  total = sum(a.size for a in one_p)
  off = 0
  for a, b in zip(one_p, two_p):
    diff = np.abs(np.asarray(a) - np.asarray(b))
    assert diff.max() <= 2 * lr * STEPS + 1e-6
    off += int(np.sum(diff > 1e-6))
  assert off <= 1e-4 * total, f"{off} of {total} parameters differ by more than 1e-6"
