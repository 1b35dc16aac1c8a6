"""VAE on MNIST: convolutional, dynamically binarized, Bernoulli likelihood.

Override any field on the command line, e.g.
  python -m experiments.vae --config.model=mlp --config.latent_dim=100
  python -m experiments.vae --config.dataset=cifar10 --config.image_size=32 \\
      --config.likelihood=logistic

Eval lines report nats per image (eval_neg_elbo, eval_rec_nll, eval_kl and
eval_nll, the importance-weighted bound with eval_nll_k samples); bits per
dimension too for the discretized likelihoods.
"""

import ml_collections

from experiments.configs.common import base_config


def get_config() -> ml_collections.ConfigDict:
  config = base_config("vae")  # task, data and run-directory fields (configs/common.py)

  # Model: 'conv' (4x4 stride-2 convolutions down to 7x7 or 4x4: 28x28, 14x14
  # or 4 * 2**k images) or 'mlp' (the seeds' 784-256-256-z).
  config.model = "conv"
  config.latent_dim = 32
  config.base_features = 32  # conv widths: base, 2*base, ... (capped at 8*base)

  # Likelihood p(x|z): 'bernoulli' (binary pixels; binarization 'dynamic' draws
  # x ~ Bernoulli(intensity) for every batch, 'threshold' uses intensity > 0.5,
  # 'none' keeps intensities, a cross-entropy rather than a likelihood), or the
  # 8-bit discretized 'gaussian' / 'logistic' for greyscale or RGB (per-pixel
  # mean and log-scale; bits per dimension comparable with published figures).
  config.likelihood = "bernoulli"
  config.binarization = "dynamic"
  config.beta = 1.0  # beta-VAE weight on the KL term
  config.kl_warmup_steps = 0  # ramp the KL weight from 0 to beta over these steps

  # Optimisation.
  config.num_train_steps = 20_000
  config.learning_rate = 1e-3  # Adam

  # Evaluation: -log p(x) by importance sampling with this many samples per image.
  config.num_importance_samples = 1000
  config.eval_every_steps = 5000

  # Run directory.
  config.best_metric = "eval_nll"  # the checkpoint with the best held-out -log p(x), in best/
  config.best_mode = "min"
  config.num_sample_images = 64

  return config
