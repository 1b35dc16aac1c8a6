"""Discriminator rejection sampling (DRS; Azadi et al. 2019, "Discriminator
Rejection Sampling"): a trained GAN's discriminator filters its generator's
samples after training, so that what is kept is closer to the data.

If D were the optimal discriminator of the standard GAN loss, its logit
would be log p_data(x) / p_g(x), and accepting a sample x ~ p_g with
probability exp(logit(x) - M), M the largest logit, would give exactly
p_data. DRS makes this usable with a real discriminator:

1. **Calibration.** The discriminator's score is mapped to a logit by a
   logistic regression of "real" on the score, fitted on real images of the
   training split and on the candidates themselves, the two sets weighted
   equally (the paper fine-tunes D's last layer with the logistic loss for a
   hinge-loss D; a scalar scale and bias are that fine-tuning restricted to
   the output, and they make any objective's scores (hinge, Wasserstein,
   least squares) a log density ratio estimate).
2. **Burn-in.** M is the largest calibrated logit of a first round of
   candidates, raised as larger ones appear.
3. **Acceptance.** With delta = logit - M <= 0, each candidate is kept with
   probability sigmoid(F), F = delta - log(1 - exp(delta - eps)) - gamma.
   Without eps and gamma, sigmoid(F) = exp(delta): exact rejection sampling.
   gamma moves every probability by the same log odds: it is the
   `percentile`-th percentile of F + gamma over the first round, so the
   candidate at that percentile is kept with probability 1/2. It is
   usually negative, raising the probabilities: fewer samples are thrown
   away, at the price of staying nearer p_g.

The functions here are the method's arithmetic; the sampling loop that uses
them is `jaxgan.evaluation.generators.rejection_sample` (`experiments.evaluate
--drs PERCENTILE`).
"""

from __future__ import annotations

import numpy as np

from jaxgan.gan.sampler import Sampler

EPSILON = 1e-6  # the paper's eps: keeps log(1 - exp(delta - eps)) finite at delta = 0


def calibrate(real_scores, fake_scores, ridge: float = 1e-4, iterations: int = 50
              ) -> tuple[float, float]:
  """(scale, bias) of the logistic regression p(real | s) = sigmoid(scale * s
  + bias) of D's scores s on real (label 1) against generated (label 0)
  images, each set carrying half the weight: the calibrated logit
  scale * s + bias estimates log p_data / p_g. Newton's method on the
  standardised score, with a small ridge on the slope so that a D that
  separates the sets perfectly still gives a finite answer."""
  real = np.asarray(real_scores, np.float64).ravel()
  fake = np.asarray(fake_scores, np.float64).ravel()
  if not (len(real) and len(fake)) or not (np.isfinite(real).all() and np.isfinite(fake).all()):
    raise ValueError(f"Calibrating the discriminator needs finite scores of real and "
                     f"generated images; got {len(real)} and {len(fake)}, finite: "
                     f"{bool(np.isfinite(real).all())}, {bool(np.isfinite(fake).all())}.")
  s = np.concatenate([real, fake])
  y = np.concatenate([np.ones_like(real), np.zeros_like(fake)])
  w = np.concatenate([np.full_like(real, 0.5 / len(real)), np.full_like(fake, 0.5 / len(fake))])
  mean, std = s.mean(), s.std() or 1.0
  x = np.stack([(s - mean) / std, np.ones_like(s)], axis=1)
  theta = np.zeros(2)
  penalty = np.diag([ridge, 0.0])
  for _ in range(iterations):
    p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -500, 500)))
    grad = x.T @ (w * (p - y)) + penalty @ theta
    hessian = (x * (w * p * (1 - p))[:, None]).T @ x + penalty + 1e-12 * np.eye(2)
    step = np.linalg.solve(hessian, grad)
    theta -= step
    if np.abs(step).max() < 1e-10:
      break
  scale = theta[0] / std
  return float(scale), float(theta[1] - scale * mean)


def shifted_log_odds(logits, max_logit: float, eps: float = EPSILON) -> np.ndarray:
  """F + gamma: the log odds of accepting with probability exp(logit - M)
  (delta = logit - M, capped at 0; eps keeps delta = 0 finite)."""
  delta = np.minimum(np.asarray(logits, np.float64) - max_logit, 0.0)
  return delta - np.log1p(-np.exp(delta - eps))


def acceptance(logits, max_logit: float, gamma: float, eps: float = EPSILON) -> np.ndarray:
  """DRS's acceptance probabilities sigmoid(F) of candidates with these
  calibrated logits."""
  f = shifted_log_odds(logits, max_logit, eps) - gamma
  e = np.exp(-np.abs(f))  # sigmoid, without overflow or cancellation
  return np.where(f >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def check_supported(task: Sampler) -> None:
  """DRS is for unconditional GANs: a generator of z alone (not of class
  labels, clusters or InfoGAN codes) and a discriminator of images alone."""
  if task.num_classes or task.latent_dim != task.g_latent_dim:
    raise ValueError("Discriminator rejection sampling (--drs) is for unconditional GANs: this "
                     "run's generator also takes class, cluster or code labels. Evaluate it "
                     "without --drs.")


def check_settings(percentile: float, round_size: int) -> None:
  """The DRS percentile and round size, refused before any work."""
  if not 0.0 <= percentile < 100.0:
    raise ValueError(f"The DRS percentile (--drs) must be in [0, 100) (e.g. 80 or 95); got "
                     f"{percentile}.")
  if round_size < 2:
    raise ValueError(f"DRS draws its candidates in rounds of --drs_round >= 2; got {round_size}.")
