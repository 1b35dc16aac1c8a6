"""Trains super-resolution: `python -m experiments.superres [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

Rerunning with the same --workdir resumes from its latest checkpoint.
"""

import os

from experiments import common


def train_and_evaluate(config, workdir: str):
  from jaxgan import evaluation
  from jaxgan.loop import train_and_evaluate as run
  from jaxgan.tasks.superres import SuperResolutionTask

  def make_task(cfg, data):
    split = cfg.eval_split or cfg.train_split
    return SuperResolutionTask(cfg, data.info.image_shape, data.first_images(split, 8))

  return run(config, workdir, make_task, evaluators=evaluation.training_evaluators(config))


if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/superres",
              os.path.join(os.path.dirname(__file__), "configs", "superres.py"))
