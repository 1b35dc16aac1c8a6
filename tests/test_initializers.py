"""jaxgan's initializers and flat draws give jax.nn.initializers' and
jax.random's values bit for bit, and every model's `init` and every task's
step draws its random numbers flat (the form XLA compiles fast)."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import flat_random
from jaxgan.models import initializers
from jaxgan.models.registry import make_classifier
from jaxgan.models.dcgan import make_dcgan
from jaxgan.models.registry import make_vae

J = jax.nn.initializers


def test_values_equal_jax_initializers():
  pairs = [  # (jaxgan's, jax's, shape): a conv kernel, a 1-D conv kernel, a dense kernel
      (initializers.lecun_normal(), J.lecun_normal(), (2, 3, 4, 5)),
      (initializers.variance_scaling(2.0, "fan_out", "normal"),
       J.variance_scaling(2.0, "fan_out", "normal"), (3, 5, 7)),
      (initializers.variance_scaling(1.0, "fan_avg", "uniform"), J.glorot_uniform(), (9, 6)),
      (initializers.normal(0.02), J.normal(0.02), (2, 3, 4, 5)),
      (initializers.normal(0.02, mean=1.0), lambda k, s: 1.0 + J.normal(0.02)(k, s), (7,)),
      (lambda k, s: flat_random.bernoulli(k, jnp.linspace(0, 1, 60).reshape(s)),
       lambda k, s: jax.random.bernoulli(k, jnp.linspace(0, 1, 60).reshape(s)), (2, 3, 10, 1)),
  ]
  key = jax.random.key(3)
  # One program each side: compiling the reference's shaped draws is the slow part.
  draws = jax.jit(lambda key: [(f(jax.random.fold_in(key, i), s),
                                g(jax.random.fold_in(key, i), s))
                               for i, (f, g, s) in enumerate(pairs)])(key)
  for (_, _, shape), (a, b) in zip(pairs, draws):
    assert a.shape == b.shape == shape and a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.std(a)) > 0
  # Same draws in another dtype.
  a = initializers.lecun_normal()(key, (3, 4), jnp.bfloat16)
  b = J.lecun_normal()(key, (3, 4), jnp.bfloat16)
  assert a.dtype == jnp.bfloat16 and np.array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(ValueError, match="rank >= 2"):
    initializers.lecun_normal()(key, (5,))


def _draw_shapes(jaxpr) -> list[tuple[int, ...]]:
  """Shapes of every random_bits draw in a jaxpr, nested programs included."""
  shapes = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "random_bits":
      shapes.append(tuple(eqn.params["shape"]))
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      shapes += _draw_shapes(sub)
  return shapes


def _models():
  g, d = make_dcgan(28, 1)
  yield "mnist_generator", g, (jnp.zeros((1, 100)),)
  yield "mnist_discriminator", d, (jnp.zeros((1, 28, 28, 1)),)
  g, d = make_dcgan(32, 3)
  yield "radford_generator", g, (jnp.zeros((1, 100)),)
  yield "radford_discriminator", d, (jnp.zeros((1, 32, 32, 3)),)
  for name in ("conv", "mlp"):
    yield f"vae_{name}", make_vae(name, (28, 28, 1), 8, 1, 8), (jnp.zeros((1, 28, 28, 1)),
                                                                 jax.random.key(1))
  yield "vae_resnet_pixel", make_vae("resnet_pixel", (28, 28, 1), 49, 2, 8), (
      jnp.zeros((1, 28, 28, 1)), jax.random.key(1))
  for name in ("small_cnn", "lenet5", "resnet20", "resnet18", "fast_cnn"):
    yield name, make_classifier(name, 10), (jnp.zeros((1, 28, 28, 1)),)


@pytest.mark.parametrize("name,model,args", list(_models()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_every_model_draws_its_parameters_flat(name, model, args):
  """A layer left on flax's default initializer (e.g. a plain nn.Dense) would
  draw a rank-2 or rank-4 array here, and compile ~10x slower."""
  jaxpr = jax.make_jaxpr(lambda key: model.init(key, *args, train=False))(jax.random.key(0))
  shapes = _draw_shapes(jaxpr.jaxpr)
  assert shapes, name
  assert all(len(s) == 1 for s in shapes), (name, shapes)


def test_gan_and_vae_steps_draw_flat():
  from experiments.configs.dcgan import get_config as dcgan_config
  from experiments.configs.vae import get_config as vae_config
  from jaxgan.tasks.gan import GANTask
  from jaxgan.tasks.vae import VAETask
  batch = {"image": jnp.zeros((4, 28, 28, 1)), "mask": jnp.ones((4,))}
  for task in (GANTask(dcgan_config(), (28, 28, 1)),
               VAETask(vae_config(), (28, 28, 1), np.zeros((4, 28, 28, 1), np.float32))):
    state = jax.eval_shape(task.init_state, jax.random.key(0))
    for step in (task.train_step, lambda s, b: task.eval_step(s, b, 0)):
      shapes = _draw_shapes(jax.make_jaxpr(step)(state, batch).jaxpr)
      assert all(len(s) == 1 for s in shapes), (type(task).__name__, shapes)
