"""Every test runs with 8 simulated CPU devices, so multi-device code paths are
exercised everywhere (a 1-device mesh is still available as jax.devices()[:1])."""

import functools
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # The flags the experiments run with.

import jax  # noqa: E402
import pytest  # noqa: E402

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


@pytest.fixture(scope="session")
def num_devices():
  n = jax.device_count()
  assert n == 8, f"tests expect 8 simulated CPU devices, got {n}"
  return n


@functools.cache
def compiled(task, devices: tuple):
  """(mesh, init, step) for `task` on `devices`: the loop's jit shardings
  (state replicated and donated, batch split over the mesh), compiled once."""
  from jaxgan import sharding
  mesh = sharding.make_mesh(list(devices))
  repl = sharding.replicated(mesh)
  init = jax.jit(task.init_state, out_shardings=repl)
  step = jax.jit(task.train_step, in_shardings=(repl, sharding.data_sharded(mesh)),
                 out_shardings=(repl, repl), donate_argnums=0)
  return mesh, init, step
