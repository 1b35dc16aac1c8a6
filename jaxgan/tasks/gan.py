"""The GAN family's train state and step functions.

One task covers every member; the config chooses by name (see
experiments/configs/gan.py for the presets):
- `gan_loss`: the objective (`jaxgan.gan.objectives`: ns, saturating, ls,
  hinge, wasserstein), used by both the train and the eval step;
- `gradient_penalty` (WGAN-GP's lambda) and `r1_gamma` / `r1_every` (R1,
  optionally lazy), composable with any objective (`jaxgan.gan.penalties`);
- `spectral_norm`: every discriminator layer spectrally normalised;
- `diffaugment`: DiffAugment's policy, applied to every image D sees;
- `n_critic`: discriminator updates per generator update, each on a fresh
  real batch; `g_learning_rate`, `d_learning_rate` and each network's Adam
  betas (TTUR);
- `g_orthogonal_reg`: BigGAN's orthogonal regularisation of G's kernels;
- `pl_weight` / `pl_every`: StyleGAN2's path length regularisation of G,
  lazy (every pl_every steps, scaled by pl_every), on half a batch;
- `ada_target`, `ada_p`, ...: adaptive discriminator augmentation
  (`jaxgan.gan.ada`), its probability p kept in the train state;
- `lecam_weight` / `lecam_decay`: the LeCam regulariser of D (Tseng et al.
  2021), its two anchors (moving averages of D's outputs) in the train state;
- `model`: the architecture (`jaxgan.models.registry.GAN_ARCHITECTURES`: dcgan, sngan,
  biggan, stylegan2), with `model_options` for the architecture's own settings;
- `conditional`: "" or, on labelled data, "projection" / "acgan" (real
  images with their labels, fakes with uniform labels; ACGAN adds its class
  losses, weighted by `class_loss_weight`, to both networks' losses);
- `cluster_conditioning = K`: a `conditional` GAN on K k-means clusters of
  the training images instead of labels (`jaxgan.gan.clusters`; works on
  unlabelled data, and samples like an unconditional GAN);
- `info_codes = K` (with `conditional = "acgan"`): InfoGAN's categorical
  code (Chen et al. 2016): G is conditioned on a code of K equally likely
  values, D's auxiliary head (their Q) predicts it from the fakes only, and
  both networks minimise that cross-entropy (weighted by
  `class_loss_weight`, their lambda); real images carry no labels, so it
  works on unlabelled data and samples like an unconditional GAN. With
  `info_continuous = C`, also their continuous codes: the first C
  coordinates of G's z, which the head's C more outputs (Q's means)
  predict, Gaussian with unit variance (weighted further by
  `info_continuous_weight`).

One step: `n_critic - 1` discriminator updates, each on its own real batch
and its own fakes; then one more on the last real batch and fakes from a
generator forward pass whose VJP is kept; then the generator update through
the *updated* discriminator, back-propagated into G with that VJP. With
`n_critic = 1` and no penalty or augmentation this is the DCGAN step of
Radford et al. (the `dcgan` preset).
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import flat_random, provenance
from jaxgan.gan import clusters as clustering
from jaxgan.gan import ada, diffaugment, objectives, penalties
from jaxgan.models.conditioning import check_conditioning
from jaxgan.models.registry import GAN_ARCHITECTURES, make_gan
from jaxgan.models.stylegan2 import path_length_penalty
from jaxgan.tasks.base import apply_gradients, apply_model, per_example_means

# Eval latents come from fold_in(key, _EVAL_STREAM), apart from the per-step
# keys fold_in(key, step) (steps stay far below 2**32 - 1).
_EVAL_STREAM = 2**32 - 1
# A step's keys beyond the DCGAN step's four (penalties, augmentation, extra
# critic updates) come from fold_in(step key, _AUX_STREAM), so the DCGAN
# step's own draws are unchanged.
_AUX_STREAM = 2**31
# Fake labels of a conditional GAN come from fold_in(aux key, _LABEL_STREAM + i).
_LABEL_STREAM = 2**29
# The generator's own randomness in training (StyleGAN2's noise inputs and
# style mixing) from fold_in(aux key, _NOISE_STREAM + i); the path length
# regulariser's from fold_in(aux key, _PL_STREAM).
_NOISE_STREAM = 2**28
_PL_STREAM = 2**27


@flax.struct.dataclass
class NetState:
  """One network's variables and optimizer state."""
  params: Any
  batch_stats: Any  # BatchNorm statistics, spectral-norm vectors (or {})
  opt_state: Any


@flax.struct.dataclass
class GANState:
  step: jax.Array  # int32 scalar: number of completed steps
  g: NetState
  d: NetState
  key: jax.Array  # raw uint32 PRNG key; step keys are fold_in(key, step)
  # Exponential moving average of the generator's variables (`ema_decay`):
  # {"params": ..., "batch_stats": ...}, the running BatchNorm statistics
  # averaged like the weights, so the averaged generator is sampled with
  # statistics of (nearly) the same weights. Equal to the live ones when
  # ema_decay is 0. Sample grids and evaluation use it.
  g_ema: Any
  # cluster_conditioning: {"centroids": [K, pixels], "log_prior": [K]}
  # (`jaxgan.gan.clusters.fit`), fixed for the run; None otherwise.
  clusters: Any = None
  # ADA: {"p": the augmentation probability, "signs": the sum of sign(D(real))
  # and "count": the real images, since p was last adjusted}; None without ADA.
  ada: Any = None
  # Path length regularisation: the running mean path length; None without it.
  pl_mean: Any = None
  # LeCam: {"real": ..., "fake": ...}, the moving averages of D's mean output
  # on real and generated images (`jaxgan.gan.penalties.lecam_anchors`); None
  # without it.
  lecam: Any = None


def compute_dtype(config):
  """config.compute_dtype: "float32" (default) or "bfloat16" (activations and
  matmuls; parameters, optimizer states, BatchNorm statistics and losses stay
  float32)."""
  name = config.compute_dtype
  if name not in ("float32", "bfloat16"):
    raise ValueError(f"config.compute_dtype must be 'float32' or 'bfloat16', got {name!r}.")
  return jnp.dtype(name)


# The fields the GAN family added to the DCGAN config (experiments/configs/gan.py).
FAMILY_FIELDS = ("gan_loss", "gradient_penalty", "r1_gamma", "r1_every", "spectral_norm",
                 "d_normalization", "diffaugment", "n_critic", "g_learning_rate",
                 "d_learning_rate", "g_beta1", "g_beta2", "d_beta1", "d_beta2")




def every_nth_step(step, every: int, active, inactive):
  """`active()` on the steps divisible by `every` and `inactive()` (the same
  structure: zeros) on the others: the lazy regularisers' schedule.

  On CPU both run and the result is selected per leaf: XLA:CPU runs a
  convolution's gradients inside a conditional up to ~100x slower than
  outside one (jax-ml/jax#12868; here StyleGAN2's path length gradient at
  width 64 took 8.2 s inside `lax.cond` and 0.18 s outside), so computing a
  lazy regulariser every step costs far less there than skipping it. Other
  platforms skip it with `lax.cond`. Either way the result is the same."""
  if every == 1:
    return active()
  take = step % every == 0

  def select():
    return jax.tree.map(lambda a, b: jnp.where(take, a, b), active(), inactive())

  return jax.lax.platform_dependent(cpu=select,
                                    default=lambda: jax.lax.cond(take, active, inactive))


def pixel_spread(images: jax.Array) -> jax.Array:
  """How much a batch of images [B, H, W, C] differs between its images: the
  standard deviation over the batch at each pixel and channel, averaged over
  them (float32). Logged for the real and the fake batch of every step
  (`pixel_std_real`, `pixel_std_fake`): a generator that collapses to one
  image has a fake spread near 0 while the real batch's stays, which the
  losses alone do not show."""
  x = images.astype(jnp.float32).reshape(images.shape[0], -1)
  return jnp.mean(jnp.std(x, axis=0))


def _check(ok: bool, message: str) -> None:
  if not ok:
    raise ValueError(message)


class GANTask:
  """A GAN of the family: an architecture of `GAN_ARCHITECTURES` (the DCGANs,
  the SNGAN ResNet, BigGAN, StyleGAN2; jaxgan/models/registry.py), unconditional or
  class-conditional (`conditional`: "projection" or "acgan"; labels from the
  data, fake labels uniform), or self-conditioned on clusters of the images
  (`cluster_conditioning`; `clusters` from `jaxgan.gan.clusters.fit`, which
  `make_task` runs) or on InfoGAN's codes (`info_codes`).

  Outside code uses it through `jaxgan.gan.sampler.Sampler` (sampling,
  discriminating, the objective). `num_classes` is the number of classes a
  caller passes labels for (0 when
  unconditional or self-conditioned); `latent_dim` the latent callers draw
  for `sample` (one more than config.latent_dim when self-conditioned: that
  coordinate picks the cluster or code)."""

  def __init__(self, config, image_shape: tuple[int, int, int], num_classes: int = 0,
               clusters: dict | None = None, num_train_examples: int = 0):
    missing = [f for f in FAMILY_FIELDS if f not in config]
    _check(not missing, f"The GAN config lacks {', '.join(missing)}: it predates the GAN "
           "family (runs made before it cannot be resumed or evaluated by this version; "
           "their generator average also lacks BatchNorm statistics). Start from "
           "experiments/configs/gan.py:PRESET.")
    self.config = config
    self.image_shape = tuple(image_shape)
    option = lambda name: provenance.added_field(config, name)  # Older runs lack them.
    self.conditional = option("conditional")
    self.num_clusters = option("cluster_conditioning")
    self.num_codes = option("info_codes")
    _check(isinstance(self.num_codes, int) and (self.num_codes == 0 or self.num_codes >= 2),
           f"config.info_codes must be 0 (off) or InfoGAN's number of code values >= 2, got "
           f"{self.num_codes!r}.")
    _check(not self.num_codes or self.conditional == "acgan",
           "config.info_codes (InfoGAN's categorical code) is predicted by D's auxiliary head: "
           "set --config.conditional=acgan.")
    self.num_continuous = option("info_continuous")
    self.continuous_weight = float(option("info_continuous_weight"))
    _check(isinstance(self.num_continuous, int) and
           0 <= self.num_continuous <= config.latent_dim and self.continuous_weight >= 0,
           f"config.info_continuous (InfoGAN's continuous codes: that many of G's latent "
           f"coordinates) must be an integer in [0, latent_dim={config.latent_dim}] and "
           f"config.info_continuous_weight >= 0; got {self.num_continuous!r}, "
           f"{self.continuous_weight}.")
    _check(not self.num_continuous or self.num_codes,
           "config.info_continuous adds InfoGAN's continuous codes to its categorical one: set "
           "--config.info_codes=K too (with --config.conditional=acgan).")
    _check(not (self.num_codes and self.num_clusters),
           "config.info_codes and config.cluster_conditioning both choose what G is "
           "conditioned on; use one (0 turns either off).")
    _check(isinstance(self.num_clusters, int) and (self.num_clusters == 0 or
                                                   self.num_clusters >= 2),
           f"config.cluster_conditioning must be 0 (off) or a number of clusters >= 2, got "
           f"{self.num_clusters!r}.")
    _check(not self.num_clusters or self.conditional,
           "config.cluster_conditioning conditions a class-conditional GAN on clusters: set "
           "--config.conditional=projection (or acgan), or start from the "
           "cluster_projection preset.")
    _check(not self.num_clusters or clusters is not None,
           "A self-conditioned GAN needs its clusters: build the task with "
           "jaxgan.tasks.gan.make_task(config, data).")
    self.clusters = clusters
    self.self_conditioned = bool(self.num_clusters or self.num_codes)
    check_conditioning(self.num_clusters or self.num_codes or num_classes, self.conditional)
    # Classes the generator is conditioned on (0: unconditional), and those
    # a caller passes labels for (none when they are clusters or codes).
    self.model_classes = ((self.num_clusters or self.num_codes or num_classes)
                          if self.conditional else 0)
    self.num_classes = 0 if self.self_conditioned else self.model_classes
    self.class_loss_weight = float(option("class_loss_weight"))
    model = option("model")
    _check(model in GAN_ARCHITECTURES, f"Unknown config.model {model!r}; use one of "
           f"{', '.join(GAN_ARCHITECTURES)}.")
    self.objective = objectives.get(config.gan_loss)
    self.augment_policy = diffaugment.parse_policy(config.diffaugment)
    self.n_critic = config.n_critic
    self.gp_weight = float(config.gradient_penalty)
    self.r1_gamma, self.r1_every = float(config.r1_gamma), config.r1_every
    self.ema_decay = float(config.ema_decay)
    self.orthogonal_weight = float(option("g_orthogonal_reg"))
    self.pl_weight, self.pl_every = float(option("pl_weight")), option("pl_every")
    self.ada_target, self.ada_p = float(option("ada_target")), float(option("ada_p"))
    self.ada_pipeline = ada.check_pipeline(option("ada_pipeline"))
    self.ada_interval, self.ada_kimg = option("ada_interval"), float(option("ada_kimg"))
    self.ada_on = self.ada_target > 0 or self.ada_p > 0
    self.topk, self.topk_decay = float(option("g_topk")), float(option("g_topk_decay"))
    self.lecam_weight = float(option("lecam_weight"))
    self.lecam_decay = float(option("lecam_decay"))
    _check(self.lecam_weight >= 0 and 0.0 <= self.lecam_decay < 1.0,
           f"config.lecam_weight (LeCam's lambda; 0 is off) must be >= 0 and "
           f"config.lecam_decay (its anchors' moving-average decay) in [0, 1); got "
           f"{self.lecam_weight}, {self.lecam_decay}.")
    self.epoch_images = num_train_examples
    _check(0.0 < self.topk <= 1.0 and 0.0 < self.topk_decay <= 1.0,
           f"config.g_topk (the smallest fraction of fakes top-k training keeps; 1.0 is off) "
           f"and config.g_topk_decay must be in (0, 1]; got {self.topk}, {self.topk_decay}.")
    _check(self.topk == 1.0 or num_train_examples > 0,
           "Top-k training (config.g_topk < 1) counts epochs: build the task with "
           "jaxgan.tasks.gan.make_task(config, data), which passes the training split's size.")
    _check(isinstance(self.pl_every, int) and self.pl_every >= 1 and self.pl_weight >= 0,
           f"config.pl_every must be an integer >= 1 and config.pl_weight >= 0 (0 disables "
           f"it); got {self.pl_every!r}, {self.pl_weight}.")
    _check(0.0 <= self.ada_p <= 1.0 and 0.0 <= self.ada_target < 1.0 and self.ada_kimg > 0
           and isinstance(self.ada_interval, int) and self.ada_interval >= 1,
           "ADA needs config.ada_p in [0, 1], config.ada_target in [0, 1) (0: p fixed at "
           "ada_p; the paper's 0.6), config.ada_interval an integer >= 1 and "
           "config.ada_kimg > 0.")
    _check(not (self.ada_on and config.diffaugment),
           "config.diffaugment and ADA (ada_target / ada_p) both augment D's inputs; use one.")
    _check(isinstance(self.n_critic, int) and self.n_critic >= 1,
           f"config.n_critic must be an integer >= 1, got {self.n_critic!r}.")
    _check(isinstance(self.r1_every, int) and self.r1_every >= 1,
           f"config.r1_every must be an integer >= 1 (1: R1 at every step), got "
           f"{self.r1_every!r}.")
    _check(self.gp_weight >= 0 and self.r1_gamma >= 0 and self.orthogonal_weight >= 0,
           "config.gradient_penalty, config.r1_gamma and config.g_orthogonal_reg must be >= 0 "
           "(0 disables them).")
    _check(isinstance(config.spectral_norm, bool),
           f"config.spectral_norm must be True or False, got {config.spectral_norm!r}.")
    _check(0.0 <= self.ema_decay < 1.0, f"config.ema_decay must be in [0, 1) (0 disables the "
           f"generator average); got {self.ema_decay}.")
    _check(config.gan_loss != "wasserstein" or self.gp_weight > 0 or config.spectral_norm,
           "config.gan_loss='wasserstein' needs a Lipschitz constraint on the critic: set "
           "--config.gradient_penalty=10 (WGAN-GP) or --config.spectral_norm=True.")
    size, _, channels = self.image_shape
    d_normalization = config.d_normalization
    if d_normalization is None and model == "dcgan" and size != 28:  # As the papers do.
      d_normalization = ("layer" if self.gp_weight or self.r1_gamma else
                         "none" if config.spectral_norm else "batch")
    self.generator, self.discriminator = make_gan(
        model, size, channels, ngf=config.ngf, ndf=config.ndf, d_normalization=d_normalization,
        spectral_norm=config.spectral_norm, num_classes=self.model_classes,
        conditional=self.conditional, dtype=compute_dtype(config),
        **dict(option("model_options")))
    if self.num_continuous:  # Q's means of the continuous codes: C more head outputs.
      self.discriminator = self.discriminator.clone(
          num_classes=self.model_classes + self.num_continuous)
    group = getattr(self.discriminator, "mbstd_group", None)
    _check(group is None or config.batch_size % min(group, config.batch_size) == 0,
           f"config.batch_size={config.batch_size} is neither a multiple of the discriminator's "
           f"minibatch-std group ({group}) nor smaller than it: use such a batch, or set "
           f"config.model_options.mbstd_group to a divisor of it.")
    _check(not self.pl_weight or hasattr(self.generator, "synthesize"),
           f"config.pl_weight (path length regularisation) needs a generator with a mapping "
           f"network (model=stylegan2); {model!r} has none: set --config.pl_weight=0.")
    _check(not (self.gp_weight or self.r1_gamma) or
           self.discriminator.normalization != "batch",
           "A gradient penalty (gradient_penalty, r1_gamma) is per image, but this "
           "discriminator uses BatchNorm, which mixes the images of a batch (Gulrajani et al. "
           "2017 drop it for this reason): set --config.d_normalization=layer (or none).")
    self.g_latent_dim = config.latent_dim  # The generator's z.
    # The truncation trick: on w for generators with a mapping network
    # (their `truncation_psi`), else on z.
    self.truncation = "w" if hasattr(self.generator, "truncation_psi") else "latent"
    self.latent_dim = config.latent_dim + (1 if self.self_conditioned else 0)
    self.g_tx = optax.adam(config.g_learning_rate, b1=config.g_beta1, b2=config.g_beta2)
    self.d_tx = optax.adam(config.d_learning_rate, b1=config.d_beta1, b2=config.d_beta2)
    self.batches_per_step = self.n_critic
    self.images_per_step = config.batch_size * self.n_critic
    self.progress_keys = ("d_loss", "g_loss")
    # A fixed latent batch, so successive sample grids show the same z. A
    # conditional grid has one row per class (or cluster) and one z per column.
    n = config.num_sample_images
    self.grid_columns = max(1, round(n ** 0.5)) if self.model_classes else None
    self.sample_z = flat_random.normal(jax.random.PRNGKey(config.seed + 1),
                                       (self.grid_columns or n, self.latent_dim))
    if self.model_classes:
      self.sample_z = jnp.tile(self.sample_z, (self.model_classes, 1))
      self.sample_labels = jnp.repeat(jnp.arange(self.model_classes, dtype=jnp.int32),
                                      self.grid_columns)
    else:
      self.sample_labels = None
    self.sample_jit = jax.jit(self.sample, static_argnames=("average", "psi"))
    self._sample_fixed = jax.jit(lambda state: {
        "samples": self.sample(state, self.sample_z, self.sample_labels),
        "live": self.sample(state, self.sample_z, self.sample_labels, average=False)})

  # -- state ---------------------------------------------------------------
  def init_state(self, key: jax.Array) -> GANState:
    g_key, d_key, state_key = jax.random.split(key, 3)
    z = jnp.zeros((1, self.g_latent_dim))
    x = jnp.zeros((1, *self.image_shape))
    labels = jnp.zeros((1,), jnp.int32) if self.conditional else None
    g_vars = self.generator.init(g_key, z, train=False, **self._label_kw(labels))
    d_vars = self.discriminator.init(d_key, x, train=False, **self._label_kw(labels))

    def net(variables, tx):
      return NetState(params=variables["params"],
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(variables["params"]))

    g = net(g_vars, self.g_tx)
    clusters = None
    if self.num_clusters:
      clusters = {k: jnp.asarray(v, jnp.float32) for k, v in self.clusters.items()}
    zero = jnp.zeros((), jnp.float32)
    augment = ({"p": jnp.asarray(self.ada_p, jnp.float32), "signs": zero, "count": zero}
               if self.ada_on else None)
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=net(d_vars, self.d_tx),
                    key=state_key, g_ema={"params": g.params, "batch_stats": g.batch_stats},
                    clusters=clusters, ada=augment, pl_mean=zero if self.pl_weight else None,
                    lecam={"real": zero, "fake": zero} if self.lecam_weight else None)

  # -- pieces of the step ------------------------------------------------------
  def _label_kw(self, labels) -> dict:
    return {"labels": labels} if self.conditional else {}

  def _fake_labels(self, state: GANState, key, n: int):
    """Labels [n] for fakes: uniform classes (or InfoGAN codes), clusters
    drawn from their prior, or None when unconditional."""
    if not self.conditional:
      return None
    if self.num_clusters:
      return clustering.sample(key, state.clusters["log_prior"], n)
    return jax.random.randint(key, (n,), 0, self.model_classes, dtype=jnp.int32)

  def _real_labels(self, state: GANState, batch: dict):
    """The real images' labels: the data's, their nearest clusters, or None
    (unconditional, or InfoGAN's codes, which only fakes have)."""
    if not self.conditional or self.num_codes:
      return None
    if self.num_clusters:  # The data's labels (if any) are not used.
      return clustering.assign(state.clusters["centroids"], batch["image"])
    return batch["label"]

  def _g(self, params, batch_stats, z, labels, *, train: bool, key=None):
    """G on latents z (and labels) -> (images, batch_stats after the call);
    `key` feeds the "noise" rng (StyleGAN2's noise inputs and style mixing)."""
    rngs = {"noise": key} if key is not None else None
    return apply_model(self.generator, params, batch_stats, z, train=train, rngs=rngs,
                       **self._label_kw(labels))

  def _d(self, params, batch_stats, x, labels=None, *, train: bool, key=None):
    """D on images x (and labels) -> (outputs [N], class logits [N, K] for
    ACGAN or None, batch_stats after the call)."""
    rngs = {"dropout": key} if key is not None else None
    out, stats = apply_model(self.discriminator, params, batch_stats, x, train=train, rngs=rngs,
                             **self._label_kw(labels))
    if self.conditional == "acgan":
      return out[0], out[1], stats
    return out, None, stats

  def _class_loss(self, aux, labels):
    """The cross-entropy of the class (or code) logits among D's auxiliary
    outputs `aux` [N, K (+ C)] against labels [N]."""
    return optax.softmax_cross_entropy_with_integer_labels(
        aux[:, :self.model_classes], labels).mean()

  def _hits(self, aux, labels):
    return jnp.argmax(aux[:, :self.model_classes], -1) == labels

  def _continuous_nll(self, aux, z):
    """InfoGAN's continuous codes: per example [N], the negative
    log-likelihood (constants dropped) of the codes z[:, :C] under
    unit-variance Gaussians at Q's means aux[:, K:], summed over the codes."""
    error = aux[:, self.model_classes:] - z[:, :self.num_continuous]
    return 0.5 * jnp.sum(jnp.square(error), axis=-1)

  def _augment(self, x, key, p=None):
    """What D sees of images x: DiffAugment's policy, or ADA's pipeline at
    probability p (the state's), or x."""
    if self.ada_on:
      return ada.augment(x, key, p, self.ada_pipeline)
    if not self.augment_policy:
      return x
    return diffaugment.augment(x, key, self.augment_policy)

  def _penalty_terms(self, params, d: NetState, real, fake, labels, key) -> dict:
    """The weighted penalties added to D's loss at this step: {name: (weight, value)}."""
    eps_key, drop = jax.random.split(key)
    # D as a function of its input alone (its statistics are not updated by
    # the penalty's extra passes; a conditional D sees the real labels).
    d_fn = lambda x: self._d(params, d.batch_stats, x, labels, train=True, key=drop)[0]
    terms = {}
    if self.gp_weight:
      eps = jax.random.uniform(eps_key, (real.shape[0],), jnp.float32)
      terms["gradient_penalty"] = (self.gp_weight,
                                   penalties.gradient_penalty(d_fn, real, fake, eps))
    if self.r1_gamma and self.r1_every == 1:
      terms["r1"] = (0.5 * self.r1_gamma, penalties.r1_penalty(d_fn, real))
    return terms

  def _lazy_r1(self, d: NetState, real, labels, key, step):
    """Lazy R1 (Karras et al. 2020): every r1_every steps, the penalty's
    gradient scaled by r1_every (the same strength on average); zero
    gradients otherwise. -> (grads, penalty value or 0)."""
    drop = jax.random.fold_in(key, 1)
    weight = 0.5 * self.r1_gamma * self.r1_every

    def penalty(params):
      d_fn = lambda x: self._d(params, d.batch_stats, x, labels, train=True, key=drop)[0]
      return weight * penalties.r1_penalty(d_fn, real)

    def active():
      value, grads = jax.value_and_grad(penalty)(d.params)
      return grads, value / weight

    def inactive():
      return jax.tree.map(jnp.zeros_like, d.params), jnp.zeros((), jnp.float32)

    return every_nth_step(step, self.r1_every, active, inactive)

  def _d_update(self, d: NetState, real, real_labels, fake, fake_labels, drop_real, drop_fake,
                aux_key, step, p=None, lecam=None, fake_z=None):
    """One discriminator update on `real` and (constant) `fake` images (and
    their labels when conditional; `fake_z`, their latents, for InfoGAN's
    continuous codes), and LeCam's anchors `lecam` moved by it.
    -> (new D state, metrics, D's outputs on the real images, anchors)."""
    aug_real, aug_fake, penalty_key = jax.random.split(aux_key, 3)
    real_in, fake_in = self._augment(real, aug_real, p), self._augment(fake, aug_fake, p)

    def loss_fn(params):
      real_out, real_cls, stats = self._d(params, d.batch_stats, real_in, real_labels,
                                          train=True, key=drop_real)
      fake_out, fake_cls, stats = self._d(params, stats, fake_in, fake_labels, train=True,
                                          key=drop_fake)
      losses = self.objective(real_out, fake_out)
      total, logged = losses.d_loss, {}
      if real_cls is not None:  # ACGAN: classify real and fake images by their labels.
        class_loss = self._class_loss(fake_cls, fake_labels)
        if real_labels is not None:  # (InfoGAN's Q sees the fakes' codes only.)
          class_loss = class_loss + self._class_loss(real_cls, real_labels)
          logged["class_accuracy_real"] = jnp.mean(self._hits(real_cls, real_labels))
        else:
          logged["code_accuracy_fake"] = jnp.mean(self._hits(fake_cls, fake_labels))
        total = total + self.class_loss_weight * class_loss
        logged["d_class_loss"] = class_loss
        if self.num_continuous:  # InfoGAN's continuous codes, predicted from the fakes
          logged["d_continuous_loss"] = jnp.mean(self._continuous_nll(fake_cls, fake_z))
          total = total + (self.class_loss_weight * self.continuous_weight *
                           logged["d_continuous_loss"])
      for name, (weight, value) in self._penalty_terms(params, d, real_in, fake_in,
                                                       real_labels, penalty_key).items():
        total, logged[name] = total + weight * value, value
      anchors = lecam
      if self.lecam_weight:
        anchors = penalties.lecam_anchors(lecam, real_out, fake_out, self.lecam_decay)
        logged["lecam"] = penalties.lecam_penalty(real_out, fake_out, anchors)
        total = total + self.lecam_weight * logged["lecam"]
      return total, (stats, real_out, losses, logged, anchors)

    (_, (stats, real_out, losses, logged, anchors)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(d.params)
    if self.r1_gamma and self.r1_every > 1:
      r1_grads, logged["r1"] = self._lazy_r1(d, real_in, real_labels, penalty_key, step)
      grads = jax.tree.map(jnp.add, grads, r1_grads)
    params, opt_state = apply_gradients(self.d_tx, d.params, d.opt_state, grads)
    metrics = {"d_loss": losses.d_loss, **losses.metrics, **logged}
    return (NetState(params=params, batch_stats=stats, opt_state=opt_state), metrics, real_out,
            anchors)

  # -- training --------------------------------------------------------------
  def train_step(self, state: GANState, batch: dict) -> tuple[GANState, dict]:
    reals = batch["image"]  # [n_critic, B, ...] when n_critic > 1
    real_labels = self._real_labels(state, batch)
    key = jax.random.fold_in(state.key, state.step)
    z_key, drop_real, drop_fake, drop_g = jax.random.split(key, 4)
    aux = jax.random.fold_in(key, _AUX_STREAM)
    label_key = lambda i: jax.random.fold_in(aux, _LABEL_STREAM + i)
    d, g_stats, lecam = state.d, state.g.batch_stats, state.lecam
    p = state.ada["p"] if self.ada_on else None
    noise_key = lambda i: jax.random.fold_in(aux, _NOISE_STREAM + i)

    if self.n_critic > 1:
      # The first n_critic - 1 critic updates, each on its own real batch
      # and fresh fakes (generator in training mode, as in the last one).
      # Unrolled: XLA's CPU backend ran them ~20x slower as a lax.scan loop.
      for i in range(self.n_critic - 1):
        k_z, k_real, k_fake, k_aux = jax.random.split(jax.random.fold_in(aux, i + 1), 4)
        z = flat_random.normal(k_z, (reals.shape[1], self.g_latent_dim))
        labels = self._fake_labels(state, label_key(i + 1), reals.shape[1])
        fake, g_stats = self._g(state.g.params, g_stats, z, labels, train=True,
                                key=noise_key(i + 1))
        d, _, _, lecam = self._d_update(
            d, reals[i], None if real_labels is None else real_labels[i], fake, labels, k_real,
            k_fake, k_aux, state.step, p, lecam, fake_z=z)
      reals = reals[-1]
      real_labels = None if real_labels is None else real_labels[-1]

    z = flat_random.normal(z_key, (reals.shape[0], self.g_latent_dim))
    fake_labels = self._fake_labels(state, label_key(0), reals.shape[0])

    # The generator's forward pass, once; its VJP is reused for the G update.
    def generate(g_params):
      return self._g(g_params, g_stats, z, fake_labels, train=True, key=noise_key(0))

    fake, g_vjp, g_stats = jax.vjp(generate, state.g.params, has_aux=True)
    d, metrics, real_out, lecam = self._d_update(d, reals, real_labels, fake, fake_labels,
                                                 drop_real, drop_fake, jax.random.fold_in(aux, 0),
                                                 state.step, p, lecam, fake_z=z)

    # Generator update through the updated discriminator.
    aug_g = jax.random.fold_in(aux, 2**30)

    def g_loss_fn(fake_images):
      out, classes, stats = self._d(d.params, d.batch_stats,
                                    self._augment(fake_images, aug_g, p), fake_labels,
                                    train=True, key=drop_g)
      losses = self.objective(jax.lax.stop_gradient(real_out), out)
      total, extra = losses.g_loss, {}
      if self.topk < 1.0:  # Top-k training: G's adversarial loss on D's best-scored fakes.
        seen = state.step.astype(jnp.float32) * self.images_per_step
        extra["g_topk_fraction"] = objectives.topk_fraction(seen, self.epoch_images, self.topk,
                                                            self.topk_decay)
        keep = objectives.topk_weights(out, extra["g_topk_fraction"])
        total = self.objective(jax.lax.stop_gradient(real_out), out, keep).g_loss
      if classes is not None:  # ACGAN: G wants its fakes classified as their labels.
        extra["g_class_loss"] = self._class_loss(classes, fake_labels)
        total = total + self.class_loss_weight * extra["g_class_loss"]
        if self.num_continuous:  # InfoGAN: G wants Q to recover its continuous codes.
          extra["g_continuous_loss"] = jnp.mean(self._continuous_nll(classes, z))
          total = total + (self.class_loss_weight * self.continuous_weight *
                           extra["g_continuous_loss"])
      return total, (stats, losses.g_loss, losses.metrics, extra)

    (_, (d_stats, g_loss, after, extra)), fake_grad = jax.value_and_grad(
        g_loss_fn, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grad)
    if self.orthogonal_weight:  # BigGAN's regulariser, on G's weights only
      extra["g_orthogonal"], ortho_grads = jax.value_and_grad(penalties.orthogonal_penalty)(
          state.g.params)
      g_grads = jax.tree.map(lambda g, o: g + self.orthogonal_weight * o, g_grads, ortho_grads)
    pl_mean = state.pl_mean
    if self.pl_weight:  # StyleGAN2's path length regulariser, lazy
      pl_grads, pl_mean, extra["pl_penalty"], extra["pl_length"] = self._lazy_path_length(
          state, g_stats, reals.shape[0], jax.random.fold_in(aux, _PL_STREAM))
      g_grads = jax.tree.map(jnp.add, g_grads, pl_grads)
    g_params, g_opt_state = apply_gradients(self.g_tx, state.g.params, state.g.opt_state,
                                            g_grads)
    g = NetState(params=g_params, batch_stats=g_stats, opt_state=g_opt_state)
    d = d.replace(batch_stats=d_stats)
    g_ema = self._update_ema(state.g_ema, {"params": g.params, "batch_stats": g.batch_stats},
                             state.step)
    augment = state.ada
    if self.ada_on:
      augment, extra["ada_p"], extra["ada_rt"] = self._ada_update(state, real_out)
    if self.lecam_weight:
      extra["lecam_anchor_real"], extra["lecam_anchor_fake"] = lecam["real"], lecam["fake"]

    metrics = {"d_loss": metrics.pop("d_loss"), "g_loss": g_loss, **metrics, **extra,
               **{f"{k}_after": v for k, v in after.items() if k.endswith("_fake")},
               "pixel_std_real": pixel_spread(reals), "pixel_std_fake": pixel_spread(fake)}
    total = sum(metrics.values())
    metrics["finite"] = jnp.isfinite(total).astype(jnp.float32)
    return state.replace(step=state.step + 1, g=g, d=d, g_ema=g_ema, ada=augment,
                         pl_mean=pl_mean, lecam=lecam), metrics

  def _lazy_path_length(self, state: GANState, g_stats, batch: int, key):
    """Every pl_every steps, the gradient of pl_weight * pl_every * the path
    length penalty on batch // 2 fresh latents (`path_length_penalty`), and
    the updated running mean; zero gradients and the same mean otherwise.
    -> (grads, pl_mean, penalty, mean length)."""
    n = max(1, batch // 2)
    z_key, label_key, pl_key = jax.random.split(key, 3)
    z = flat_random.normal(z_key, (n, self.g_latent_dim))
    labels = self._fake_labels(state, label_key, n)
    weight = self.pl_weight * self.pl_every

    def penalty(params):
      variables = {"params": params, "batch_stats": g_stats}
      value, aux = path_length_penalty(self.generator, variables, z, labels, state.pl_mean,
                                       pl_key)
      return weight * value, (value, *aux)

    def active():
      (_, (value, mean, length)), grads = jax.value_and_grad(penalty, has_aux=True)(
          state.g.params)
      return grads, mean, value, length

    def inactive():
      zero = jnp.zeros((), jnp.float32)
      return jax.tree.map(jnp.zeros_like, state.g.params), state.pl_mean, zero, zero

    return every_nth_step(state.step, self.pl_every, active, inactive)

  def _ada_update(self, state: GANState, real_out):
    """ADA's bookkeeping after a step: sign(D(real)) accumulated, and every
    ada_interval steps (with ada_target > 0) p adjusted towards r_t = target
    and the sums reset. -> (new ada state, the step's p, the step's r_t)."""
    aug = state.ada
    signs = aug["signs"] + jnp.sum(jnp.sign(real_out.astype(jnp.float32)))
    count = aug["count"] + real_out.shape[0]
    p = aug["p"]
    if self.ada_target > 0:
      due = (state.step + 1) % self.ada_interval == 0
      adjusted = ada.adjust(p, signs / count, self.ada_target, count, self.ada_kimg)
      p = jnp.where(due, adjusted, p)
      signs, count = jnp.where(due, 0.0, signs), jnp.where(due, 0.0, count)
    return ({"p": p, "signs": signs, "count": count}, aug["p"],
            jnp.mean(jnp.sign(real_out.astype(jnp.float32))))

  def _update_ema(self, ema, current, step):
    """ema <- decay * ema + (1 - decay) * current, with the decay warmed up as
    min(ema_decay, (1 + step) / (10 + step)) so early averages are not
    dominated by the initialisation (as tf.train.ExponentialMovingAverage
    with num_updates)."""
    if not self.ema_decay:
      return current
    t = step.astype(jnp.float32)
    decay = jnp.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, current)

  # -- evaluation -----------------------------------------------------------------
  def eval_step(self, state: GANState, batch: dict, batch_index: jax.Array) -> dict:
    """The objective's losses and metrics on held-out real images and fresh
    fakes (both networks in eval mode, no augmentation). A growing gap
    between e.g. `eval_d_real` and the training `d_real` shows the
    discriminator memorising the training set. ACGAN adds the auxiliary
    classifier's accuracy on the real images and on the fakes' labels
    (InfoGAN: on the fakes' codes, `code_accuracy_fake`)."""
    real, mask = batch["image"], batch["mask"]
    real_labels = self._real_labels(state, batch)
    key = jax.random.fold_in(jax.random.fold_in(state.key, _EVAL_STREAM), batch_index)
    z = flat_random.normal(key, (real.shape[0], self.g_latent_dim))
    fake_labels = self._fake_labels(state, jax.random.fold_in(key, _LABEL_STREAM),
                                    real.shape[0])
    fake, _ = self._g(state.g.params, state.g.batch_stats, z, fake_labels, train=False)
    real_out, real_cls, _ = self._d(state.d.params, state.d.batch_stats, real, real_labels,
                                    train=False)
    fake_out, fake_cls, _ = self._d(state.d.params, state.d.batch_stats, fake, fake_labels,
                                    train=False)
    losses = self.objective(real_out, fake_out, mask)
    count = jnp.sum(mask)
    # Every entry is a mean over the batch's real examples: times the count
    # it adds up over batches to the split's sum.
    values = {"d_loss": losses.d_loss, "g_loss": losses.g_loss, **losses.metrics}
    sums = {k: v * count for k, v in values.items()}
    if real_cls is not None:
      hit = lambda aux, labels: jnp.sum(self._hits(aux, labels) * mask)
      if real_labels is not None:
        sums["class_accuracy_real"] = hit(real_cls, real_labels)
      sums["code_accuracy_fake" if self.num_codes else "class_accuracy_fake"] = hit(
          fake_cls, fake_labels)
      if self.num_continuous:
        sums["continuous_loss"] = jnp.sum(self._continuous_nll(fake_cls, z) * mask)
    return {**sums, "count": count}

  def summarize_eval(self, totals: dict, step: int, outdir: str | None) -> dict:
    return per_example_means(totals)

  # -- artifacts ---------------------------------------------------------------------
  def sample(self, state: GANState, z: jax.Array, labels: jax.Array | None = None,
             average: bool = True, psi: float | None = None) -> jax.Array:
    """Generator images in [-1, 1] for latents z [N, latent_dim] (and class
    labels [N], int, for a conditional generator), BatchNorm in inference
    mode. A self-conditioned generator takes its clusters (or InfoGAN codes,
    equally likely) from z[:, 0] (see `jaxgan.gan.clusters.from_latent`)
    unless `labels` names them.

    average: use the averaged generator `g_ema` (weights and running
    statistics; the generator to judge and evaluate) rather than the live
    training one. psi: StyleGAN's truncation trick (`truncation` "w"): each
    w pulled to w_avg + psi (w - w_avg); None or 1 for none.
    """
    if self.self_conditioned:
      if labels is None:
        log_prior = (state.clusters["log_prior"] if self.num_clusters else
                     jnp.full((self.num_codes,), -np.log(self.num_codes), jnp.float32))
        labels = clustering.from_latent(z[:, 0], log_prior)
      z = z[:, 1:]
    elif self.conditional and labels is None:
      raise ValueError("This GAN is class-conditional: pass the labels to sample.")
    net = state.g_ema if average else {"params": state.g.params,
                                       "batch_stats": state.g.batch_stats}
    if psi is None or psi == 1.0:
      return self._g(net["params"], net["batch_stats"], z, labels, train=False)[0]
    if self.truncation != "w":
      raise ValueError(f"psi truncates w, and config.model={self.config.model!r} has no "
                       "mapping network: truncate its latents instead (evaluate --truncation).")
    return apply_model(self.generator.clone(truncation_psi=float(psi)), net["params"],
                       net["batch_stats"], z, train=False, **self._label_kw(labels))[0]

  def discriminate(self, state: GANState, x: jax.Array, labels: jax.Array | None = None
                   ) -> jax.Array:
    """D's outputs [N] for images x in [-1, 1] (and labels, conditional), in
    eval mode (what the objective turns into losses; e.g. inpainting's
    perceptual loss)."""
    return self._d(state.d.params, state.d.batch_stats, x, labels, train=False)[0]

  def sample_images(self, state: GANState) -> dict[str, np.ndarray]:
    """The grids the loop saves, on a fixed latent batch: "samples" from the
    averaged generator and, when averaging is on, "live" from the training
    one. A conditional GAN's grid has one row per class (or cluster) and one
    z per column ([classes, columns, H, W, C])."""
    grids = jax.device_get(self._sample_fixed(state))
    if not self.ema_decay:
      del grids["live"]
    grids = {name: np.asarray(x) for name, x in grids.items()}
    if self.model_classes:
      grids = {name: x.reshape(self.model_classes, self.grid_columns, *x.shape[1:])
               for name, x in grids.items()}
    return grids


def make_task(config, data) -> GANTask:
  """The GAN task of a config and its resolved data (`jaxgan.data.Data`).
  With `cluster_conditioning`, fits the clusters on the training split's
  first images (a few seconds; a restored run uses the ones it saved)."""
  clusters = None
  k = provenance.added_field(config, "cluster_conditioning")
  if isinstance(k, int) and k >= 2 and provenance.added_field(config, "conditional"):
    def fit():
      images = data.first_images(config.train_split, clustering.MAX_FIT_IMAGES)
      fitted = clustering.fit(images, k, config.seed)
      if jax.process_count() > 1:  # Every process uses process 0's (k-means may differ by BLAS).
        from jax.experimental import multihost_utils
        fitted = multihost_utils.broadcast_one_to_all(fitted)
      return fitted
    clusters = data.remember("clusters", fit)  # a restore takes the run's own
  return GANTask(config, data.info.image_shape, data.info.num_classes, clusters,
                 data.info.num_train_examples)
