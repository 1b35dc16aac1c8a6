"""Trains a DCGAN: `python -m experiments.dcgan [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

Rerunning with the same --workdir resumes from its latest checkpoint.
"""

import os

from experiments import common


def train_and_evaluate(config, workdir: str):
  from jaxgan.loop import train_and_evaluate as run
  from jaxgan.tasks.gan import GANTask
  return run(config, workdir, lambda cfg, data: GANTask(cfg, data.info.image_shape))


if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/dcgan",
              os.path.join(os.path.dirname(__file__), "configs", "dcgan.py"))
