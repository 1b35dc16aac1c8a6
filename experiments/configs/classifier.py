"""CNN classifier on MNIST (the seeds' small CNN).

Override any field on the command line, e.g.
  python -m experiments.classifier --config.model=lenet5
  python -m experiments.classifier --config.dataset=cifar10 --config.image_size=32 \\
      --config.model=resnet20 --config.optimizer=sgd --config.learning_rate=0.1 \\
      --config.weight_decay=5e-4 --config.augment_crop_padding=4 --config.augment_flip=True

Eval lines carry eval_accuracy (a fraction), eval_loss and the macro-averaged
precision, recall and F1; eval/ holds per-class reports and confusion matrices.
"""

import ml_collections

from experiments.configs.common import base_config


def get_config() -> ml_collections.ConfigDict:
  config = base_config("classifier")  # task, data and run-directory fields (configs/common.py)

  # Augmentation in the input pipeline: random shifts of up to this many
  # pixels (crop of the zero-padded image), and random horizontal flips.
  config.augment_crop_padding = 2  # MNIST digits sit in a 20x20 box: shifts keep them whole
  config.augment_flip = False

  # Training on a class-conditional GAN's samples (the Classification Accuracy
  # Score with generated_fraction 1.0; Ravuri & Vinyals 2019): its run
  # directory, and the share of every batch drawn from it (the rest is real).
  config.generated_data = ml_collections.config_dict.placeholder(str)
  config.generated_fraction = 1.0

  # Model: small_cnn, lenet5, resnet20 or resnet18.
  config.model = "small_cnn"

  # Optimisation: adam or sgd (Nesterov momentum); constant or cosine schedule.
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.momentum = 0.9  # sgd only
  config.weight_decay = 0.0  # decoupled (adamw) or added to the gradient (sgd)
  config.schedule = "cosine"
  config.warmup_steps = 0
  config.num_train_steps = 2000

  # Run directory (classifiers write no samples).
  config.eval_every_steps = 500
  config.best_metric = "eval_accuracy"
  config.best_mode = "max"

  return config
