"""What every experiment's `main` shares: flags, and clear errors instead of tracebacks."""

import sys


def run_main(train_and_evaluate, config, workdir: str) -> int:
  """Runs training; expected failures (bad data, bad config, NaN loss) print
  one clear message and exit 1, keeping what the run directory already holds."""
  from jaxgan.data import DataError
  from jaxgan.loop import NonFiniteLossError, Preempted
  try:
    train_and_evaluate(config, workdir)
  except (DataError, NonFiniteLossError, ValueError) as e:
    print(f"\nerror: {e}", file=sys.stderr)
    return 1
  except Preempted as e:
    print(f"\n{e}", file=sys.stderr)
    return 128 + e.signum
  except KeyboardInterrupt:
    print("\nInterrupted; rerun the same command to resume from the last checkpoint in "
          f"{workdir}/checkpoints.", file=sys.stderr)
    return 130
  return 0


def command_main(run, errors: tuple = (ValueError, FileNotFoundError)):
  """The absl `main` of a command that is not a training run (texture,
  style_transfer, inpaint, ...): no positional arguments, warnings only, and
  `run()` (which reads the flags and prints its results) stopped by an
  expected error with one `error: ...` line and exit status 1."""
  def main(argv):
    from absl import app, logging
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    try:
      return run() or 0
    except errors as e:
      print(f"error: {e}", file=sys.stderr)
      return 1

  return main


def main(train_and_evaluate, default_workdir: str, default_config: str) -> None:
  """`python -m experiments.NAME [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

  Flags are defined here, at run time, so that experiments can be imported
  side by side (tests, notebooks) without clashing flag definitions.
  """
  from absl import app, flags, logging
  from ml_collections import config_flags

  flags.DEFINE_string("workdir", default_workdir, "Run directory (config, metrics, "
                      "samples, checkpoints); an existing one is resumed.")
  config_flags.DEFINE_config_file("config", default_config, "Experiment config file.",
                                  lock_config=True)
  define_distributed_flags()

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
    try:
      initialize_distributed()
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
    return run_main(train_and_evaluate, flags.FLAGS.config, flags.FLAGS.workdir)

  sys.exit(app.run(_main))


def define_distributed_flags() -> None:
  from absl import flags
  flags.DEFINE_string("coordinator_address", None, "Multi-process runs: host:port of "
                      "process 0 (with --num_processes and --process_id). Cluster launchers "
                      "JAX knows (srun, mpirun, Cloud TPU) need none of the three.")
  flags.DEFINE_integer("num_processes", None, "Multi-process runs: how many processes.")
  flags.DEFINE_integer("process_id", None, "Multi-process runs: this process's index.")


def initialize_distributed() -> None:
  from absl import flags
  from jaxgan import distributed
  f = flags.FLAGS
  distributed.initialize(f.coordinator_address, f.num_processes, f.process_id)
