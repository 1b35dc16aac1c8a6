"""Where a DCGAN train step's time goes: a jax.profiler trace, per XLA op and layer.

    python -m benchmarks.profile_step [--case mnist|radford64] [--devices 1]
                                      [--steps 5] [--top 20] [--trace_dir DIR]

Compiles the same jaxgan step as `benchmarks/dcgan_step.py` (with the
training loop's shardings over `--devices` CPU devices, simulated by XLA when
more than one), traces `--steps` steps with `jax.profiler.trace` (XLA's CPU
runtime records every executed op when `--xla_cpu_enable_xprof_traceme` is
set, which this script does before JAX starts), and sums each op's time.
Each op is attributed to the layer and pass its HLO metadata names
(`MnistDiscriminator/Conv_1`, forward or backward), so the table reads as a
per-layer profile. Op times are summed over all threads and devices, so with
ops running in parallel their sum can exceed the wall time. The trace itself
stays in `--trace_dir` for TensorBoard's profile plugin or Perfetto.
"""

from __future__ import annotations

import os
import sys


def _set_flags(devices: int) -> None:
  flags = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
  if devices > 1:
    flags += f" --xla_force_host_platform_device_count={devices}"
  os.environ["XLA_FLAGS"] = flags.strip()


def _arg(name: str, default: str) -> str:
  for i, a in enumerate(sys.argv):
    if a == name and i + 1 < len(sys.argv):
      return sys.argv[i + 1]
    if a.startswith(name + "="):
      return a.split("=", 1)[1]
  return default


_set_flags(int(_arg("--devices", "1")))  # before JAX starts

import argparse  # noqa: E402
import collections  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends
import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.dcgan_step import CASES  # noqa: E402
from experiments.configs.dcgan import get_config  # noqa: E402
from jaxgan import sharding  # noqa: E402
from jaxgan.tasks.gan import GANTask  # noqa: E402

_MODULES = ("MnistGenerator", "MnistDiscriminator", "Generator", "Discriminator")


def op_metadata(hlo_text: str) -> dict[str, tuple[str, str]]:
  """{instruction name: (opcode, op_name metadata)} of a compiled HLO module."""
  out = {}
  for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?\b([a-z][\w\-]*)\((.*)$", hlo_text,
                       re.MULTILINE):
    name, opcode, rest = m.groups()
    meta = re.search(r'op_name="([^"]*)"', rest)
    out[name] = (opcode, meta.group(1) if meta else "")
  return out


def attribute(op_name: str) -> tuple[str, str]:
  """(layer, pass) from an op_name like
  'jit(train_step)/transpose(jvp(MnistDiscriminator))/Conv_1/conv_general_dilated'."""
  backward = "transpose(" in op_name
  layer = "other"
  for part in op_name.split("/"):
    inner = re.sub(r"^.*\(", "", part).rstrip(")")
    if inner in _MODULES:
      layer = inner
    elif layer in _MODULES and re.fullmatch(r"[A-Z]\w*_\d+", part):
      layer = f"{layer}/{part}"
      break
  if layer == "other":
    if "adam" in op_name or "scale_by" in op_name or "optax" in op_name:
      layer = "optimizer"
    elif "random" in op_name or "threefry" in op_name:
      layer = "rng"
  return layer, ("backward" if backward else "forward")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--case", default="mnist", choices=sorted(CASES))
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--devices", type=int, default=1)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--top", type=int, default=20)
  parser.add_argument("--trace_dir", default=None)
  args = parser.parse_args()

  size, channels, batch = CASES[args.case]
  config = get_config()
  config.batch_size, config.image_size, config.compute_dtype = batch, size, args.dtype
  task = GANTask(config, (size, size, channels))
  mesh = sharding.make_mesh(jax.devices()[:args.devices])
  repl = sharding.replicated(mesh)
  state = jax.jit(task.init_state, out_shardings=repl)(jax.random.PRNGKey(0))
  data = sharding.to_global_batch(
      {"image": np.random.default_rng(1).uniform(-1, 1, (batch, size, size, channels))
       .astype(np.float32), "label": np.zeros((batch,), np.int32)}, mesh)
  step = jax.jit(task.train_step, in_shardings=(repl, sharding.data_sharded(mesh)),
                 out_shardings=(repl, repl), donate_argnums=0).lower(state, data).compile()
  meta = op_metadata(step.as_text())
  for _ in range(2):
    state, m = step(state, data)
  jax.block_until_ready(m)

  trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="jaxgan-profile-")
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    t = time.perf_counter()
    for _ in range(args.steps):
      state, m = step(state, data)
      jax.block_until_ready(m)
    wall = (time.perf_counter() - t) / args.steps
  path = max(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True),
             key=os.path.getmtime)
  with gzip.open(path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace

  per_op = collections.Counter()
  for e in events:
    a = e.get("args") or {}
    if e.get("ph") == "X" and "hlo_op" in a and "train_step" in a.get("hlo_module", ""):
      per_op[a["hlo_op"]] += e["dur"] / 1e3 / args.steps  # ms per step
  if not per_op:
    raise SystemExit("The trace holds no XLA op events; this JAX/XLA may not support "
                     "--xla_cpu_enable_xprof_traceme.")
  total = sum(per_op.values())
  per_layer = collections.Counter()
  per_kind = collections.Counter()
  rows = []
  for op, ms in per_op.most_common():
    opcode, op_name = meta.get(op, ("?", ""))
    layer, pass_ = attribute(op_name)
    kind = ("convolution" if opcode == "convolution" else
            "matmul (YNNPACK)" if "ynn" in op else
            "dot" if opcode == "dot" else
            "collective" if opcode.startswith("all-") else
            "fusion (elementwise/reduce)" if opcode == "fusion" else opcode)
    per_layer[(layer, pass_)] += ms
    per_kind[kind] += ms
    rows.append((op, kind, layer, pass_, ms))

  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"{args.case} b{batch} {args.dtype} on {args.devices} device(s): wall {wall * 1e3:.1f} "
        f"ms/step; XLA ops {total:.1f} ms/step summed over threads "
        f"({len(per_op)} distinct ops). Trace: {trace_dir}\n")
  print(f"{'layer':34s}{'pass':>10s}{'ms/step':>10s}{'share':>8s}")
  for (layer, pass_), ms in sorted(per_layer.items(), key=lambda kv: -kv[1]):
    print(f"{layer:34s}{pass_:>10s}{ms:10.1f}{ms / total:8.0%}")
  print(f"\n{'kind of op':34s}{'':>10s}{'ms/step':>10s}{'share':>8s}")
  for kind, ms in per_kind.most_common():
    print(f"{kind:34s}{'':>10s}{ms:10.1f}{ms / total:8.0%}")
  families = collections.Counter()
  for op, ms in per_op.items():
    families[re.sub(r"[.\d]+$", "", op)] += ms
  print(f"\n{'op family (name without number)':34s}{'':>10s}{'ms/step':>10s}{'share':>8s}")
  for fam, ms in families.most_common(args.top):
    print(f"{fam[:34]:34s}{'':>10s}{ms:10.1f}{ms / total:8.0%}")
  print(f"\ntop {args.top} ops")
  print(f"{'op':34s}{'kind':>28s}  {'layer / pass':40s}{'ms/step':>9s}")
  for op, kind, layer, pass_, ms in rows[:args.top]:
    print(f"{op[:34]:34s}{kind:>28s}  {layer + ' ' + pass_:40s}{ms:9.1f}")


if __name__ == "__main__":
  main()
