"""Trains a GAN of the family: `python -m experiments.gan --config experiments/configs/gan.py:PRESET [--workdir DIR] [--config.FIELD=VALUE ...]`.

Presets: dcgan, lsgan, wgan_gp, hinge_sn, dcgan_diffaug; class-conditional
cgan_projection and acgan; the SNGAN ResNet sngan and sngan_projection;
cluster_projection, self-conditioned on k-means clusters of unlabelled images
(see experiments/configs/gan.py). Rerunning with the same --workdir resumes from
its latest checkpoint.
"""

import os

from experiments import common


def train_and_evaluate(config, workdir: str):
  from jaxgan import evaluation
  from jaxgan.loop import train_and_evaluate as run
  from jaxgan.tasks.gan import make_task
  return run(config, workdir, make_task, evaluators=evaluation.training_evaluators(config))


if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/gan",
              os.path.join(os.path.dirname(__file__), "configs", "gan.py"))
