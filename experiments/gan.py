"""Trains a GAN of the family: `python -m experiments.gan --config experiments/configs/gan.py:PRESET [--workdir DIR] [--config.FIELD=VALUE ...]`.

Presets: dcgan, lsgan, wgan_gp, hinge_sn, dcgan_diffaug (see
experiments/configs/gan.py). Rerunning with the same --workdir resumes from
its latest checkpoint.
"""

import os

from experiments import common


def train_and_evaluate(config, workdir: str):
  from jaxgan import evaluation
  from jaxgan.loop import train_and_evaluate as run
  from jaxgan.tasks.gan import GANTask
  return run(config, workdir, lambda cfg, data: GANTask(cfg, data.info.image_shape),
             evaluators=evaluation.training_evaluators(config))


if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/gan",
              os.path.join(os.path.dirname(__file__), "configs", "gan.py"))
