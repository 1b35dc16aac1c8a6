"""Trains a classifier: `python -m experiments.classifier [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

Rerunning with the same --workdir resumes from its latest checkpoint.
"""

import os

from experiments import common


def train_and_evaluate(config, workdir: str):
  from jaxgan.loop import train_and_evaluate as run
  from jaxgan.tasks.classifier import ClassifierTask
  return run(config, workdir, lambda cfg, data: ClassifierTask(
      cfg, data.info.image_shape, data.info.num_classes))


if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/classifier",
              os.path.join(os.path.dirname(__file__), "configs", "classifier.py"))
