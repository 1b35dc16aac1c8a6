"""CNN classifiers, by preset: `experiments/configs/classifier.py[:PRESET]`.

  (none)        the seeds' small CNN on MNIST.
  seed_cifar10  the seeds' CIFAR-10 CNN as they wrote it: three 3x3 valid
                convolutions of 32, 64 and 128 filters, each followed by 2x2
                max-pooling, dense 128, dropout 0.5, softmax; Adam, batch 64,
                50 epochs (of CIFAR-10's 5,085-image slice here: 4,000 steps).
  cifar10       a recipe for small RGB data: the conv-pool `fast_cnn`, SGD
                with Nesterov momentum, warm-up and cosine decay, weight
                decay, padded crops, flips and cutout, label smoothing,
                test-time averaging over flips and 1-pixel shifts.

The CIFAR-10 presets read TFDS's `cifar10` unless told otherwise, e.g. the
official files: --config.dataset=cifar10:PATH (docs/data.md).

Override any field on the command line, e.g.
  python -m experiments.classifier --config.model=lenet5
  python -m experiments.classifier --config.dataset=cifar10 --config.image_size=32 \\
      --config.model=resnet20 --config.optimizer=sgd --config.learning_rate=0.1 \\
      --config.weight_decay=5e-4 --config.augment_crop_padding=4 --config.augment_flip=True

Eval lines carry eval_accuracy (a fraction), eval_loss and the macro-averaged
precision, recall and F1; eval/ holds per-class reports and confusion matrices.
"""

import ml_collections

from experiments.configs.common import base_config, from_preset


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  return from_preset("classifier", PRESETS, preset, _base)


def _base() -> ml_collections.ConfigDict:
  config = base_config("classifier")  # task, data and run-directory fields (configs/common.py)

  # Augmentation in the input pipeline: random shifts of up to this many
  # pixels (crop of the zero-padded image), random horizontal flips, and
  # cutout (a mid-grey square of this side at a random place, clipped at the
  # border; DeVries & Taylor 2017; 0: off).
  config.augment_crop_padding = 2  # MNIST digits sit in a 20x20 box: shifts keep them whole
  config.augment_flip = False
  config.augment_cutout = 0

  # Training on a class-conditional GAN's samples (the Classification Accuracy
  # Score with generated_fraction 1.0; Ravuri & Vinyals 2019): its run
  # directory, and the share of every batch drawn from it (the rest is real).
  config.generated_data = ml_collections.config_dict.placeholder(str)
  config.generated_fraction = 1.0

  # Model: small_cnn, seed_cifar_cnn, lenet5, resnet20, resnet18 or fast_cnn
  # (jaxgan/models/registry.py).
  config.model = "small_cnn"

  # Optimisation: adam or sgd (Nesterov momentum); constant or cosine schedule.
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.momentum = 0.9  # sgd only
  config.weight_decay = 0.0  # decoupled (adamw) or added to the gradient (sgd)
  config.schedule = "cosine"
  config.warmup_steps = 0
  config.label_smoothing = 0.0  # targets (1 - s) one-hot + s / K
  # Evaluate on the mean of each image's and its mirror image's probabilities,
  # and (eval_shift_tta = s > 0) of those moved by (s, s) and (-s, -s) pixels.
  config.eval_flip_tta = False
  config.eval_shift_tta = 0
  config.num_train_steps = 2000

  # Run directory (classifiers write no samples).
  config.eval_every_steps = 500
  config.best_metric = "eval_accuracy"
  config.best_mode = "max"

  return config


def _mnist(config):
  pass


def _seed_cifar10(config):
  config.dataset, config.image_size, config.model = "cifar10", 32, "seed_cifar_cnn"
  config.augment_crop_padding = 0  # the seeds trained without augmentation
  config.batch_size = 64
  config.num_train_steps = 4000  # ~50 epochs of 5,085 images (63 epochs of 4,085)
  config.schedule = "constant"  # Keras's Adam: 1e-3, constant
  config.eval_every_steps = 1000


def _cifar10(config):
  # fast_cnn: the conv-pool network of the fastest CIFAR-10 recipes; on
  # train[:3085] -> train[3085:4085] it led ResNet-20 at every evaluation and
  # ended ahead (0.768 vs 0.759 after 4,000 steps) at 0.67x its step time on
  # a 2-core CPU. ResNet-20, the recipe until 2026-12-06:
  # --config.model=resnet20 --config.num_train_steps=4000 (docs/results.md).
  config.dataset, config.image_size, config.model = "cifar10", 32, "fast_cnn"
  config.augment_crop_padding, config.augment_flip = 4, True
  config.optimizer, config.learning_rate, config.momentum = "sgd", 0.1, 0.9
  config.weight_decay = 5e-4
  config.warmup_steps = 200
  config.num_train_steps = 3000  # ~94 epochs of 4,085 images: 18 minutes on a 2-core CPU
  config.label_smoothing = 0.1
  # Cutout 16 (DeVries & Taylor 2017's CIFAR-10 value) and the 1-pixel shifts
  # at evaluation: each gained ~1.5 points on train[:3085] -> train[3085:4085].
  config.augment_cutout = 16
  config.eval_flip_tta = True
  config.eval_shift_tta = 1
  config.eval_every_steps = 1000


PRESETS = {"": _mnist, "seed_cifar10": _seed_cifar10, "cifar10": _cifar10}
