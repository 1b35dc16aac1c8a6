"""Super-resolution on MNIST: x4 (7x7 -> 28x28) by default.

  python -m experiments.superres --config.scale=2        # 14x14 -> 28x28
  python -m experiments.superres --config.dataset=cifar10 --config.image_size=32

Inputs are area down-sampled from the pipeline's images on the device;
eval_psnr / eval_ssim are the network's, eval_psnr_bicubic /
eval_ssim_bicubic bicubic up-sampling's, on eval_split (images in [0, 1]).
"""

import ml_collections

from experiments.configs.common import base_config


def get_config() -> ml_collections.ConfigDict:
  config = base_config("superres")  # task, data and run-directory fields (configs/common.py)

  config.scale = 4  # 2, 4 or 8; must divide image_size
  # The SRResNet-style network (jaxgan/models/superres.py): channels and
  # residual blocks.
  config.features = 64
  config.num_blocks = 4

  config.loss = "l1"  # pixel loss: l1 | mse
  # Feature ("perceptual") loss: a classifier run's penultimate features of
  # SR vs HR images, weighted by perceptual_weight (0 disables).
  config.perceptual_classifier = ml_collections.config_dict.placeholder(str)
  config.perceptual_weight = 0.0
  # Adversarial loss (SRGAN): the generator loss of gan_loss against the
  # discriminator of a GAN architecture (jaxgan/models/registry.py) trained
  # alongside (Adam(d_learning_rate, 0.5)); 0 disables.
  config.adversarial_weight = 0.0
  config.discriminator = "dcgan"
  config.gan_loss = "ns"
  config.d_learning_rate = 1e-4
  # A classifier run (experiments.classifier on the same dataset): its
  # accuracy on SR, bicubic and original eval images at every evaluation.
  config.sr_classifier = ml_collections.config_dict.placeholder(str)

  config.batch_size = 64
  config.num_train_steps = 5000
  config.learning_rate = 1e-3  # Adam, constant

  config.best_metric = "eval_psnr"
  config.best_mode = "max"
  return config
