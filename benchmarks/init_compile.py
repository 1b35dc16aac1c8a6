"""Compile time of a model's parameter draws: shaped (flax's initializers) vs
flat (jaxgan.flat_random, which gives the same values).

    python -m benchmarks.init_compile [--repeats 3]

For each model, the program that draws every kernel of its `init` (truncated
normal, as lecun_normal) is compiled both ways, alternating, each time under
a fresh name so that no cache answers; the ratio of median compile times is
what drawing flat saves at start-up. Then the whole `init` of each model as
the library now has it.
"""

from __future__ import annotations

import argparse
import statistics
import time

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends

import jax  # noqa: E402
import jax.numpy as jnp

from jaxgan import flat_random
from jaxgan.models.registry import make_classifier
from jaxgan.models.dcgan import make_dcgan
from jaxgan.models.registry import make_vae


def _models():
  g, d = make_dcgan(28, 1)
  yield "MNIST DCGAN G+D", [(g, (jnp.zeros((1, 100)),)), (d, (jnp.zeros((1, 28, 28, 1)),))]
  g, d = make_dcgan(32, 3)
  yield "Radford 32x32 G+D", [(g, (jnp.zeros((1, 100)),)), (d, (jnp.zeros((1, 32, 32, 3)),))]
  yield "conv VAE", [(make_vae("conv", (28, 28, 1), 32, 1), (jnp.zeros((1, 28, 28, 1)),
                                                            jax.random.key(1)))]
  yield "ResNet-20", [(make_classifier("resnet20", 10), (jnp.zeros((1, 32, 32, 3)),))]


def _compile_seconds(fn, tag: int) -> float:
  fn.__name__ = f"draws_{tag}"  # A new name: a new program, compiled afresh.
  start = time.perf_counter()
  jax.jit(fn).lower(jax.random.key(0)).compile()
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  tag = 0
  print(f"{'model':<20} {'kernels':>7} {'shaped s':>9} {'flat s':>7} {'ratio':>6} {'init s':>7}")
  for name, parts in _models():
    shapes = []
    for module, inputs in parts:
      variables = jax.eval_shape(lambda k, m=module, x=inputs: m.init(k, *x, train=False),
                                 jax.random.key(0))
      shapes += [p.shape for p in jax.tree.leaves(variables["params"]) if p.ndim >= 2]
    draw = {"shaped": lambda k, s: jax.random.truncated_normal(k, -2, 2, s),
            "flat": lambda k, s: flat_random.truncated_normal(k, -2, 2, s)}
    times = {"shaped": [], "flat": []}
    for _ in range(args.repeats):
      for kind in ("shaped", "flat"):
        tag += 1
        fn = lambda key, f=draw[kind]: [f(jax.random.fold_in(key, i), s)
                                        for i, s in enumerate(shapes)]
        times[kind].append(_compile_seconds(fn, tag))
    shaped, flat = (statistics.median(times[k]) for k in ("shaped", "flat"))
    start = time.perf_counter()
    for module, inputs in parts:
      jax.jit(lambda k, m=module, x=inputs: m.init(k, *x, train=False)).lower(
          jax.random.key(0)).compile()
    init = time.perf_counter() - start
    print(f"{name:<20} {len(shapes):>7} {shaped:>9.2f} {flat:>7.2f} {shaped / flat:>6.1f} "
          f"{init:>7.2f}", flush=True)


if __name__ == "__main__":
  main()
