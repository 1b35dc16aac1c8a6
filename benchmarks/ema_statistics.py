"""FID and the rest of the suite of one GAN run's checkpoint sampled three
ways: the averaged weights with the averaged BatchNorm statistics (what
jaxgan samples), the averaged weights with the live generator's statistics
(what it sampled before the averages included them), and the live generator.

    python -m benchmarks.ema_statistics --workdir GAN_RUN --features CLASSIFIER_RUN

As many samples as the run's eval_split has images, scored against them in
the classifier's features (as `experiments.evaluate`).
"""

from __future__ import annotations

import argparse

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends
from jaxgan import evaluation, runs  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--features", required=True)
  args = parser.parse_args()
  run = runs.restore(args.workdir, expect="gan")
  config, data, task, state, step = run.config, run.data, run.task, run.state, run.step
  extractor = runs.extractor(args.features)
  real = data.first_images(config.eval_split)
  real_f, real_p = extractor(real)
  live = {"params": state.g.params, "batch_stats": state.g.batch_stats}
  variants = {
      "average + averaged statistics": state,
      "average + live statistics": state.replace(
          g_ema={"params": state.g_ema["params"], "batch_stats": state.g.batch_stats}),
      "live generator": state.replace(g_ema=live),
  }
  results = {}
  for name, s in variants.items():
    fake_f, fake_p = extractor(evaluation.generate(task, s, len(real), config.seed))
    results[name] = evaluation.compare(real_f, real_p, fake_f, fake_p)
  print(f"{args.workdir}, step {step}, {len(real)} samples vs {config.eval_split}")
  print(evaluation.format_table(results))


if __name__ == "__main__":
  main()
