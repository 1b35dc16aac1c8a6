"""Gram matrices, texture descriptors and distances.

A layer's activations F [N, H, W, C] give the Gram matrix
G = F^T F / (H W) per image ([N, C, C]): the correlations between feature
maps averaged over positions, which keep what a texture repeats and drop
where it is (Gatys et al. 2015). The texture loss between two descriptors is
per layer the mean squared difference of their Gram entries divided by the
mean square of the target's (Gatys et al.'s E_l relative to the target's own
energy), so that layers and feature networks of any scale weigh alike and a
loss of 0.01 means a 10% (RMS) mismatch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def gram_matrix(features: jax.Array) -> jax.Array:
  """[N, H, W, C] -> [N, C, C], normalised by H * W."""
  n, h, w, c = features.shape
  f = features.reshape(n, h * w, c).astype(jnp.float32)
  return jnp.einsum("npc,npd->ncd", f, f, precision=jax.lax.Precision.HIGHEST) / (h * w)


def descriptor(features: dict, layers) -> dict:
  """{layer: Gram matrices [N, C, C]} of the chosen layers' activations."""
  missing = [l for l in layers if l not in features]
  if missing:
    raise ValueError(f"Unknown layer(s) {', '.join(missing)}; this feature network has "
                     f"{', '.join(features)}.")
  return {layer: gram_matrix(features[layer]) for layer in layers}


def texture_loss(grams: dict, targets: dict) -> tuple[jax.Array, dict]:
  """(mean over layers, {layer: loss}) with loss = mean (G - A)^2 / mean A^2,
  averaged over the batch; `targets` may hold one Gram per layer ([C, C] or
  [1, C, C]) for the whole batch."""
  per_layer = {l: jnp.mean(jnp.square(grams[l] - targets[l])) /
               jnp.maximum(jnp.mean(jnp.square(targets[l])), 1e-30) for l in grams}
  return sum(per_layer.values()) / len(per_layer), per_layer


def flat_descriptor(grams: dict) -> np.ndarray:
  """{layer: [N, C, C]} -> [N, D]: each Gram's upper triangle, concatenated
  (the vector a classifier of textures works on)."""
  parts = []
  for g in grams.values():
    g = np.asarray(g)
    i, j = np.triu_indices(g.shape[-1])
    parts.append(g[:, i, j])
  return np.concatenate(parts, axis=1)


def texture_distance(features_fn, x: np.ndarray, y: np.ndarray, layers=None,
                     batch_size: int = 64) -> dict:
  """Per-layer texture distance between two sets of images ([N, H, W, C] in
  [0, 1], as `features_fn` takes them): the texture loss of the first set's
  mean Gram matrices against the second's (the reference), and the mean over
  layers as "total". A texture-statistics check
  beside FID (e.g. a GAN's samples against real images)."""
  def mean_grams(images):
    sums, count = None, 0
    for i in range(0, len(images), batch_size):
      feats = features_fn(jnp.asarray(images[i:i + batch_size]))
      grams = descriptor(feats, layers or list(feats))
      batch = {k: jnp.sum(v, axis=0) for k, v in grams.items()}
      sums = batch if sums is None else {k: sums[k] + batch[k] for k in sums}
      count += len(images[i:i + batch_size])
    return {k: v / count for k, v in sums.items()}

  total, per_layer = texture_loss(mean_grams(x), mean_grams(y))
  return {**{k: float(v) for k, v in per_layer.items()}, "total": float(total)}
