"""The classifier train step's cost per model: ms per step and images/s.

    python -m benchmarks.classifier_step [--models resnet20,fast_cnn]
        [--preset cifar10] [--batch 128] [--image_size 32] [--channels 3]
        [--steps 10] [--rounds 3]

Each model of `jaxgan/models/registry.py`'s CLASSIFIERS gets the preset's
whole train step (`ClassifierTask.train_step`: forward, backward, the
optimizer; jitted with the state donated) on one batch of random images
already on the device. The models take turns, `--rounds` times, so a load
change on a shared machine hits them alike; each round times `--steps`
steps after a warm-up step, and the table gives the median over rounds and
each model's step time relative to the first model's. Compilation is not
counted. Run it alone: other processes on the CPU change the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

from jaxgan import xla_flags

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.configs.classifier import get_config  # noqa: E402
from jaxgan.models.registry import CLASSIFIERS  # noqa: E402
from jaxgan.tasks.classifier import ClassifierTask  # noqa: E402


def _stepper(model: str, preset: str, batch: int, shape: tuple[int, int, int]):
  config = get_config(preset)
  config.model, config.batch_size = model, batch
  task = ClassifierTask(config, shape, 10)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  params = sum(x.size for x in jax.tree.leaves(state.params))
  data = {"image": jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, *shape)),
                               jnp.float32),
          "label": jnp.asarray(np.arange(batch) % 10, jnp.int32)}
  step = jax.jit(task.train_step, donate_argnums=0)
  holder = {"state": step(state, data)[0]}  # compiles
  jax.block_until_ready(holder["state"])

  def run(steps: int) -> float:
    state = holder["state"]
    t = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, data)
    jax.block_until_ready((state, metrics))
    holder["state"] = state
    return (time.perf_counter() - t) / steps

  return run, params


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="resnet20,fast_cnn")
  parser.add_argument("--preset", default="cifar10")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args(argv)
  shape = (args.image_size, args.image_size, args.channels)
  models = args.models.split(",")
  unknown = [m for m in models if m not in CLASSIFIERS]
  if unknown:
    parser.error(f"unknown --models {', '.join(unknown)}; choose from {', '.join(CLASSIFIERS)}")
  steppers = {m: _stepper(m, args.preset, args.batch, shape) for m in models}
  times = {m: [] for m in models}
  for _ in range(args.rounds):
    for m in models:
      times[m].append(steppers[m][0](args.steps))
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; preset "
        f"{args.preset or '(none)'}, batch {args.batch}, {shape}; medians of {args.rounds} "
        f"rounds of {args.steps} steps")
  print("| model | parameters | ms/step | images/s | step time vs first |")
  print("| --- | ---: | ---: | ---: | ---: |")
  first = statistics.median(times[models[0]])
  for m in models:
    t = statistics.median(times[m])
    print(f"| {m} | {steppers[m][1]:,} | {t * 1e3:.0f} | {args.batch / t:,.0f} | "
          f"{t / first:.2f} |")


if __name__ == "__main__":
  main()
