"""What every experiment's `main` shares: clear errors instead of tracebacks."""

import sys


def run_main(train_and_evaluate, config, workdir: str) -> int:
  """Runs training; expected failures (bad data, bad config, NaN loss) print
  one clear message and exit 1, keeping what the run directory already holds."""
  from jaxgan.data import DataError
  from jaxgan.loop import NonFiniteLossError
  try:
    train_and_evaluate(config, workdir)
  except (DataError, NonFiniteLossError, ValueError) as e:
    print(f"\nerror: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("\nInterrupted; rerun the same command to resume from the last checkpoint in "
          f"{workdir}/checkpoints.", file=sys.stderr)
    return 130
  return 0
