"""DCGAN on MNIST (the seeds' 28x28 architecture): the `dcgan` preset of
experiments/configs/gan.py, where every field is documented.

Override any field on the command line, e.g.
  python -m experiments.dcgan --config.dataset=digits --config.num_train_steps=500

`image_size` picks the architecture: 28 is the seeds' MNIST DCGAN, 32 or 64
(any 4 * 2**k) the Radford et al. DCGAN. Images are resized to it.
"""

from experiments.configs import gan


def get_config():
  return gan.get_config("dcgan")
