"""Trains any run kind: `python -m experiments.train --config experiments/configs/KIND.py[:PRESET] [--workdir DIR] [--config.FIELD=VALUE ...]`.

The config's `task` field names what is trained (gan, classifier, vae,
superres: jaxgan/runs.py); the run directory defaults to runs/<task>.
`python -m experiments.dcgan`, `.gan`, `.classifier`, `.vae` and `.superres`
are this command with their own default config. Rerunning with the same
--workdir resumes from its latest checkpoint.
"""

from experiments import common
from jaxgan.runs import train as train_and_evaluate

__all__ = ["train_and_evaluate"]

if __name__ == "__main__":
  common.main(train_and_evaluate, None, None)
