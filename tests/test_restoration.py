"""Restoration: PSNR/SSIM against scikit-image, masks, inpainting keeps the
known pixels, latent optimisation lowers the contextual loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.metrics as skm

from conftest import TINY_DCGAN
from experiments.configs import gan as gan_configs
from jaxgan.restoration import inpainting, masks, quality
from jaxgan.tasks.gan import GANTask


def _pairs(shape, seed=0, noise=0.1):
  rng = np.random.default_rng(seed)
  x = rng.uniform(0, 1, shape).astype(np.float32)
  return x, np.clip(x + noise * rng.standard_normal(shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 28, 28, 1), (2, 32, 32, 3)])
def test_psnr_and_ssim_equal_scikit_image(shape):
  x, y = _pairs(shape)
  ch = {} if shape[-1] == 1 else {"channel_axis": -1}
  sq = (lambda a: a[..., 0]) if shape[-1] == 1 else (lambda a: a)
  np.testing.assert_allclose(quality.psnr(x, y), [skm.peak_signal_noise_ratio(a, b, data_range=1)
                                                  for a, b in zip(x, y)], rtol=1e-5)
  np.testing.assert_allclose(quality.ssim(x, y), [skm.structural_similarity(
      sq(a), sq(b), data_range=1, **ch) for a, b in zip(x, y)], rtol=1e-5)
  np.testing.assert_allclose(quality.ssim(x, y, gaussian=True), [skm.structural_similarity(
      sq(a), sq(b), data_range=1, gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False, **ch) for a, b in zip(x, y)], rtol=1e-5)


def test_region_metrics_average_over_the_region_only():
  x, y = _pairs((2, 28, 28, 1))
  region = np.zeros((2, 28, 28), np.float32)
  region[:, 7:21, 7:21] = 1
  mse = ((x - y)[:, 7:21, 7:21] ** 2).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(quality.psnr(x, y, region=region), 10 * np.log10(1 / mse),
                             rtol=1e-5)
  full = [skm.structural_similarity(a[..., 0], b[..., 0], data_range=1, full=True)[1]
          for a, b in zip(x, y)]
  np.testing.assert_allclose(quality.ssim(x, y, region=region),
                             [s[7:21, 7:21].mean() for s in full], rtol=1e-5)


def test_each_mask_covers_what_it_says(tmp_path):
  c = masks.make_mask("center", 28)
  assert (c == 0).sum() == 14 * 14 and (c[7:21, 7:21] == 0).all()
  for name, missing in (("left", (slice(None), slice(0, 14))),
                        ("right", (slice(None), slice(14, 28))),
                        ("top", (slice(0, 14), slice(None))),
                        ("bottom", (slice(14, 28), slice(None)))):
    m = masks.make_mask(name, 28)
    assert (m[missing] == 0).all() and (m == 0).sum() == 28 * 14, name
  r = masks.make_mask("random", 28, seed=1)
  assert 0.75 < (r == 0).mean() < 0.85
  np.testing.assert_array_equal(r, masks.make_mask("random", 28, seed=1))
  from PIL import Image
  png = np.full((28, 28), 255, np.uint8)
  png[:5, :5] = 0
  Image.fromarray(png).save(tmp_path / "m.png")
  assert (masks.make_mask(str(tmp_path / "m.png"), 28) == 0).sum() == 25
  with pytest.raises(ValueError, match="is 28x28; the run's images are 32x32"):
    masks.make_mask(str(tmp_path / "m.png"), 32)
  with pytest.raises(ValueError, match="Unknown --mask 'middle'; use one of center"):
    masks.make_mask("middle", 28)


@pytest.fixture(scope="module")
def tiny_gan():
  config = gan_configs.get_config("dcgan")
  config.update(dict(batch_size=8, num_sample_images=8, **TINY_DCGAN))
  task = GANTask(config, (16, 16, 1))
  return task, jax.jit(task.init_state)(jax.random.PRNGKey(0))


def test_inpainting_never_changes_known_pixels(tiny_gan):
  task, state = tiny_gan
  x = np.random.default_rng(0).uniform(-1, 1, (5, 16, 16, 1)).astype(np.float32)
  train = np.random.default_rng(1).uniform(-1, 1, (20, 16, 16, 1)).astype(np.float32)
  m = masks.make_mask("center", 16)
  outs = {"gan": inpainting.gan_inpaint(task, state, x, m, jax.random.PRNGKey(0), steps=2,
                                        restarts=2)[0],
          "mean": inpainting.mean_fill(x, m, train),
          "nearest": inpainting.nearest_fill(x, m, train)}
  for name, out in outs.items():
    np.testing.assert_array_equal(out[:, m > 0], x[:, m > 0], err_msg=name)
    assert not np.allclose(out[:, m == 0], x[:, m == 0]), name
  # nearest: the hole is copied from the training image closest on the known pixels.
  d = (((train[None] - x[:, None]) ** 2) * m[None, None, :, :, None]).sum(axis=(2, 3, 4))
  best = train[np.argmin(d, axis=1)]
  np.testing.assert_array_equal(outs["nearest"][:, m == 0], best[:, m == 0])


def test_latent_optimisation_lowers_the_contextual_loss(tiny_gan):
  task, state = tiny_gan
  target = np.asarray(task.sample(state, jnp.asarray(
      np.random.default_rng(3).standard_normal((4, task.latent_dim)), jnp.float32)))
  m = masks.make_mask("center", 16)
  key = jax.random.PRNGKey(5)
  before = inpainting.latent_search(task, state, target, m, key, steps=0, restarts=1,
                                    perceptual_weight=0.0)[2]
  after = inpainting.latent_search(task, state, target, m, key, steps=40, restarts=1,
                                   learning_rate=0.05, perceptual_weight=0.0)[2]
  assert np.all(after < before) and np.mean(after) < 0.7 * np.mean(before), (before, after)
  w = np.asarray(inpainting.contextual_weights(jnp.asarray(m)[None, ..., None]))[0, ..., 0]
  assert (w[m == 0] == 0).all() and w[3, 8] > w[0, 0] == 0  # next to the hole > far away


def test_interpolation_between_two_real_images_runs_through_their_inversions(tiny_gan):
  task, state = tiny_gan
  rng = np.random.default_rng(4)
  a, b = rng.uniform(-1, 1, (2, 16, 16, 1)).astype(np.float32)
  key = jax.random.PRNGKey(2)
  path = inpainting.interpolate(task, state, a, b, key, num=5, steps=3, restarts=2)
  ends, z = inpainting.invert(task, state, np.stack([a, b]), key, steps=3, restarts=2)
  assert path.shape == (5, 16, 16, 1)
  np.testing.assert_allclose(path[[0, -1]], ends, atol=1e-5)
  middle = np.asarray(task.sample(state, jnp.asarray((z[0] + z[1]) / 2)[None]))
  np.testing.assert_allclose(path[2], middle[0], atol=1e-5)


def test_vae_pseudo_gibbs_keeps_known_pixels():
  from experiments.configs.vae import get_config
  from jaxgan.tasks.vae import VAETask
  config = get_config()
  config.update(dict(model="mlp", latent_dim=4, image_size=28))
  x = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
  task = VAETask(config, (28, 28, 1), x)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  m = masks.make_mask("bottom", 28)
  out = inpainting.vae_inpaint(task, state, x, m, jax.random.PRNGKey(1), steps=3)
  np.testing.assert_array_equal(out[:, m > 0], x[:, m > 0])
  assert np.all(np.abs(out) <= 1.0) and not np.allclose(out[:, m == 0], 0.0)
