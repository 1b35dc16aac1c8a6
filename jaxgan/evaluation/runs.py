"""Reading run directories: their config, checkpoints and restored state."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

import jax
import ml_collections

from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data, DataError


def load_run_config(run_dir: str) -> ml_collections.ConfigDict:
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise DataError(f"{run_dir!r} is not a run directory (no config.json); pass the "
                    "--workdir of a finished or running experiment.")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def checkpoint_hash(run_dir: str, step: int) -> str:
  """sha256 over the files of one checkpoint (relative paths and contents)."""
  root = os.path.join(run_dir, "checkpoints", str(step))
  digest = hashlib.sha256()
  for dirpath, _, files in sorted(os.walk(root)):
    for name in sorted(files):
      path = os.path.join(dirpath, name)
      digest.update(os.path.relpath(path, root).encode())
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()


def restore_run(run_dir: str, make_task: Callable, step: int | None = None):
  """(config, data, task, state, step) of a run directory: the latest
  checkpoint, the one at `step`, or with step=0 the initial state."""
  config = load_run_config(run_dir)
  data = Data(config)
  task = make_task(config, data)
  key = jax.random.PRNGKey(config.seed)
  if step == 0:
    return config, data, task, jax.jit(task.init_state)(key), 0
  ckpt = Checkpointer(run_dir)
  available = ckpt.all_steps()
  if not available:
    raise DataError(f"No checkpoints in {ckpt.directory}.")
  step = max(available) if step is None else step
  if step not in available:
    raise DataError(f"No checkpoint for step {step} in {ckpt.directory}; available: "
                    f"{available} (or 0 for the initialisation).")
  state = ckpt.restore(jax.eval_shape(task.init_state, key), step,
                       jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
  return config, data, task, state, step
