"""The GAN family's configs, by preset:

  python -m experiments.gan --config experiments/configs/gan.py:PRESET [--config.FIELD=VALUE ...]

Presets (each from its paper, on the DCGAN architectures: the seeds' 28x28
model for image_size 28, Radford et al.'s for 4 * 2**k):

  dcgan          Radford et al. 2016: non-saturating loss, Adam(2e-4, b1 0.5,
                 b2 0.999) for both networks, one D step per G step. Exactly
                 what `python -m experiments.dcgan` runs.
  lsgan          Mao et al. 2017 (LSGAN): least-squares loss with targets
                 a=0, b=1, c=1; otherwise the DCGAN setup their experiments
                 build on (Adam(2e-4, b1 0.5)).
  wgan_gp        Gulrajani et al. 2017 (WGAN-GP), Algorithm 1's defaults:
                 Wasserstein critic, lambda = 10, n_critic = 5,
                 Adam(1e-4, b1 0, b2 0.9) for both networks.
  hinge_sn       Miyato et al. 2018 (SNGAN): hinge loss, spectral
                 normalisation of every D layer, their Table 1 setting C
                 (Adam(2e-4, b1 0.5, b2 0.999), n_dis = 1).
  dcgan_diffaug  dcgan + DiffAugment (Zhao et al. 2020) with their full
                 policy "color,translation,cutout" on real and fake images.

Every preset keeps the generator's parameter average (ema_decay 0.999) for
samples and evaluation. Any field overrides on the command line.
"""

import ml_collections

from experiments.configs.data import data_config


def base() -> ml_collections.ConfigDict:
  """Every field with its default (the dcgan preset)."""
  config = data_config()  # dataset, splits, image_size, ... (configs/data.py)
  config.preset = "dcgan"

  # Model. image_size picks the architecture: 28 is the seeds' MNIST DCGAN,
  # 4 * 2**k (32, 64, ...) Radford et al.'s.
  config.latent_dim = 100
  config.ngf = 64  # Radford architecture widths (image_size 32/64).
  config.ndf = 64
  # The discriminator's normalisation (Radford architecture; the 28x28 model
  # has none): "batch", "layer" (per image) or "none". None chooses what the
  # papers do: "layer" with a gradient penalty (WGAN-GP), "none" with
  # spectral normalisation (SNGAN), "batch" otherwise (DCGAN). "batch" with
  # a gradient penalty is refused (the penalty is per image).
  config.d_normalization = ml_collections.config_dict.placeholder(str)
  config.spectral_norm = False  # Spectral normalisation of every D layer.
  # "bfloat16": activations and matmuls in bf16; parameters, optimizer
  # states, BatchNorm statistics and losses in float32.
  config.compute_dtype = "float32"

  # Objective and regularisers (jaxgan/gan/).
  config.gan_loss = "ns"  # ns | saturating | ls | hinge | wasserstein
  config.gradient_penalty = 0.0  # WGAN-GP's lambda; 0 disables.
  config.r1_gamma = 0.0  # R1 on real images, gamma / 2 E|grad D(x)|^2; 0 disables.
  config.r1_every = 1  # Lazy R1: every r1_every steps (scaled by r1_every).
  config.diffaugment = ""  # DiffAugment policy: comma-separated color,translation,cutout.

  # Optimisation: Adam for each network (separate rates and betas: TTUR).
  config.batch_size = 128  # Global, over all devices and processes.
  config.num_train_steps = 3000
  config.n_critic = 1  # D updates per G update, each on a fresh real batch.
  config.g_learning_rate = 2e-4
  config.d_learning_rate = 2e-4
  config.g_beta1 = 0.5
  config.g_beta2 = 0.999
  config.d_beta1 = 0.5
  config.d_beta2 = 0.999
  config.seed = 0
  # Sample grids and evaluation use an exponential moving average of the
  # generator (weights and BatchNorm statistics; Yazici et al. 2019); 0
  # disables it.
  config.ema_decay = 0.999

  # Run directory.
  config.log_every_steps = 50
  config.sample_every_steps = 250
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  config.eval_every_steps = 1000  # The objective on eval_split; 0 disables.
  config.num_sample_images = 64
  # FID and KID against eval_split at every evaluation, in the features of a
  # classifier run (python -m experiments.classifier on the same dataset) or
  # "inception[:WEIGHTS]" (the standard FID InceptionV3); None disables them.
  # The checkpoint with the best `best_metric` is kept in best/ (only once
  # that metric is logged).
  config.fid_features = ml_collections.config_dict.placeholder(str)
  config.num_eval_samples = 1000
  config.best_metric = "eval_fid"
  config.best_mode = "min"
  return config


def _dcgan(config):
  pass


def _lsgan(config):
  config.gan_loss = "ls"


def _wgan_gp(config):
  config.gan_loss = "wasserstein"
  config.gradient_penalty = 10.0
  config.n_critic = 5
  config.g_learning_rate = config.d_learning_rate = 1e-4
  config.g_beta1 = config.d_beta1 = 0.0
  config.g_beta2 = config.d_beta2 = 0.9


def _hinge_sn(config):
  config.gan_loss = "hinge"
  config.spectral_norm = True


def _dcgan_diffaug(config):
  config.diffaugment = "color,translation,cutout"


PRESETS = {"dcgan": _dcgan, "lsgan": _lsgan, "wgan_gp": _wgan_gp, "hinge_sn": _hinge_sn,
           "dcgan_diffaug": _dcgan_diffaug}


def get_config(preset: str = "dcgan") -> ml_collections.ConfigDict:
  preset = preset or "dcgan"
  if preset not in PRESETS:
    raise ValueError(f"Unknown GAN preset {preset!r}; use one of {', '.join(PRESETS)} "
                     "(experiments/configs/gan.py:PRESET).")
  config = base()
  config.preset = preset
  PRESETS[preset](config)
  return config
