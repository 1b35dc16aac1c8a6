"""Input pipeline throughput against what the DCGAN train step consumes.

    python -m benchmarks.pipeline [--batch 128] [--batches 300] [--step_rate STEPS_PER_S]

Batches/s of the training stream (`Data.train_dataset`, shuffled, repeated,
fitted to 28x28, scaled) from each source: `idx:` (the shared MNIST files),
`folder:` (the same images written as PNG files to a temporary folder),
TFDS (`tfds.testing.mock_data` for mnist) and `digits`; then the same
through `device_batches` (the background thread that assembles global
`jax.Array`s, what the loop consumes). The first `--warmup` batches (the
first pass decodes and fills the cache) are excluded. The step's own rate
is measured here too (MNIST DCGAN, same batch, 1 device) unless given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends
from experiments.configs.dcgan import get_config  # noqa: E402

MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def _config(dataset: str, batch: int, split: str = "train", data_dir: str | None = None):
  c = get_config()
  c.dataset, c.batch_size, c.train_split, c.eval_split = dataset, batch, split, ""
  c.data_dir = data_dir
  return c


def _rate(iterator, batches: int, warmup: int) -> float:
  for _ in range(warmup):
    next(iterator)
  times = []
  t = time.perf_counter()
  for i in range(batches):
    next(iterator)
    if (i + 1) % 50 == 0:
      now = time.perf_counter()
      times.append(50 / (now - t))
      t = now
  return statistics.median(times)


def _write_folder(root: str, n: int) -> None:
  from PIL import Image
  from jaxgan.data import Data
  images = Data(_config("idx:" + MNIST, 1000, "test")).first_images("test", n)
  pixels = np.round((images[..., 0] + 1) * 127.5).astype(np.uint8)
  for i, p in enumerate(pixels):
    d = os.path.join(root, str(i % 10))
    os.makedirs(d, exist_ok=True)
    Image.fromarray(p).save(os.path.join(d, f"{i:05d}.png"))


def step_rate(batch: int, steps: int = 10) -> float:
  import jax
  import jax.numpy as jnp
  from jaxgan.tasks.gan import GANTask
  c = get_config()
  c.batch_size = batch
  task = GANTask(c, (28, 28, 1))
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  data = {"image": jnp.zeros((batch, 28, 28, 1)), "label": jnp.zeros((batch,), jnp.int32)}
  step = jax.jit(task.train_step, donate_argnums=0)
  state, m = step(state, data)
  jax.block_until_ready(m)
  t = time.perf_counter()
  for _ in range(steps):
    state, m = step(state, data)
  jax.block_until_ready(m)
  return steps / (time.perf_counter() - t)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--batches", type=int, default=300)
  parser.add_argument("--warmup", type=int, default=100)
  parser.add_argument("--step_rate", type=float, default=None)
  args = parser.parse_args()

  import tensorflow_datasets as tfds
  from jaxgan import sharding
  from jaxgan.data import Data, device_batches
  from jaxgan.data import tfds as tfds_source

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, "pngs")
    _write_folder(folder, 9000)
    tfds_source._network_available = lambda *a, **k: True  # mock_data needs no network
    cases = [("idx: MNIST test[:9000]", lambda: _config("idx:" + MNIST, args.batch, "test[:9000]")),
             ("folder: 9000 PNG", lambda: _config("folder:" + folder, args.batch)),
             ("tfds mnist (mock_data)", lambda: _config("mnist", args.batch, "train",
                                                        os.path.join(tmp, "tfds"))),
             ("digits", lambda: _config("digits", args.batch))]
    mesh = sharding.make_mesh()
    for name, make in cases:
      with tfds.testing.mock_data(num_examples=9000):
        data = Data(make())
        tf_rate = _rate(data.train_dataset(args.batch).as_numpy_iterator(), args.batches,
                        args.warmup)
        gen = device_batches(data.train_dataset(args.batch), mesh)
        try:
          dev_rate = _rate(gen, args.batches, args.warmup)
        finally:
          gen.close()
      rows.append((name, tf_rate, dev_rate))

  need = args.step_rate or step_rate(args.batch)
  print(f"batch {args.batch}; the MNIST DCGAN train step consumes {need:.2f} batches/s "
        "on this machine\n")
  print(f"{'source':26s}{'tf.data b/s':>13s}{'to devices b/s':>16s}{'x step need':>13s}")
  for name, tf_rate, dev_rate in rows:
    print(f"{name:26s}{tf_rate:13.1f}{dev_rate:16.1f}{dev_rate / need:12.0f}x")


if __name__ == "__main__":
  main()
