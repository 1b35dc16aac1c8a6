"""Every test runs with 8 simulated CPU devices, so multi-device code paths are
exercised everywhere (a 1-device mesh is still available as jax.devices()[:1])."""

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
# The suite compiles far more than it computes (a few steps of small models
# each), and on 2 cores most of the compile time is LLVM optimising XLA's
# CPU code. Level 0 skips that: the whole suite took 1,341 s instead of
# 1,522 on the 2-core development machine (one run after the other, nothing
# else running). The compile-bound tests gain most (38 tests of BigGAN,
# InfoGAN and the clusters: 332 s instead of 487); the texture tests, which
# run hundreds of optimiser steps, lose (146 s instead of 26). What the
# tests check (formulas, equalities, bitwise resume) holds at every level.
# To run the suite as the experiments compile, set the level yourself:
# XLA_FLAGS=--xla_backend_optimization_level=2 pytest
if "--xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One persistent compilation cache for the session (subprocesses inherit it
# through the environment): many tests compile the same small programs again,
# in new tasks or new processes, and on 2 cores compiling is most of their time.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxgan-tests-jit-")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # The flags the experiments run with.

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxgan.writers import read_metrics  # noqa: E402

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


@pytest.fixture(scope="session")
def num_devices():
  n = jax.device_count()
  assert n == 8, f"tests expect 8 simulated CPU devices, got {n}"
  return n


# A small DCGAN (Radford et al.'s at 16x16, 8 base channels) for the tests of
# the loop's mechanics: its step costs ~1/20 of the MNIST model's on 8
# simulated devices.
TINY_DCGAN = dict(image_size=16, ngf=8, ndf=8)


def _tensorflow_available() -> bool:
  from jaxgan.data.tfds import tensorflow_available
  return tensorflow_available()


# Tests of the tf.data pipeline and TFDS tfrecord data: skipped where
# TensorFlow is not installed (e.g. a GPU machine without it); CI installs it.
requires_tf = pytest.mark.skipif(not _tensorflow_available(),
                                 reason="needs TensorFlow: pip install -e '.[tf]'")


def assert_resumes_bitwise(train, config, workdir, steps: int = 4):
  """`train(config, dir)` for `steps` steps straight, and to steps // 2 then
  on to `steps` in a second directory: the resume starts half way and ends
  in a bitwise equal state. Returns the straight run's result."""
  import numpy as np
  config = config.copy_and_resolve_references()
  config.num_train_steps = steps
  straight = train(config, os.path.join(workdir, "straight"))
  half = config.copy_and_resolve_references()
  half.num_train_steps = steps // 2
  train(half, os.path.join(workdir, "resumed"))
  resumed = train(config, os.path.join(workdir, "resumed"))
  assert (resumed.start_step, resumed.step) == (steps // 2, steps)
  for a, b in zip(jax.tree.leaves(jax.device_get(straight.state)),
                  jax.tree.leaves(jax.device_get(resumed.state)), strict=True):
    np.testing.assert_array_equal(a, b)
  return straight


def env_with_devices(num_devices: int, drop_flags: tuple[str, ...] = ()) -> dict:
  """This environment for a subprocess, with `num_devices` simulated CPU
  devices and without the XLA flags that start with any of `drop_flags`."""
  drop = ("--xla_force_host_platform_device_count",) + tuple(drop_flags)
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(drop)]
  return dict(os.environ, XLA_FLAGS=" ".join(
      flags + [f"--xla_force_host_platform_device_count={num_devices}"]))


@functools.cache
def _init_on_one_device(task):
  return jax.jit(task.init_state)


@functools.cache
def compiled(task, devices: tuple):
  """(mesh, init, step) for `task` on `devices`, each compiled once: `step`
  with the loop's jit shardings (state replicated and donated, batch split
  over the mesh); `init` computes the state on one device (one compilation
  per task, whatever the meshes) and replicates a copy over the mesh."""
  from jaxgan import sharding
  mesh = sharding.make_mesh(list(devices))
  repl = sharding.replicated(mesh)
  init = lambda key: jax.device_put(jax.device_get(_init_on_one_device(task)(key)), repl)
  step = jax.jit(task.train_step, in_shardings=(repl, sharding.data_sharded(mesh)),
                 out_shardings=(repl, repl), donate_argnums=0)
  return mesh, init, step


# Test data and parameters come from NumPy. On this 2-core CPU XLA takes ~0.5 s
# to compile each threefry draw (one per shape: every jax.random.normal and
# every parameter initializer run eagerly), most of a small test's time.

def normal(shape, seed: int = 0, scale: float = 1.0, loc: float = 0.0):
  """A float32 jax.Array of N(loc, scale^2) values drawn by NumPy."""
  import jax.numpy as jnp
  import numpy as np
  rng = np.random.default_rng(seed)
  return jnp.asarray((loc + scale * rng.standard_normal(shape)).astype(np.float32))


def random_init(module, *args, seed: int = 0, **kwargs):
  """The variables `module.init(key, *args, **kwargs)` would make (same tree,
  shapes and dtypes, found with jax.eval_shape: nothing compiled or run), with
  every parameter drawn from N(0, 1/fan_in) by NumPy (fan_in: the product of
  all but the last dimension; 1 for vectors) and batch statistics at their
  initial values (means 0, variances 1)."""
  import jax.numpy as jnp
  import numpy as np
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    collection, name = path[0].key, path[-1].key
    if collection == "batch_stats":
      return jnp.full(leaf.shape, 1.0 if name == "var" else 0.0, leaf.dtype)
    fan_in = max(1, int(np.prod(leaf.shape[:-1])))
    return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def assert_adam_states_close(ref_stats, got_stats, ref_params, got_params, lr: float,
                             steps: int = 1, stats_tol: float = 1e-4) -> None:
  """Two runs that differ only in summation order (device or process count).

  `*_stats` (Adam moments, batch statistics: lists of arrays) agree to
  `stats_tol` of each leaf's largest magnitude. Parameters: Adam's early
  updates are ~lr * sign(g), so an entry whose gradient is ~0 may move the
  other way; each must be within 2 * lr per step, and all but 1 in 10^4
  within 1e-6.
  """
  import numpy as np
  assert len(ref_stats) == len(got_stats) and len(ref_params) == len(got_params)
  for a, b in zip(ref_stats, got_stats):
    scale = max(float(np.max(np.abs(a))), 1e-8) if np.size(a) else 1.0
    np.testing.assert_allclose(b, a, rtol=0, atol=stats_tol * scale)
  total = off = 0
  for a, b in zip(ref_params, got_params):
    diff = np.abs(np.asarray(a) - np.asarray(b))
    assert diff.max() <= 2 * lr * steps + 1e-6
    off += int(np.sum(diff > 1e-6))
    total += np.size(a)
  assert off <= 1e-4 * total, f"{off} of {total} parameters differ by more than 1e-6"


def write_folder(root, n: int = 96, sizes=((8, 8), (10, 12), (12, 9))) -> str:
  """`n` of scikit-learn's digits as RGB PNGs of several sizes (so every
  image is fitted), two classes of subfolders; returns the dataset string."""
  import numpy as np
  from PIL import Image
  from jaxgan.data.arrays import load_digits
  digits = load_digits().images["train"][:n, :, :, 0]
  for i, x in enumerate(digits):
    h, w = sizes[i % len(sizes)]
    rgb = np.stack([x, 255 - x, np.roll(x, 1, axis=1)], -1)
    image = Image.fromarray(rgb).resize((w, h), Image.NEAREST)
    d = os.path.join(root, "even" if i % 2 == 0 else "odd")
    os.makedirs(d, exist_ok=True)
    image.save(os.path.join(d, f"{i:04d}.png"))
  return f"folder:{root}"


def signal_dcgan_run(workdir: str, fields: dict, sig: int, after_records: int,
                     timeout: float = 240) -> tuple[int, str]:
  """Starts `python -m experiments.dcgan --workdir WORKDIR` with `fields`
  (and num_train_steps=100000) in a subprocess, sends it `sig` once its
  metrics.jsonl holds `after_records` records, and returns its exit status
  and stderr; the subprocess is always reaped."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  args = [sys.executable, "-m", "experiments.dcgan", "--workdir", workdir]
  args += [f"--config.{k}={v}" for k, v in fields.items()]
  proc = subprocess.Popen(args + ["--config.num_train_steps=100000"], cwd=repo,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
      if len(read_metrics(workdir)) >= after_records:
        break
      time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  return proc.returncode, err
