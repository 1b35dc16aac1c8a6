"""Shapes and ranges of every model."""

import jax
import jax.numpy as jnp
import pytest

from conftest import normal, random_init
from jaxgan.models.dcgan import (Discriminator, Generator, MnistDiscriminator,
                                 MnistGenerator, make_dcgan)


@pytest.mark.parametrize("size,channels", [(28, 1), (28, 3), (32, 3), (32, 1), (64, 3)])
def test_generator_and_discriminator_shapes(size, channels):
  g, d = make_dcgan(size, channels, ngf=8, ndf=8)
  assert isinstance(g, MnistGenerator if size == 28 else Generator)
  assert isinstance(d, MnistDiscriminator if size == 28 else Discriminator)
  z = normal((3, 100))
  g_vars = random_init(g, z, train=False, seed=1)
  d_vars = random_init(d, jnp.zeros((3, size, size, channels)), train=False, seed=2)

  @jax.jit
  def run(z):
    train_images, _ = g.apply(g_vars, z, train=True, mutable=["batch_stats"])
    images = g.apply(g_vars, z, train=False)
    return train_images, images, d.apply(d_vars, images, train=False)

  train_images, images, logits = run(z)
  for x in (train_images, images):
    assert x.shape == (3, size, size, channels)
    assert float(jnp.max(jnp.abs(x))) <= 1.0  # tanh output
  assert logits.shape == (3,) and logits.dtype == jnp.float32


def test_radford_layers_follow_pytorch_examples():
  """64x64: ngf*8 at 4x4, then 4 stride-2 up-convolutions to 64x64; N(0, 0.02) init."""
  g = Generator(image_size=64, channels=3)
  init = lambda z: g.init(jax.random.key(0), z, train=False)["params"]
  z = jnp.zeros((1, 100))
  params = jax.eval_shape(init, z)
  kernels = [params[f"ConvTranspose_{i}"]["kernel"] for i in range(5)]
  assert [k.shape for k in kernels] == [(4, 4, 100, 512), (4, 4, 512, 256), (4, 4, 256, 128),
                                        (4, 4, 128, 64), (4, 4, 64, 3)]
  # One kernel's values (XLA drops the other initializers from the program).
  kernel = jax.jit(lambda z: init(z)["ConvTranspose_1"]["kernel"])(z)
  assert abs(float(jnp.std(kernel)) - 0.02) < 0.002 and abs(float(jnp.mean(kernel))) < 0.001
  d = Discriminator(image_size=64)
  dparams = jax.eval_shape(lambda x: d.init(jax.random.key(0), x, train=False),
                           jnp.zeros((1, 64, 64, 3)))["params"]
  assert [dparams[f"Conv_{i}"]["kernel"].shape[-1] for i in range(5)] == [64, 128, 256, 512, 1]


def test_mnist_generator_follows_the_seeds():
  params = jax.eval_shape(lambda z: MnistGenerator().init(jax.random.key(0), z, train=False),
                          jnp.zeros((1, 100)))["params"]
  assert params["Dense_0"]["kernel"].shape == (100, 7 * 7 * 256)
  assert [params[f"ConvTranspose_{i}"]["kernel"].shape[-1] for i in range(3)] == [128, 64, 1]
  dparams = jax.eval_shape(lambda x: MnistDiscriminator().init(jax.random.key(0), x, train=False),
                           jnp.zeros((1, 28, 28, 1)))["params"]
  assert [dparams[f"Conv_{i}"]["kernel"].shape[-1] for i in range(2)] == [64, 128]


def test_mnist_model_takes_the_width_fields():
  """ngf / ndf scale the 28x28 model's widths (they were ignored there once)."""
  g, d = make_dcgan(28, 1, ngf=32, ndf=16)
  params = jax.eval_shape(lambda z: g.init(jax.random.key(0), z, train=False),
                          jnp.zeros((1, 100)))["params"]
  assert params["Dense_0"]["kernel"].shape == (100, 7 * 7 * 128)
  assert [params[f"ConvTranspose_{i}"]["kernel"].shape[-1] for i in range(3)] == [64, 32, 1]
  dparams = jax.eval_shape(lambda x: d.init(jax.random.key(0), x, train=False),
                           jnp.zeros((1, 28, 28, 1)))["params"]
  assert [dparams[f"Conv_{i}"]["kernel"].shape[-1] for i in range(2)] == [16, 32]
  assert dparams["Dense_0"]["kernel"].shape == (7 * 7 * 32, 1)


def test_dropout_only_in_training():
  d = MnistDiscriminator()
  x = normal((4, 28, 28, 1))
  v = random_init(d, x, train=False, seed=1)
  assert jnp.array_equal(d.apply(v, x, train=False), d.apply(v, x, train=False))
  a = d.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)})
  b = d.apply(v, x, train=True, rngs={"dropout": jax.random.key(3)})
  assert not jnp.allclose(a, b)


def test_unsupported_image_size_is_a_clear_error():
  with pytest.raises(ValueError, match="image_size"):
    jax.eval_shape(lambda: make_dcgan(48, 3)[0].init(jax.random.key(0), jnp.zeros((1, 100)),
                                                     train=False))
