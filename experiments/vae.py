"""Trains a VAE: `python -m experiments.vae [--workdir DIR] [--config FILE] [--config.FIELD=VALUE ...]`.

Rerunning with the same --workdir resumes from its latest checkpoint.
"""

import os

from experiments import common


def train_and_evaluate(config, workdir: str):
  from jaxgan.loop import train_and_evaluate as run
  from jaxgan.tasks.vae import VAETask

  def make_task(cfg, data):
    # The first eval images are the fixed inputs of the reconstruction figures.
    split = cfg.eval_split or cfg.train_split
    return VAETask(cfg, data.info.image_shape, data.first_images(split, 32))

  return run(config, workdir, make_task)


if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/vae",
              os.path.join(os.path.dirname(__file__), "configs", "vae.py"))
