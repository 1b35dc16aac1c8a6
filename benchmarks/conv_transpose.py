"""Forward+backward time of flax.linen.ConvTranspose vs jaxgan's phase-decomposed
ConvTranspose, side by side, for the DCGAN generators' up-convolutions.

  python -m benchmarks.conv_transpose [--batch 128] [--repeats 7]

Both layers compute the same function (tests/test_layers.py); medians of
`--repeats` timed calls after a warm-up call, the two layers interleaved.
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models.layers import ConvTranspose

# (name, input [H, W, C_in], C_out, kernel, stride, padding)
LAYERS = [
    ("mnist 7x7x256 -> 7x7x128", (7, 7, 256), 128, 5, 1, "SAME"),
    ("mnist 7x7x128 -> 14x14x64", (7, 7, 128), 64, 5, 2, "SAME"),
    ("mnist 14x14x64 -> 28x28x1", (14, 14, 64), 1, 5, 2, "SAME"),
    ("radford64 8x8x256 -> 16x16x128", (8, 8, 256), 128, 4, 2, ((2, 2), (2, 2))),
    ("radford64 32x32x64 -> 64x64x3", (32, 32, 64), 3, 4, 2, ((2, 2), (2, 2))),
]


def _grad_fn(layer):
  loss = lambda v, x: jnp.sum(layer.apply(v, x) ** 2)
  return jax.jit(jax.grad(loss, argnums=(0, 1)))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  print(f"{jax.devices()[0].platform}, batch {args.batch}, forward+backward, median ms")
  print(f"{'layer':34s} {'flax':>9s} {'jaxgan':>9s} {'speedup':>8s}")
  for name, shape, c_out, k, s, pad in LAYERS:
    x = jax.random.normal(jax.random.key(0), (args.batch, *shape))
    layers = {"flax": nn.ConvTranspose(c_out, (k, k), (s, s), padding=pad),
              "jaxgan": ConvTranspose(c_out, (k, k), (s, s), padding=pad)}
    variables = layers["flax"].init(jax.random.key(1), x)
    fns = {n: _grad_fn(layer) for n, layer in layers.items()}
    for f in fns.values():
      jax.block_until_ready(f(variables, x))  # Compile and warm up.
    times = {n: [] for n in fns}
    for _ in range(args.repeats):
      for n, f in fns.items():  # Interleaved, so machine drift affects both.
        t = time.perf_counter()
        jax.block_until_ready(f(variables, x))
        times[n].append(time.perf_counter() - t)
    flax_ms, ours_ms = (1000 * np.median(times[n]) for n in ("flax", "jaxgan"))
    print(f"{name:34s} {flax_ms:9.1f} {ours_ms:9.1f} {flax_ms / ours_ms:7.2f}x")


if __name__ == "__main__":
  main()
