"""What the texture commands share: a run directory with the inputs,
snapshots, the result, metrics.jsonl and a progress bar."""

from __future__ import annotations

import json
import math
import os
import time

import jax
import numpy as np

from jaxgan.texture import image_files, synthesis
from jaxgan.writers import ProgressBar, RunWriter


def run_optimization(workdir: str, objective, x0, *, steps: int, optimizer: str,
                     learning_rate: float, snapshot_every: int, result_name: str,
                     inputs: dict, settings: dict, log_every: int = 10) -> dict:
  """Optimises `objective` from `x0` ([1, H, W, 3]), writing into `workdir`:
  the `inputs` ({name: image}) as <name>.png, settings.json, snapshots/
  step_<i>.png every `snapshot_every` steps, metrics.jsonl (loss and its
  parts every `log_every` steps), and the result as <result_name>.png.
  Returns the last logged metrics."""
  os.makedirs(workdir, exist_ok=True)
  for name, image in inputs.items():
    image_files.save_image(np.asarray(image), os.path.join(workdir, f"{name}.png"))
  with open(os.path.join(workdir, "settings.json"), "w") as f:
    json.dump({**settings, "steps": steps, "optimizer": optimizer,
               "learning_rate": learning_rate, "jax": jax.__version__,
               "backend": jax.default_backend()}, f, indent=1)
  writer = RunWriter(workdir, tensorboard=False)
  progress = ProgressBar(steps, 0, desc=os.path.basename(os.path.abspath(workdir)),
                         keys=("loss",))
  start = time.time()
  last: dict = {}

  def callback(step, x, loss, parts):
    nonlocal last
    last = {"loss": loss, **{k: float(v) for k, v in parts.items()},
            "wall_time_s": time.time() - start}
    writer.write_metrics(step, last)
    progress.update(step, last)
    if step and (step % snapshot_every == 0 or step == steps):
      image_files.save_image(np.asarray(x[0]), os.path.join(workdir, "snapshots",
                                                       f"step_{step:05d}.png"))

  try:
    x = synthesis.optimize(objective, x0, steps, optimizer, learning_rate, callback,
                           every=math.gcd(log_every, snapshot_every))
  finally:
    progress.close()
    writer.close()
  image_files.save_image(np.asarray(x[0]), os.path.join(workdir, f"{result_name}.png"))
  return last
