"""Multi-device overhead: the same DCGAN step and global batch on 1 vs 8 devices.

    python -m benchmarks.devices [--batch 128] [--repeats 7] [--steps 3]

Uses 8 CPU devices simulated by XLA (set here, before JAX starts). They share
the machine's cores, so 8 devices cannot be faster; the ratio of step times
shows what sharding the batch and all-reducing the gradients costs. Same
jit shardings as the training loop (state replicated and donated, batch
split over the mesh); rounds interleaved; medians.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends
from experiments.configs.dcgan import get_config  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxgan import sharding  # noqa: E402
from jaxgan.tasks.gan import GANTask  # noqa: E402


def make_runner(task, devices, batch_np):
  mesh = sharding.make_mesh(list(devices))
  repl = sharding.replicated(mesh)
  init = jax.jit(task.init_state, out_shardings=repl)
  step = jax.jit(task.train_step, in_shardings=(repl, sharding.data_sharded(mesh)),
                 out_shardings=(repl, repl), donate_argnums=0)
  batch = sharding.to_global_batch(batch_np, mesh)
  holder = {"state": init(jax.random.PRNGKey(0))}

  def run(n):
    s = holder["state"]
    for _ in range(n):
      s, m = step(s, batch)
      jax.block_until_ready(m)  # as the loop: at most a step or two in flight
    holder["state"] = s

  run(2)  # compile and warm up
  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  config = get_config()
  config.batch_size = args.batch
  task = GANTask(config, (28, 28, 1))
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(-1, 1, (args.batch, 28, 28, 1)).astype(np.float32),
           "label": np.zeros(args.batch, np.int32)}
  runners = {n: make_runner(task, jax.devices()[:n], batch) for n in (1, 8)}
  times = {n: [] for n in runners}
  for _ in range(args.repeats):
    for n, run in runners.items():
      t = time.perf_counter()
      run(args.steps)
      times[n].append((time.perf_counter() - t) / args.steps)
  t1, t8 = statistics.median(times[1]), statistics.median(times[8])
  print(f"MNIST DCGAN step, global batch {args.batch}, {os.cpu_count()} CPU cores")
  print(f"1 device : {t1 * 1e3:8.1f} ms/step")
  print(f"8 devices: {t8 * 1e3:8.1f} ms/step  (batch {args.batch // 8} per device)")
  print(f"8 / 1    : {t8 / t1:8.2f}x")


if __name__ == "__main__":
  main()
