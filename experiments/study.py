"""Multi-seed studies: `python -m experiments.study --config experiments/configs/dcgan.py --seeds 5 --workdir DIR`.

Trains one run per seed (and per point of an optional `--sweep FIELD=V1,V2`
grid over one or two config fields), one after the other, each in its own
run directory `DIR/<point>/seed_<s>` (so each resumes like any run), then
aggregates their final metrics into DIR/study.csv, study.md (mean ± std,
95% interval, min, max) and study.png (metric against step per seed, with the
mean). Rerunning re-aggregates; finished runs are not retrained.

Each run trains the kind its config names (`config.task`, jaxgan/runs.py);
--config.FIELD=VALUE applies to every run.
On a cluster, run each (point, seed) as an array job with --only=INDEX
(0 .. points*seeds-1) and aggregate afterwards with --aggregate_only.
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from experiments import common


def define_flags() -> None:
  """The command's flags (defined at run time, so that commands can be imported
  side by side)."""
  flags.DEFINE_string("workdir", None, "Study directory.", required=True)
  config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
  flags.DEFINE_string("experiment", None, "Deprecated and unused: the config's `task` field "
                      "names what each run trains.")
  flags.DEFINE_integer("seeds", 3, "Number of seeds.")
  flags.DEFINE_integer("first_seed", 0, "Seeds are first_seed, first_seed+1, ...")
  flags.DEFINE_multi_string("sweep", [], "FIELD=V1,V2,...: also sweep a config field (one or "
                            "two --sweep flags: a grid).")
  flags.DEFINE_integer("only", None, "Train only run number ONLY of the (point, seed) list "
                       "(cluster array jobs), then stop without aggregating.")
  flags.DEFINE_bool("aggregate_only", False, "Do not train; aggregate what the run "
                    "directories hold.")
  common.define_distributed_flags()


def _run_config(point: dict, seed: int):
  """The base config with a sweep point's values and the seed."""
  config = flags.FLAGS.config.copy_and_resolve_references()
  with config.unlocked():
    for field, value in point.items():
      *parents, leaf = field.split(".")
      node = config
      for p in parents:
        node = node[p]
      if leaf not in node:
        raise ValueError(f"--sweep: the config has no field {field!r}.")
      try:
        node[leaf] = value
      except TypeError as e:
        raise ValueError(f"--sweep {field}={value!r}: {e}") from None
    config.seed = seed
  return config


def _run() -> int:
  from jaxgan import runs, study
  FLAGS = flags.FLAGS
  common.initialize_distributed()
  sweep = study.parse_sweep(FLAGS.sweep)
  todo_all = [(point, seed) for point in study.sweep_points(sweep)
              for seed in range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds)]
  if FLAGS.only is not None and not 0 <= FLAGS.only < len(todo_all):
    raise ValueError(f"--only={FLAGS.only} is outside 0..{len(todo_all) - 1}.")
  if not FLAGS.aggregate_only:
    if FLAGS.config is None:
      raise ValueError("--config is required to train (e.g. experiments/configs/dcgan.py).")
    todo = todo_all if FLAGS.only is None else [todo_all[FLAGS.only]]
    configs = [_run_config(point, seed) for point, seed in todo]  # Bad values fail first.
    runs.kind_of(configs[0])
    failed = []
    for i, ((point, seed), config) in enumerate(zip(todo, configs)):
      rundir = study.run_dir(FLAGS.workdir, point, seed)
      print(f"[{i + 1}/{len(todo)}] {study.point_name(point)} seed {seed}: {rundir}",
            flush=True)
      code = common.train_main(runs.train, config, rundir)
      if code:
        failed.append(rundir)
        if code >= 128:  # Stopped by a signal: stop the study too.
          return code
    if failed:
      print(f"error: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    if FLAGS.only is not None:
      return 1 if failed else 0
  summary = study.aggregate(FLAGS.workdir)
  with open(os.path.join(FLAGS.workdir, "study.md")) as f:
    print(f.read())
  print(f"Wrote {FLAGS.workdir}/study.csv, study.md, study.png "
        f"({len(summary)} point(s)).")
  return 0


if __name__ == "__main__":
  common.tool_main(define_flags, _run)
