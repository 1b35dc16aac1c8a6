"""A whole training run's sustained images/s next to its bare step's.

    python -m benchmarks.end_to_end [--steps 200] [--cases dcgan,classifier]
        [--variants tfdata,host,device,device_k4,streamed] [--dtypes float32,bfloat16]
        [--batch 128] [--image_size 28] [--dataset idx:../shared/data/mnist]

Per case (the MNIST DCGAN at batch 128 and the classifier at batch 128 on the
MNIST files in ../shared/data/mnist, `test[:9000]`; `--dataset digits` works
anywhere), each variant runs `experiments.dcgan` / `experiments.classifier`
end to end for `--steps` steps (logs every steps/5; no evaluation; samples
and a checkpoint only at the end) and reports the median `images_per_sec`
of metrics.jsonl (the loop excludes compilation and logging/saving time).
The bare step: `task.train_step` jitted with the state donated, run
back to back on a batch already on the devices, same device and batch.
Variants: `tfdata` (data_pipeline="tfdata", needs TensorFlow), `host`
(indexed, batches gathered on the host), `device` (indexed, split on the
devices), `device_k4` (and steps_per_call=4), `streamed` (read on demand through
grain's worker processes, data_workers "auto"). Ratios are measured side by
side in one process; the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends

MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                     "shared", "data", "mnist")
VARIANTS = {
    "tfdata": dict(data_pipeline="tfdata"),
    "host": dict(data_pipeline="indexed", data_on_device=False),
    "device": dict(data_pipeline="indexed", data_on_device=True),
    "device_k4": dict(data_pipeline="indexed", data_on_device=True, steps_per_call=4),
    "streamed": dict(data_pipeline="streamed"),
}


def _config(case: str, dtype: str, steps: int, dataset: str, batch: int = 128,
            image_size: int = 28):
  if case == "dcgan":
    from experiments.configs.dcgan import get_config
  else:
    from experiments.configs.classifier import get_config
  config = get_config()
  config.update(dict(dataset=dataset, train_split="test[:9000]" if dataset != "digits" else
                     "train", eval_split="", batch_size=batch, num_train_steps=steps,
                     image_size=image_size,
                     log_every_steps=max(1, steps // 5), sample_every_steps=steps,
                     checkpoint_every_steps=steps, eval_every_steps=0))
  if case == "dcgan":
    config.compute_dtype = dtype
    config.fid_features = ""
  return config


def _run(case: str, config) -> float:
  from jaxgan.writers import read_metrics
  from jaxgan import runs
  with tempfile.TemporaryDirectory() as workdir:
    runs.train(config, workdir)
    # The first interval holds only the compiled step: no rate ("nan").
    rates = [r["images_per_sec"] for r in read_metrics(workdir)
             if isinstance(r["images_per_sec"], float) and r["images_per_sec"] > 0]
  return statistics.median(rates)


def _bare(case: str, config, steps: int) -> float:
  import jax
  from jaxgan import sharding
  from jaxgan import runs
  from jaxgan.data import Data
  data = Data(config)
  task = runs.build(config, data)
  mesh = sharding.make_mesh()
  repl = sharding.replicated(mesh)
  feed = data.train_feed(mesh)
  batch = jax.jit(feed.to_batch)(next(feed.inputs()), feed.resident)
  feed.close()
  if task.batches_per_step > 1:
    batch = jax.tree.map(lambda x: jax.numpy.stack([x] * task.batches_per_step), batch)
  state = jax.jit(task.init_state, out_shardings=repl)(jax.random.PRNGKey(0))
  step = jax.jit(task.train_step, donate_argnums=0)
  for _ in range(3):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  t = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready((state, metrics))
  return steps * task.images_per_step / (time.perf_counter() - t)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--cases", default="dcgan,classifier")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--dtypes", default="float32")
  parser.add_argument("--dataset", default="idx:" + MNIST)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--image_size", type=int, default=28,
                      help="64: the Radford 64x64 DCGAN (MNIST resized)")
  args = parser.parse_args(argv)
  import jax
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; "
        f"{args.steps} steps per run; images/s (ratio to the bare step)")
  print("| case | dtype | bare step | " + " | ".join(args.variants.split(",")) + " |")
  print("| --- | --- | --- | " + " | ".join("---" for _ in args.variants.split(",")) + " |")
  for case in args.cases.split(","):
    for dtype in args.dtypes.split(","):
      if case != "dcgan" and dtype != "float32":
        continue
      sizes = (args.batch, args.image_size)
      config = _config(case, dtype, args.steps, args.dataset, *sizes)
      bare = _bare(case, config, args.steps)
      cells = []
      for name in args.variants.split(","):
        variant = _config(case, dtype, args.steps, args.dataset, *sizes)
        variant.update(VARIANTS[name])
        rate = _run(case, variant)
        cells.append(f"{rate:,.0f} ({rate / bare:.2f})")
      print(f"| {case} {args.image_size}px b{args.batch} | {dtype} | {bare:,.0f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  main()
