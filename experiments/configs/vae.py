"""VAEs, by preset: `experiments/configs/vae.py[:PRESET]`.

  (none)   MNIST: convolutional, dynamically binarized, Bernoulli likelihood.
  cifar10  RGB photographs at 32x32: the ResNet VAE (an 8x8x8 spatial
           latent) with an autoregressive head (PixelVAE: each pixel given z
           and the pixels before it, 4 rows up), the channel-coupled
           discretized logistic (green given red, blue given both), Adam with
           cosine decay, 2,400 steps of 128 (under an hour on a 2-core CPU),
           -log p(x) with 100 importance samples. model='resnet' is the same
           VAE with a factorised decoder. Reads TFDS's `cifar10` unless told
           otherwise, e.g. the official files: --config.dataset=cifar10:PATH
           (docs/data.md).

Override any field on the command line, e.g.
  python -m experiments.vae --config.model=mlp --config.latent_dim=100
  python -m experiments.vae --config.dataset=cifar10 --config.image_size=32 \\
      --config.likelihood=logistic

Eval lines report nats per image (eval_neg_elbo, eval_rec_nll, eval_kl and
eval_nll, the importance-weighted bound with eval_nll_k samples); bits per
dimension too for the discretized likelihoods.
"""

import ml_collections

from experiments.configs.common import base_config, from_preset


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  return from_preset("VAE", PRESETS, preset, _base)


def _base() -> ml_collections.ConfigDict:
  config = base_config("vae")  # task, data and run-directory fields (configs/common.py)

  # Model: 'conv' (4x4 stride-2 convolutions down to 7x7 or 4x4: 28x28, 14x14
  # or 4 * 2**k images), 'mlp' (the seeds' 784-256-256-z), 'resnet' (residual
  # blocks around a spatial latent at a quarter of the side: latent_dim is
  # (side / 4)**2 x channels, e.g. 512 = 8x8x8 at 32x32) or 'resnet_pixel'
  # (the same with an autoregressive head: masked convolutions over the
  # image, p(x|z) = prod_i p(x_i | z, x_<i); samples take a pass per pixel).
  config.model = "conv"
  config.latent_dim = 32
  config.base_features = 32  # conv widths: base, 2*base, ... (capped at 8*base)
  # The model's own keyword options (its factory in jaxgan/models/vae.py), as
  # a whole dict: for 'resnet_pixel' the head's context, head_kernel // 2 +
  # head_blocks rows above each pixel (defaults 5 and 2: 4 rows), e.g.
  # --config.model_options="{'head_blocks': 0}" for 2 rows.
  config.model_options = ml_collections.ConfigDict()

  # Likelihood p(x|z): 'bernoulli' (binary pixels; binarization 'dynamic' draws
  # x ~ Bernoulli(intensity) for every batch, 'threshold' uses intensity > 0.5,
  # 'none' keeps intensities, a cross-entropy rather than a likelihood), or the
  # 8-bit discretized 'gaussian' / 'logistic' for greyscale or RGB (per-pixel
  # mean and log-scale; bits per dimension comparable with published figures),
  # or 'logistic_ar': the logistic with each channel's mean moved linearly by
  # the earlier channels' values (PixelCNN++'s coupling: p(r) p(g|r) p(b|r,g)),
  # or 'logistic_mix': PixelCNN++'s mixture of 10 such coupled logistics per
  # pixel (jaxgan/likelihoods.py, one registry entry each).
  config.likelihood = "bernoulli"
  config.binarization = "dynamic"
  config.beta = 1.0  # beta-VAE weight on the KL term
  config.kl_warmup_steps = 0  # ramp the KL weight from 0 to beta over these steps
  # Free bits (Kingma et al. 2016): each latent dimension's KL, averaged over
  # the batch, counts as at least this many nats in the training loss, so
  # dimensions under it are not pushed to the prior (against posterior
  # collapse); 0 is off. Evaluation always reports the true KL and bounds.
  config.free_bits = 0.0

  # Optimisation.
  config.num_train_steps = 20_000
  config.learning_rate = 1e-3  # Adam
  config.schedule = "constant"  # or 'cosine': decay to 0 over num_train_steps

  # Evaluation: -log p(x) by importance sampling with this many samples per image.
  config.num_importance_samples = 1000
  config.eval_every_steps = 5000

  # Run directory.
  config.best_metric = "eval_nll"  # the checkpoint with the best held-out -log p(x), in best/
  config.best_mode = "min"
  config.num_sample_images = 64

  return config


def _mnist(config):
  pass


def _cifar10(config):
  config.dataset, config.image_size = "cifar10", 32
  config.model, config.latent_dim, config.base_features = "resnet_pixel", 512, 32
  config.likelihood = "logistic_ar"
  config.schedule = "cosine"
  config.num_train_steps = 2400  # ~75 epochs of 4,085 images: ~51 minutes on a 2-core CPU
  config.eval_every_steps = 2400  # one evaluation (k = 100: ~5 minutes), at the end
  config.num_importance_samples = 100


PRESETS = {"": _mnist, "cifar10": _cifar10}
