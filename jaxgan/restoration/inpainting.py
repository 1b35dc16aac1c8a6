"""Inpainting with a trained GAN or VAE, and two baselines.

Images are [N, H, W, C] in [-1, 1] (the models' range); masks [H, W] or
[N, H, W] with 1 = known. Every method returns images whose known pixels are
exactly the input's: the model's output is used only in the hole.

GAN (Yeh et al. 2017, "Semantic image inpainting with deep generative
models"): find z minimising the contextual loss, an L1 distance to the known
pixels each weighted by the share of missing pixels in its 7x7 neighbourhood
(the known pixels next to the hole matter most), plus lambda times the
perceptual loss, the generator loss of the GAN's own objective on D(G(z))
(log(1 - D(G(z))) up to its non-saturating form for the standard GAN), with
Adam over z from several random starts per image, each coordinate of z kept
within +-3 (the prior's range), keeping the start with the lowest loss. The
same optimisation without a mask (`invert`) is GAN inversion.

VAE (Rezende et al. 2014, appendix F): pseudo-Gibbs sampling: fill the hole,
encode, draw z from q(z|x), decode, copy the decoder's mean into the hole,
repeat. Chosen over optimising the completed image's ELBO because it needs
no tuning (no step size, no constraint) and uses the amortised posterior the
model was trained with; each step is one encoder and one decoder pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import flat_random, likelihoods
from jaxgan.gan.sampler import Sampler


def _masks(mask, n: int) -> jax.Array:
  m = jnp.asarray(mask, jnp.float32)
  m = jnp.broadcast_to(m, (n, *m.shape[-2:])) if m.ndim == 2 else m
  return m[..., None]


def contextual_weights(mask: jax.Array, window: int = 7) -> jax.Array:
  """[N, H, W, 1]: for a known pixel, the share of missing pixels in its
  window x window neighbourhood (zero padding counts as known); 0 in the hole."""
  missing = 1.0 - mask
  k = jnp.ones((window, window, 1, 1), jnp.float32) / (window * window)
  share = jax.lax.conv_general_dilated(missing, k, (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return share * mask


def paste(known: jax.Array, filled: jax.Array, mask: jax.Array) -> jax.Array:
  """Known pixels from `known`, the hole from `filled` (mask [N, H, W, 1])."""
  return mask * known + (1.0 - mask) * filled


def latent_search(task, state, images, mask, key, *, steps: int = 1000, restarts: int = 4,
                  learning_rate: float = 0.01, perceptual_weight: float = 0.003,
                  z_range: float = 3.0, batch_size: int = 256, progress: bool = False):
  """Yeh et al.'s optimisation over z for each image. Returns (G(z*) [N, H,
  W, C], z* [N, latent], final losses [N]). mask None: no mask (inversion:
  plain L1 to the whole image). progress: show a progress bar over the
  batches' steps."""
  n = images.shape[0]
  if mask is None:
    weights = jnp.ones((n, *images.shape[1:3], 1), jnp.float32)
  else:
    weights = contextual_weights(_masks(mask, n))

  def losses(z, x, w):
    g = task.sample(state, z)  # averaged generator, BatchNorm in inference mode
    context = jnp.sum(jnp.abs(w * (g - x)), axis=(1, 2, 3))
    if not perceptual_weight:
      return context
    out = task.discriminate(state, g)
    # The objective's generator loss of each image's D output alone.
    perceptual = jax.vmap(lambda o: task.objective(o[None], o[None]).g_loss)(out)
    return context + perceptual_weight * perceptual

  tx = optax.adam(learning_rate)

  @jax.jit
  def step(z, opt_state, x, w):
    grad = jax.grad(lambda z: jnp.sum(losses(z, x, w)))(z)
    updates, opt_state = tx.update(grad, opt_state, z)
    return jnp.clip(optax.apply_updates(z, updates), -z_range, z_range), opt_state

  final = jax.jit(losses)
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=steps * -(-n // batch_size), desc="latent search", unit="step")
  best_images, best_z, best_loss = [], [], []
  for start in range(0, n, batch_size):
    x = jnp.asarray(images[start:start + batch_size], jnp.float32)
    w = weights[start:start + batch_size]
    b = x.shape[0]
    xs, ws = jnp.tile(x, (restarts, 1, 1, 1)), jnp.tile(w, (restarts, 1, 1, 1))
    z = jnp.clip(flat_random.normal(jax.random.fold_in(key, start),
                                    (restarts * b, task.latent_dim)), -z_range, z_range)
    opt_state = tx.init(z)
    for _ in range(steps):
      z, opt_state = step(z, opt_state, xs, ws)
      if bar is not None:
        bar.update()
    loss = final(z, xs, ws).reshape(restarts, b)
    pick = jnp.argmin(loss, axis=0)
    z = z.reshape(restarts, b, -1)[pick, jnp.arange(b)]
    best_z.append(z)
    best_loss.append(loss[pick, jnp.arange(b)])
    best_images.append(task.sample_jit(state, z))
  if bar is not None:
    bar.close()
  return (np.concatenate([np.asarray(v) for v in best_images]),
          np.concatenate([np.asarray(v) for v in best_z]),
          np.concatenate([np.asarray(v) for v in best_loss]))


def gan_inpaint(task: Sampler, state, images, mask, key, **kwargs) -> tuple[np.ndarray, dict]:
  """(inpainted images, info): the known pixels pasted over G(z*)."""
  generated, _, loss = latent_search(task, state, images, mask, key, **kwargs)
  m = _masks(mask, images.shape[0])
  return np.asarray(paste(jnp.asarray(images), jnp.asarray(generated), m)), {
      "mean_final_loss": float(np.mean(loss))}


def invert(task: Sampler, state, images, key, **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """GAN inversion: (G(z*), z*) closest in L1 to `images` (plus the
  perceptual term). Interpolating two inverted z's interpolates between two
  real images through the GAN."""
  generated, z, _ = latent_search(task, state, images, None, key, **kwargs)
  return generated, z


def interpolate(task, state, first, second, key, num: int = 8, **kwargs) -> np.ndarray:
  """Images [num, H, W, C] along the straight line between the latents of
  two real images (each inverted by `invert`, with `kwargs`): G(z_a), ...,
  G(z_b), the generator's path from one image to the other."""
  pair = np.stack([np.asarray(first, np.float32), np.asarray(second, np.float32)])
  _, z = invert(task, state, pair, key, **kwargs)
  t = jnp.linspace(0.0, 1.0, num)[:, None]
  return np.asarray(task.sample_jit(state, (1.0 - t) * z[0] + t * z[1]))


def vae_inpaint(task, state, images, mask, key, steps: int = 100) -> np.ndarray:
  """Pseudo-Gibbs: the hole starts at 0 (mid-grey in [-1, 1]) and is
  replaced `steps` times by the decoder's mean for z ~ q(z | current image)
  (an autoregressive decoder's given the current image's earlier pixels)."""
  m = _masks(mask, images.shape[0])
  x0 = paste(jnp.asarray(images, jnp.float32), jnp.zeros_like(images), m)
  apply = lambda *a, **k: task.model.apply({"params": state.params}, *a, **k)

  @jax.jit
  def gibbs(x, key):
    mean, logvar = apply(x, method="encode")
    z = mean + jnp.exp(0.5 * logvar) * flat_random.normal(key, mean.shape)
    decoded = likelihoods.mode(task.likelihood, apply(z, x, method="decode"))
    return paste(x0, decoded, m)

  x = x0
  for i in range(steps):
    x = gibbs(x, jax.random.fold_in(key, i))
  return np.asarray(x)


def mean_fill(images, mask, train_images) -> np.ndarray:
  """Baseline: the training set's mean image in the hole."""
  m = np.asarray(_masks(mask, images.shape[0]))
  return m * images + (1.0 - m) * np.mean(train_images, axis=0, keepdims=True)


def nearest_fill(images, mask, train_images, batch_size: int = 256) -> np.ndarray:
  """Baseline: the training image closest (L2) on each image's known pixels,
  its pixels copied into the hole."""
  m = np.asarray(_masks(mask, images.shape[0]))
  train = np.asarray(train_images, np.float32).reshape(len(train_images), -1)
  out = []
  for i in range(0, len(images), batch_size):
    x = np.asarray(images[i:i + batch_size], np.float32)
    mm = np.broadcast_to(m[i:i + batch_size], x.shape).reshape(len(x), -1)
    xk = (x.reshape(len(x), -1) * mm)
    # |m*(x - t)|^2 = |m x|^2 - 2 (m x).t + m.(t^2), per pair
    d = -2.0 * xk @ train.T + mm @ (train ** 2).T
    nearest = train_images[np.argmin(d, axis=1)]
    out.append(m[i:i + batch_size] * x + (1.0 - m[i:i + batch_size]) * nearest)
  return np.concatenate(out)
