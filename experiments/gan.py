"""Trains a GAN of the family: `python -m experiments.gan --config experiments/configs/gan.py:PRESET [--workdir DIR] [--config.FIELD=VALUE ...]`.

Presets: dcgan, lsgan, wgan_gp, hinge_sn, dcgan_diffaug; class-conditional
cgan_projection and acgan; the SNGAN ResNet sngan and sngan_projection;
cluster_projection, self-conditioned on k-means clusters of unlabelled images
(see experiments/configs/gan.py). Rerunning with the same --workdir resumes from
its latest checkpoint.
"""

import os

from experiments import common
from jaxgan.runs import train as train_and_evaluate

__all__ = ["train_and_evaluate"]

if __name__ == "__main__":
  common.main(train_and_evaluate, "runs/gan",
              os.path.join(os.path.dirname(__file__), "configs", "gan.py"))
