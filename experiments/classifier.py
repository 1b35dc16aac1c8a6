"""Trains a classifier: `python -m experiments.classifier [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

Rerunning with the same --workdir resumes from its latest checkpoint.
"""

import os

from experiments import common
from jaxgan.runs import train as train_and_evaluate

__all__ = ["train_and_evaluate"]

if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/classifier",
              os.path.join(os.path.dirname(__file__), "configs", "classifier.py"))
