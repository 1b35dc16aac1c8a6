"""The GAN family's costs: each preset's train step, and a gradient penalty's
second derivative through jaxgan's Conv vs flax's.

    python -m benchmarks.gan_family [--batch 128] [--steps 5] [--presets dcgan,wgan_gp]
    python -m benchmarks.gan_family --presets sngan,sngan_projection --batch 64 --channels 3 --no_penalty
    python -m benchmarks.gan_family --presets dcgan,biggan,stylegan2 --batch 64 --channels 3 --image_size 32 --no_penalty

1. Every preset of experiments/configs/gan.py at its own image size (28x28
   for the DCGAN presets, 32x32 for the SNGAN ResNet, BigGAN and StyleGAN2)
   or at `--image_size` (CIFAR-10's 32 for all), `--channels` channels,
   one device, random data (10-class labels for the conditional presets):
   compile + first step, then the median of `--steps` steps. A preset's step
   includes all of its `n_critic` D updates, so wgan_gp's costs about five
   DCGAN steps and then some (the penalty), and sngan's five ResNet D updates.
2. The WGAN-GP penalty's parameter gradient (an input gradient,
   differentiated again) of the MNIST discriminator, with the model's Conv
   (jaxgan's, custom VJP) and with `flax.linen.Conv` swapped in, alternating;
   also checks that both give the same gradient.
"""

from __future__ import annotations

import argparse
import statistics
import time

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends
from experiments.configs import gan as gan_configs  # noqa: E402
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.gan import penalties
from jaxgan.models import dcgan
from jaxgan.tasks.gan import GANTask


def _time(fn, *args, steps: int) -> tuple[float, float]:
  """(seconds for the first call, median seconds per later call)."""
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return first, statistics.median(times)


def preset_steps(presets, batch: int, steps: int, channels: int = 1,
                 image_size: int | None = None) -> None:
  rng = np.random.default_rng(0)
  print(f"{'preset':17s} {'image':>8s} {'compile+1st s':>13s} {'step ms':>8s} "
        f"{'x first':>8s} {'3000 steps min':>15s}")
  base = None
  for preset in presets:
    config = gan_configs.get_config(preset)
    config.batch_size = batch
    config.image_size = image_size or config.image_size
    size = config.image_size
    task = GANTask(config, (size, size, channels), num_classes=10)
    k = task.batches_per_step
    lead = (k,) if k > 1 else ()
    data = {"image": jnp.asarray(rng.uniform(-1, 1, lead + (batch, size, size, channels))
                                 .astype(np.float32)),
            "label": jnp.asarray(rng.integers(0, 10, lead + (batch,)).astype(np.int32))}
    state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
    step = jax.jit(task.train_step)
    holder = {"state": state}

    def run():
      holder["state"], metrics = step(holder["state"], data)
      return metrics

    first, per_step = _time(run, steps=steps)
    base = base or per_step
    image = f"{size}x{size}x{channels}"
    print(f"{preset:17s} {image:>8s} {first:13.1f} {per_step * 1e3:8.0f} "
          f"{per_step / base:8.2f} {per_step * 3000 / 60:15.1f}", flush=True)


def penalty_gradient(batch: int, steps: int) -> None:
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, 28, 28, 1)), jnp.float32)
  key = jax.random.PRNGKey(1)
  results = {}
  for name, conv in (("jaxgan Conv", dcgan.Conv), ("flax Conv", nn.Conv)):
    original, dcgan.Conv = dcgan.Conv, conv
    try:
      d = dcgan.MnistDiscriminator()
      params = jax.jit(lambda k, v: d.init(k, v, train=False))(jax.random.PRNGKey(0),
                                                               x[:1])["params"]

      def loss(p, d=d):
        d_fn = lambda v: d.apply({"params": p}, v, train=True, rngs={"dropout": key})
        return penalties.gradient_penalty(d_fn, x, -x, jnp.full((batch,), 0.3))

      fn = jax.jit(jax.grad(loss))
      grads = fn(params)
    finally:
      dcgan.Conv = original
    results[name] = (fn, params, grads)
  times = {name: [] for name in results}
  for _ in range(steps):  # alternating, so load changes hit both alike
    for name, (fn, params, _) in results.items():
      times[name].append(_time(fn, params, steps=1)[1])
  a, b = (np.concatenate([np.ravel(g) for g in jax.tree.leaves(r[2])])
          for r in results.values())
  print(f"\nWGAN-GP penalty gradient, MNIST D, batch {batch} (median of {steps}):")
  for name, t in times.items():
    print(f"  {name:12s} {statistics.median(t) * 1e3:8.0f} ms")
  ratio = statistics.median(times["flax Conv"]) / statistics.median(times["jaxgan Conv"])
  print(f"  flax / jaxgan: {ratio:.2f}x; gradients agree to "
        f"{np.abs(a - b).max() / np.abs(b).max():.1e} of their scale")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--presets", default=",".join(gan_configs.PRESETS))
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--image_size", type=int, default=None,
                      help="Every preset at this size (default: each preset's own).")
  parser.add_argument("--no_penalty", action="store_true", help="Skip part 2.")
  args = parser.parse_args()
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, batch {args.batch}")
  preset_steps(args.presets.split(","), args.batch, args.steps, args.channels, args.image_size)
  if not args.no_penalty:
    penalty_gradient(args.batch, args.steps)


if __name__ == "__main__":
  main()
