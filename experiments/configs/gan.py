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

Conditional presets (labelled data; grids show one row per class):

  cgan_projection  Miyato & Koyama 2018 on the DCGAN architecture: projection
                 discriminator, conditional BatchNorm in G, with their
                 objective (hinge loss, spectral normalisation; the hinge_sn
                 optimiser).
  acgan          Odena et al. 2017: the dcgan setup plus an auxiliary
                 classifier on D (cross-entropy on real and fake labels added
                 to both networks' losses, weight 1), conditional BatchNorm in G.
  sngan          Miyato et al. 2018, the CIFAR-10 ResNet (jaxgan/models/sngan.py)
                 at 32x32: z = 128, hinge loss, spectral normalisation,
                 Adam(2e-4, b1 0, b2 0.9), n_critic = 5, batch 64.
  sngan_projection  sngan with the projection discriminator and conditional
                 BatchNorm (Miyato & Koyama 2018's CIFAR-10 model).

  biggan         Brock et al. 2019, class-conditional BigGAN at 32x32
                 (jaxgan/models/biggan.py): hierarchical z = 128 into
                 conditional BatchNorm with a shared class embedding,
                 self-attention at 16x16 in G and D (as PyTorch-StudioGAN's
                 CIFAR-10 model), projection D, spectral normalisation in both
                 networks, hinge loss, orthogonal regularisation of G (beta
                 1e-4), and BigGAN-PyTorch's CIFAR-10 schedule: batch 50, 4 D
                 steps per G step, Adam(2e-4, b1 0, b2 0.999) for both, G
                 average 0.9999. Unconditional with --config.conditional='',
                 self-conditioned with --config.cluster_conditioning=K;
                 --config.image_size=64 is its 64x64 configuration.

  stylegan2      Karras et al. 2020 (StyleGAN2, jaxgan/models/stylegan2.py),
                 config F's structure at 32x32: z = w = 512, an 8-layer
                 mapping network (learning rate x0.01), style mixing 0.9,
                 modulated/demodulated convolutions with noise inputs, skip
                 generator, residual D with minibatch std, equalized learning
                 rate; the non-saturating loss, lazy R1 (gamma 0.01, the ADA
                 paper's CIFAR-10 value, every 16 steps), lazy path length
                 regularisation (weight 2, every 4 steps), batch 64,
                 Adam(0.0025, b1 0, b2 0.99) with the lazy-regularisation
                 rescaling (lr x c, betas ** c, c = k / (k + 1) for a
                 regulariser every k steps), widths 256 (the ADA code's
                 'auto' width at 32x32) and a G average with a half-life of
                 10k images. Unconditional; --config.conditional=projection
                 is the conditional variant (label embedding into the mapping
                 network, projection D).
  stylegan2_ada  Karras et al. 2020 (ADA): their CIFAR-10 configuration:
                 widths 512, a 2-layer mapping network, no style mixing and no
                 path length regularisation, D's minibatch standard deviation
                 over groups of 32 (config F: 4; a smaller batch is one
                 group), R1 gamma 0.01 every 16 steps, batch 64,
                 Adam(0.0025, b1 0, b2 0.99) rescaled as above, a G average
                 with a half-life of 500k images (the warm-up replaces their
                 ramp), and adaptive augmentation: the 'bgc'
                 pipeline, p adjusted every 4 steps towards r_t = 0.6 at a
                 speed of 500k images from 0 to 1 (jaxgan/gan/ada.py). Their
                 D for CIFAR-10 is the non-residual one; this is the residual
                 D of config F. The paper trains conditional CIFAR-10 with
                 --config.conditional=projection.

Self-conditioned preset (any data, labels unused; samples like an
unconditional GAN, grids show one row per cluster):

  cluster_projection  cgan_projection conditioned on 30 k-means clusters of
                 the training images' pixels instead of labels: the
                 self-conditioning idea of Liu et al. 2020 (Self-Conditioned
                 GAN), with the clusters fitted once before training rather
                 than re-fitted on D's features.

InfoGAN's categorical code (any data, labels unused), on any preset:
--config.conditional=acgan --config.info_codes=K (Chen et al. 2016): G is
conditioned on a code of K equally likely values, D's auxiliary head
predicts it from the fakes (docs/gans.md#infogan); --config.info_continuous=C
adds their continuous codes (C of G's latent coordinates, also predicted).

Every preset keeps the generator's parameter average (ema_decay 0.999) for
samples and evaluation. Any field overrides on the command line.

Small RGB data on a CPU: `dcgan` with --config.batch_size=16 --config.ngf=32
--config.ndf=32 (at equal wall time it reaches 0.22x the preset's FID on
CIFAR-10 photographs, with recall and coverage within 0.07 of the real
images'; batch 16 alone 0.44x; docs/results.md#cifar10-equal-time).
Small grayscale data on a CPU: `cluster_projection` with the same three
fields (on MNIST, 1.34-1.49x the real-vs-real FID in 5 minutes, against
4.6-5.1x for the preset; 1.10-1.11x in 30 minutes, where `hinge_sn`, the
best plain preset, reaches 2.1-2.4x; docs/results.md#mnist-equal-time-small).
"""

import ml_collections

from experiments.configs.common import base_config


def base() -> ml_collections.ConfigDict:
  """Every field with its default (the dcgan preset)."""
  config = base_config("gan")  # task, data and run-directory fields (configs/common.py)
  config.preset = "dcgan"  # the preset the config was made from (get_config's argument)

  # Model: "dcgan" (image_size picks the architecture: 28 is the seeds'
  # MNIST DCGAN, 4 * 2**k (32, 64, ...) Radford et al.'s), "sngan" (the
  # SNGAN ResNet, image_size 32/48/64; jaxgan/models/sngan.py), "biggan"
  # (image_size 32/64; jaxgan/models/biggan.py) or "stylegan2" (powers of two;
  # jaxgan/models/stylegan2.py).
  config.model = "dcgan"
  # The architecture's own options (keyword arguments of its factory in
  # jaxgan/models/registry.py), e.g. stylegan2's mapping_layers, style_mixing
  # and noise_mode (samples' noise inputs: "random" per sample, the default;
  # "const", one fixed image; "none"): --config.model_options.style_mixing=0.9,
  # or a whole dict for a preset that sets none:
  # --config.model_options="{'mapping_layers': 2}".
  config.model_options = ml_collections.ConfigDict()
  config.latent_dim = 100
  # Widths: Radford's base widths (the 28x28 model's smallest), the SNGAN
  # ResNet's channels, BigGAN's ch, StyleGAN2's channel cap.
  config.ngf = 64
  config.ndf = 64
  # Class-conditional generation on labelled data: "" (unconditional),
  # "projection" (Miyato & Koyama 2018) or "acgan" (Odena et al. 2017); the
  # generator then uses conditional BatchNorm, fakes get uniform labels.
  config.conditional = ""
  config.class_loss_weight = 1.0  # acgan: weight of the auxiliary classification losses
  # Self-conditioning without labels: K >= 2 conditions a `conditional` GAN
  # on K k-means clusters of the training images (pixels) instead of the
  # data's labels (jaxgan/gan/clusters.py); 0 is off.
  config.cluster_conditioning = 0
  # InfoGAN (Chen et al. 2016) without labels: K >= 2 conditions G on a
  # categorical code of K equally likely values (conditional BatchNorm), and
  # D's auxiliary head (conditional="acgan", their Q) predicts it from the
  # fakes; both networks minimise that cross-entropy, weighted by
  # class_loss_weight (their lambda, 1 for discrete codes). Real images get
  # no labels: it works on unlabelled data and samples like an unconditional
  # GAN (grids: one row per code). 0 is off.
  config.info_codes = 0
  # InfoGAN's continuous codes (with info_codes): C >= 1 makes the first C
  # coordinates of G's z codes that D's head (C more outputs, Q's means)
  # predicts from the fakes, Gaussian with unit variance; both networks
  # minimise 0.5 |mean - code|^2 (summed over the codes), weighted by
  # class_loss_weight * info_continuous_weight. 0 is off.
  config.info_continuous = 0
  # The continuous codes' weight, relative to class_loss_weight (lambda).
  config.info_continuous_weight = 1.0
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
  # BigGAN's orthogonal regularisation of G's kernels, beta * sum ||W^T W (.)
  # (1 - I)||_F^2 (jaxgan/gan/penalties.py); 0 disables it.
  config.g_orthogonal_reg = 0.0
  # StyleGAN2's path length regularisation of G (needs model=stylegan2):
  # weight (0 disables it) and lazy interval (scaled by it).
  config.pl_weight = 0.0
  config.pl_every = 4
  # Adaptive discriminator augmentation (Karras et al. 2020; jaxgan/gan/ada.py)
  # on every image D sees: the probability p starts at ada_p and, when
  # ada_target > 0, moves every ada_interval steps towards
  # E[sign D(real)] = ada_target (0.6 in the paper), by batch * interval /
  # (ada_kimg * 1000) per adjustment; ada_target = 0 keeps p fixed (both 0:
  # off). ada_pipeline: "bgc" (blit, geometric, colour), "bg", "b" or "c".
  config.ada_target = 0.0
  config.ada_p = 0.0
  config.ada_pipeline = "bgc"
  config.ada_interval = 4
  config.ada_kimg = 500.0
  # Top-k training (Sinha et al. 2020, "Top-k Training of GANs"): G's
  # adversarial loss keeps only the k fakes D scores as most real, k = B *
  # max(g_topk, g_topk_decay ** epochs), epochs counted in training images
  # seen (continuously). g_topk is their nu (the smallest fraction kept; 1.0
  # is off, 0.5 theirs), g_topk_decay their gamma (0.99 per epoch).
  config.g_topk = 1.0
  config.g_topk_decay = 0.99
  # The LeCam regulariser of D (Tseng et al. 2021, for limited data;
  # jaxgan/gan/penalties.py): lecam_weight * (E relu(D(x) - a_fake)^2 +
  # E relu(a_real - D(G(z)))^2), the anchors a_real and a_fake moving
  # averages (decay lecam_decay per D update, from 0) of D's mean outputs on
  # real and generated images; 0 is off.
  config.lecam_weight = 0.0
  config.lecam_decay = 0.99

  # Optimisation: Adam for each network (separate rates and betas: TTUR).
  config.num_train_steps = 3000  # generator updates
  config.n_critic = 1  # D updates per G update, each on a fresh real batch.
  config.g_learning_rate = 2e-4
  config.d_learning_rate = 2e-4
  config.g_beta1 = 0.5
  config.g_beta2 = 0.999
  config.d_beta1 = 0.5
  config.d_beta2 = 0.999
  # Sample grids (samples/step_*.png) and evaluation use an exponential
  # moving average of the generator (weights and BatchNorm statistics; Yazici
  # et al. 2019; the live generator's grid is samples/live_step_*.png); 0
  # disables it.
  config.ema_decay = 0.999

  # Run directory.
  config.log_every_steps = 50
  config.sample_every_steps = 250
  config.checkpoint_every_steps = 500
  # The objective on eval_split (eval_d_loss, eval_g_loss and its metrics).
  config.eval_every_steps = 1000
  config.num_sample_images = 64
  # FID and KID against eval_split at every evaluation, in the features of a
  # classifier run (python -m experiments.classifier on the same dataset) or
  # "inception[:WEIGHTS]" (the standard FID InceptionV3); None disables them.
  # The checkpoint with the best `best_metric` is kept in best/ (only once
  # that metric is logged).
  config.fid_features = ml_collections.config_dict.placeholder(str)
  config.num_eval_samples = 1000
  config.best_metric = "eval_fid"
  return config


def _adam(config, learning_rate: float, beta1: float, beta2: float) -> None:
  """The same Adam for both networks."""
  config.g_learning_rate = config.d_learning_rate = learning_rate
  config.g_beta1 = config.d_beta1 = beta1
  config.g_beta2 = config.d_beta2 = beta2


def _dcgan(config):
  pass


def _lsgan(config):
  config.gan_loss = "ls"


def _wgan_gp(config):
  config.gan_loss = "wasserstein"
  config.gradient_penalty = 10.0
  config.n_critic = 5
  _adam(config, 1e-4, 0.0, 0.9)


def _hinge_sn(config):
  config.gan_loss = "hinge"
  config.spectral_norm = True


def _dcgan_diffaug(config):
  config.diffaugment = "color,translation,cutout"


def _cgan_projection(config):
  _hinge_sn(config)
  config.conditional = "projection"


def _acgan(config):
  config.conditional = "acgan"


def _cluster_projection(config):
  _cgan_projection(config)
  config.cluster_conditioning = 30


def _sngan(config):
  config.model = "sngan"
  config.image_size = 32
  config.latent_dim = 128
  config.ngf, config.ndf = 256, 128
  config.gan_loss = "hinge"
  config.spectral_norm = True
  config.n_critic = 5
  config.batch_size = 64
  _adam(config, 2e-4, 0.0, 0.9)


def _sngan_projection(config):
  _sngan(config)
  config.conditional = "projection"


def _biggan(config):
  config.model = "biggan"
  config.image_size = 32
  config.latent_dim = 128
  config.ngf = config.ndf = 64  # G_ch, D_ch
  config.conditional = "projection"
  config.gan_loss = "hinge"
  config.spectral_norm = True
  config.g_orthogonal_reg = 1e-4
  config.n_critic = 4
  config.batch_size = 50
  config.ema_decay = 0.9999
  _adam(config, 2e-4, 0.0, 0.999)


def _lazy_adam(config, learning_rate: float, beta1: float, beta2: float, g_every: int,
               d_every: int) -> None:
  """Adam for both networks with StyleGAN2's lazy-regularisation rescaling:
  a network regularised every k steps gets lr x c and betas ** c, c = k / (k + 1)."""
  for net, every in (("g", g_every), ("d", d_every)):
    c = every / (every + 1)
    config[f"{net}_learning_rate"] = learning_rate * c
    config[f"{net}_beta1"], config[f"{net}_beta2"] = beta1 ** c, beta2 ** c


def _half_life_decay(batch: int, kimg: float) -> float:
  """The G average's decay per step for a half-life of kimg thousand images."""
  return 0.5 ** (batch / (kimg * 1000.0))


def _stylegan2(config):
  config.model = "stylegan2"
  config.image_size = 32
  config.latent_dim = 512
  config.ngf = config.ndf = 256
  config.model_options = ml_collections.ConfigDict({"mapping_layers": 8,
                                                     "style_mixing": 0.9,
                                                     "noise_mode": "random"})
  config.gan_loss = "ns"
  config.r1_gamma, config.r1_every = 0.01, 16
  config.pl_weight, config.pl_every = 2.0, 4
  config.batch_size = 64
  config.ema_decay = _half_life_decay(config.batch_size, 10)
  _lazy_adam(config, 0.0025, 0.0, 0.99, g_every=config.pl_every, d_every=config.r1_every)


def _stylegan2_ada(config):
  _stylegan2(config)
  config.ngf = config.ndf = 512
  config.model_options = ml_collections.ConfigDict({"mapping_layers": 2, "style_mixing": 0.0,
                                                     "mbstd_group": 32,
                                                     "noise_mode": "random"})
  config.pl_weight = 0.0
  config.ema_decay = _half_life_decay(config.batch_size, 500)
  config.ada_target, config.ada_p = 0.6, 0.0
  config.ada_pipeline, config.ada_interval, config.ada_kimg = "bgc", 4, 500.0
  # Adam stays rescaled as _stylegan2 set it: their training loop rescales G's
  # for its (here empty) regularisation phase every 4 steps too.


PRESETS = {"dcgan": _dcgan, "lsgan": _lsgan, "wgan_gp": _wgan_gp, "hinge_sn": _hinge_sn,
           "dcgan_diffaug": _dcgan_diffaug, "cgan_projection": _cgan_projection,
           "acgan": _acgan, "sngan": _sngan, "sngan_projection": _sngan_projection,
           "cluster_projection": _cluster_projection, "biggan": _biggan,
           "stylegan2": _stylegan2, "stylegan2_ada": _stylegan2_ada}


def get_config(preset: str = "dcgan") -> ml_collections.ConfigDict:
  preset = preset or "dcgan"
  if preset not in PRESETS:
    raise ValueError(f"Unknown GAN preset {preset!r}; use one of {', '.join(PRESETS)} "
                     "(experiments/configs/gan.py:PRESET).")
  config = base()
  config.preset = preset
  PRESETS[preset](config)
  return config
