"""What every command's `main` shares: flags, and clear errors instead of
tracebacks. Two shapes: trainers call `main(train_and_evaluate, workdir,
config)`; every other command defines `define_flags()` and `_run()` and
calls `tool_main(define_flags, _run)`."""

import os
import sys

from jaxgan import errorlog, images, xla_flags
from jaxgan.checkpoint import CheckpointSaveError
from jaxgan.data import DataError
from jaxgan.loop import NonFiniteLossError, Preempted


def train_main(train_and_evaluate, config, workdir: str) -> int:
  """Runs training; expected failures (bad data, bad config, NaN loss, a
  failed save, a full disk) print one clear message and exit 1, keeping what
  the run directory already holds."""
  try:
    # (the loop diverts background tracebacks itself; this keeps the diversion
    # for the process's teardown when the run fails)
    with errorlog.background_errors_logged(workdir, keep_on_error=True):
      train_and_evaluate(config, workdir)
  except (DataError, NonFiniteLossError, ValueError, CheckpointSaveError, OSError) as e:
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


def _absl_tool_main(run, errors: tuple = (ValueError, FileNotFoundError),
                    usage: str | None = None):
  """The absl `main` of a command that is not a training run (evaluate,
  texture, inpaint, ...): warnings only, and `run()` (which reads the flags
  and prints its results; `run(paths)` with the positional arguments when
  the command takes them, as `usage` says) stopped by an expected error with
  one `error: ...` line and exit status 1."""
  def main(argv):
    from absl import app, logging
    logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO.
    if usage is None and len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if usage is not None and len(argv) < 2:
      print(f"usage: {usage}", file=sys.stderr)
      return 2
    try:
      apply_image_limit_flag()
      with errorlog.background_errors_logged(keep_on_error=True):  # a damaged checkpoint's noise
        return (run() if usage is None else run(argv[1:])) or 0
    except errors as e:
      print(f"error: {e}", file=sys.stderr)
      # Leave at once: after a failed restore a storage thread can keep the
      # interpreter's teardown waiting forever (seen in CI, about one run in
      # four). A tool has nothing left to save at this point.
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(1)

  return main


def tool_main(define_flags, run, errors: tuple = (ValueError, FileNotFoundError),
              usage: str | None = None) -> None:
  """`python -m experiments.NAME` for every command but the trainers: jaxgan's
  XLA flags, the command's flags (defined at run time, so that commands can
  be imported side by side), then `_absl_tool_main(run, errors, usage)`."""
  add_xla_defaults()
  from absl import app
  define_flags()
  define_image_limit_flag()
  sys.exit(app.run(_absl_tool_main(run, errors, usage)))


def add_xla_defaults() -> None:
  """jaxgan's default XLA flags (`jaxgan.xla_flags`): every command's first
  step, before JAX starts its backends."""
  xla_flags.add_defaults()


def main(train_and_evaluate, default_workdir: str | None, default_config: str | None) -> None:
  """`python -m experiments.NAME [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

  Flags are defined here, at run time, so that experiments can be imported
  side by side (tests, notebooks) without clashing flag definitions. jaxgan's
  default XLA flags are added first (`jaxgan.xla_flags`), before JAX starts.
  Without a default config, --config is required and the run directory
  defaults to runs/<config.task>.
  """
  add_xla_defaults()
  from absl import app, flags, logging
  from ml_collections import config_flags

  flags.DEFINE_string("workdir", default_workdir, "Run directory (config, metrics, "
                      "samples, checkpoints); an existing one is resumed. Default: "
                      + (default_workdir or "runs/<config.task>") + ".")
  config_flags.DEFINE_config_file("config", default_config, "Experiment config file: "
                                  "experiments/configs/KIND.py[:PRESET].", lock_config=True)
  if default_config is None:
    flags.mark_flag_as_required("config")
  define_distributed_flags()
  define_image_limit_flag()

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
    try:
      apply_image_limit_flag()
      initialize_distributed()
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
    config = flags.FLAGS.config
    workdir = flags.FLAGS.workdir or f"runs/{config.get('task') or 'run'}"
    return train_main(train_and_evaluate, config, workdir)

  sys.exit(app.run(_main))


def define_image_limit_flag() -> None:
  from absl import flags
  flags.DEFINE_integer("max_image_pixels", None, "The most pixels an image file may have "
                       "before it is decoded (default "
                       f"{images.DEFAULT_MAX_IMAGE_PIXELS}, 8192x8192: a guard against "
                       f"decompression bombs; also ${images.MAX_IMAGE_PIXELS_ENV}).")


def apply_image_limit_flag() -> None:
  """--max_image_pixels into the environment, where `jaxgan.images` and the
  input pipeline's worker processes read it."""
  from absl import flags
  if flags.FLAGS.max_image_pixels is not None:
    os.environ[images.MAX_IMAGE_PIXELS_ENV] = str(flags.FLAGS.max_image_pixels)
  images.max_image_pixels()  # a bad value is an error now


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
