"""Super-resolution: sub-pixel shuffles, area down-sampling, the task's
errors, and exact resume through the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import superres
from experiments.configs.superres import get_config
from jaxgan.models.superres import area_downsample, pixel_shuffle, space_to_depth
from jaxgan.tasks.superres import SuperResolutionTask
from jaxgan.writers import read_metrics


def test_pixel_shuffle_inverts_space_to_depth():
  x = jnp.arange(2 * 6 * 4 * 12, dtype=jnp.float32).reshape(2, 6, 4, 12)
  for f in (2,):
    np.testing.assert_array_equal(space_to_depth(pixel_shuffle(x, f), f), x)
  y = jnp.arange(2 * 8 * 6 * 3, dtype=jnp.float32).reshape(2, 8, 6, 3)
  np.testing.assert_array_equal(pixel_shuffle(space_to_depth(y, 2), 2), y)
  # PyTorch's convention: channel c * f^2 + i * f + j -> sub-pixel (i, j) of channel c.
  one = np.zeros((1, 1, 1, 8), np.float32)
  one[0, 0, 0, 1 * 4 + 1 * 2 + 0] = 1.0  # channel 1, sub-pixel (1, 0)
  out = np.asarray(pixel_shuffle(jnp.asarray(one), 2))
  assert out.shape == (1, 2, 2, 2) and out[0, 1, 0, 1] == 1.0 and out.sum() == 1.0


def test_area_downsampling_averages_blocks():
  x = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1)
  np.testing.assert_allclose(area_downsample(x, 2)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_bad_scales_and_losses_are_clear_errors():
  config = get_config()
  for scale, message in ((3, "power of 2"), (8, "does not divide image_size=28")):
    config.scale = scale
    with pytest.raises(ValueError, match=message):
      SuperResolutionTask(config, (28, 28, 1), np.zeros((8, 28, 28, 1), np.float32))
  config.scale, config.loss = 4, "l2"
  with pytest.raises(ValueError, match="Unknown config.loss 'l2'; use one of l1, mse"):
    SuperResolutionTask(config, (28, 28, 1), np.zeros((8, 28, 28, 1), np.float32))
  config.loss, config.perceptual_weight = "l1", 0.1
  with pytest.raises(ValueError, match="needs config.perceptual_classifier"):
    SuperResolutionTask(config, (28, 28, 1), np.zeros((8, 28, 28, 1), np.float32))


def test_padding_rows_do_not_turn_the_eval_sums_into_nan():
  """An eval batch's padding rows (mask 0) are constant images that bicubic
  up-sampling restores exactly (PSNR inf): they must count as 0, not NaN
  (a 1,000-image CIFAR-10 split in batches of 64 logged bicubic PSNR NaN)."""
  config = get_config()
  config.update(dict(features=8, num_blocks=1, scale=2))
  task = SuperResolutionTask(config, (8, 8, 1), np.zeros((2, 8, 8, 1), np.float32))
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  image = np.zeros((2, 8, 8, 1), np.float32)
  image[0] = np.random.default_rng(0).uniform(-1, 1, (8, 8, 1))
  sums = task.eval_step(state, {"image": jnp.asarray(image),
                                "mask": jnp.asarray([1.0, 0.0])}, jnp.int32(0))
  assert all(np.isfinite(float(v)) for v in sums.values()), sums
  assert float(sums["count"]) == 1.0


def _config(**overrides):
  config = get_config()
  config.update(dict(dataset="digits", batch_size=16, num_train_steps=4, features=8,
                     num_blocks=1, log_every_steps=2, sample_every_steps=4,
                     checkpoint_every_steps=2, eval_every_steps=4, eval_split="test[:40]"))
  config.update(overrides)
  return config


@pytest.mark.parametrize("adversarial", [0.0, 1e-2])
def test_superres_trains_evaluates_and_resumes_bitwise(tmp_path, adversarial):
  """Also with the SRGAN loss, whose discriminator is part of the state."""
  straight = superres.train_and_evaluate(_config(adversarial_weight=adversarial),
                                         str(tmp_path / "a"))
  superres.train_and_evaluate(_config(num_train_steps=2, adversarial_weight=adversarial),
                              str(tmp_path / "b"))
  resumed = superres.train_and_evaluate(_config(adversarial_weight=adversarial),
                                        str(tmp_path / "b"))
  assert (straight.state.d is None) == (not adversarial)
  assert (resumed.start_step, resumed.step) == (2, 4)
  for a, b in zip(jax.tree.leaves(jax.device_get(straight.state)),
                  jax.tree.leaves(jax.device_get(resumed.state))):
    np.testing.assert_array_equal(a, b)
  last = read_metrics(str(tmp_path / "a"))[-1]
  for key in ("eval_psnr", "eval_ssim", "eval_psnr_bicubic", "eval_ssim_bicubic"):
    assert np.isfinite(last[key]), key
  assert 0 < last["eval_ssim_bicubic"] < 1
  if adversarial:
    assert np.isfinite(last["d_loss"]) and np.isfinite(last["adversarial_loss"])
  import os
  assert os.path.exists(os.path.join(tmp_path, "a", "samples", "strips_step_0000004.png"))
