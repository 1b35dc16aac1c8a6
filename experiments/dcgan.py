"""Trains a DCGAN: `python -m experiments.dcgan [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

Rerunning with the same --workdir resumes from its latest checkpoint.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import common

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "configs", "dcgan.py")

flags.DEFINE_string("workdir", "runs/dcgan", "Run directory (config, metrics, samples, "
                    "checkpoints); an existing one is resumed.")
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Experiment config file.",
                                lock_config=True)


def train_and_evaluate(config, workdir: str):
  from jaxgan.loop import train_and_evaluate as run
  from jaxgan.tasks.gan import GANTask
  return run(config, workdir, lambda cfg, info: GANTask(cfg, info.image_shape))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  return common.run_main(train_and_evaluate, flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
  sys.exit(app.run(main))
