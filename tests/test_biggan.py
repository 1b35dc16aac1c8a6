"""BigGAN (jaxgan/models/biggan.py): parameter counts against the
architecture written out by hand, the hierarchical latent, self-attention
and the linear conditional BatchNorm against direct formulas, orthogonal
regularisation by hand, the truncation trick, and the preset end to end."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY_DCGAN
from experiments import gan as gan_experiment
from experiments.configs import gan as gan_configs
from jaxgan.evaluation.generators import generate
from jaxgan.gan import penalties
from jaxgan.models import biggan
from jaxgan.tasks.gan import GANTask
from jaxgan.writers import read_metrics

K = 10


def _count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _shapes(module, x, labels=None):
  kw = {} if labels is None else {"labels": labels}
  return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, train=False, **kw))


def test_cifar_configuration_parameter_counts_by_hand():
  """ch = 64 at 32x32, class-conditional: G 4,455,172 and D 4,289,282
  parameters for K = 10, counted from the architecture below."""
  c, z, cond = 256, 128, 128 + 32  # 4 * ch; z in 4 chunks of 32; [shared, chunk]
  conv = lambda i, o, k=3, bias=True: k * k * i * o + (o if bias else 0)
  attention = 2 * c * (c // 8) + c * (c // 2) + (c // 2) * c + 1  # theta, phi, g, o, gamma
  g_block = 2 * (2 * cond * c) + 2 * conv(c, c) + conv(c, c, 1)  # 2 CBN (gain, bias), convs
  want_g = (K * 128 + (32 * 16 * c + 16 * c) + 3 * g_block + attention + 2 * c
            + conv(c, 3))
  want_d = (conv(3, c) + conv(c, c) + conv(3, c, 1)  # optimized block
            + attention + 2 * conv(c, c) + conv(c, c, 1)  # down-sampling block
            + 4 * conv(c, c) + (c + 1) + K * c)  # two plain blocks, linear, projection
  assert (want_g, want_d) == (4_455_172, 4_289_282)
  g, d = biggan.make_biggan(32, 3, ngf=64, ndf=64, num_classes=K, conditional="projection")
  labels = jnp.zeros((2,), jnp.int32)
  g_vars = _shapes(g, jnp.zeros((2, z)), labels)
  d_vars = _shapes(d, jnp.zeros((2, 32, 32, 3)), labels)
  assert _count(g_vars["params"]) == want_g
  assert _count(d_vars["params"]) == want_d
  # Spectral normalisation everywhere but the embedding tables: u and sigma.
  assert "SpectralNorm" in str(jax.tree_util.tree_structure(g_vars["batch_stats"]))


@pytest.mark.parametrize("size, classes", [(32, K), (32, 0), (64, K), (64, 0)])
def test_shapes_at_both_resolutions(size, classes):
  conditional = "projection" if classes else ""
  g, d = biggan.make_biggan(size, 3, ngf=8, ndf=8, num_classes=K, conditional=conditional)
  z, labels = jnp.zeros((2, 120)), (jnp.array([1, 7]) if classes else None)
  kw = {"labels": labels} if classes else {}
  g_vars = _shapes(g, z, labels)
  x = jax.eval_shape(lambda v: g.apply(v, z, train=False, **kw), g_vars)
  assert x.shape == (2, size, size, 3)
  d_vars = _shapes(d, jnp.zeros(x.shape), labels)
  assert jax.eval_shape(lambda v: d.apply(v, jnp.zeros(x.shape), train=False, **kw),
                        d_vars).shape == (2,)
  assert ("shared_embedding" in g_vars["params"]) == bool(classes)
  # One self-attention block in each network, at 16x16 (32) or 32x32 (64).
  assert "SelfAttention_0" in g_vars["params"] and "SelfAttention_0" in d_vars["params"]


def test_size_and_option_errors():
  with pytest.raises(ValueError, match="BigGAN has configurations for image_size"):
    biggan.make_biggan(28, 1)
  with pytest.raises(ValueError, match="projection discriminator"):
    biggan.make_biggan(32, 3, num_classes=K, conditional="acgan")
  with pytest.raises(ValueError, match="latent_dim >= 4"):
    biggan.split_latent(jnp.zeros((1, 3)), 4)


def test_hierarchical_latent_chunks_cover_z_in_order():
  z = jnp.arange(2 * 130, dtype=jnp.float32).reshape(2, 130)
  chunks = biggan.split_latent(z, 4)
  assert [c.shape[1] for c in chunks] == [34, 32, 32, 32]
  np.testing.assert_array_equal(jnp.concatenate(chunks, axis=1), z)


def test_self_attention_equals_its_formula_and_starts_as_identity():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 16))
  block = biggan.SelfAttention(spectral_norm=False)
  params = block.init(jax.random.PRNGKey(1), x, train=False)["params"]
  np.testing.assert_array_equal(block.apply({"params": params}, x, train=False), x)
  params = {**params, "gamma": jnp.asarray(0.7)}
  kernel = lambda name: np.asarray(params[name]["kernel"][0, 0])  # [in, out]
  xs = np.asarray(x, np.float64)

  def pool(v):  # 2x2 max pooling of [B, H, W, C]
    b, h, w, c = v.shape
    return v.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

  theta = (xs @ kernel("theta")).reshape(2, 16, 2)
  phi = pool(xs @ kernel("phi")).reshape(2, 4, 2)
  g = pool(xs @ kernel("g")).reshape(2, 4, 8)
  logits = np.einsum("bqc,bkc->bqk", theta, phi)
  beta = np.exp(logits - logits.max(-1, keepdims=True))
  beta /= beta.sum(-1, keepdims=True)
  o = (np.einsum("bqk,bkc->bqc", beta, g).reshape(2, 4, 4, 8)) @ kernel("o")
  want = xs + 0.7 * o
  got = block.apply({"params": params}, x, train=False)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_linear_conditional_batchnorm_is_gain_and_bias_from_the_condition():
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 3, 3, 5)) * 2.0 + 1.0
  cond = jax.random.normal(jax.random.PRNGKey(1), (6, 4))
  bn = biggan.LinearConditionalBatchNorm(spectral_norm=False)
  variables = bn.init(jax.random.PRNGKey(2), x, cond, train=False)
  out, _ = bn.apply(variables, x, cond, train=True, mutable=["batch_stats"])
  xs = np.asarray(x, np.float64)
  normed = (xs - xs.mean((0, 1, 2))) / np.sqrt(xs.var((0, 1, 2)) + 1e-5)
  p = variables["params"]
  gain = 1.0 + np.asarray(cond) @ np.asarray(p["gain"]["kernel"])
  bias = np.asarray(cond) @ np.asarray(p["bias"]["kernel"])
  want = normed * gain[:, None, None, :] + bias[:, None, None, :]
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
  # A zero condition is plain (scale-free) BatchNorm.
  zero, _ = bn.apply(variables, x, jnp.zeros_like(cond), train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(zero, normed, rtol=1e-4, atol=1e-4)


def test_orthogonal_penalty_by_hand():
  # W [fan_in 2, filters 2] = [[1, 1], [0, 1]]: W^T W = [[1, 1], [1, 2]];
  # the off-diagonal entries 1 and 1 give 2. Orthogonal filters give 0 at any
  # norm; an embedding table (not a `kernel`) is left out.
  params = {"a": {"kernel": jnp.array([[1.0, 1.0], [0.0, 1.0]])},
            "b": {"kernel": jnp.array([[3.0, 0.0], [0.0, -2.0]]),
                  "bias": jnp.ones((2,))},
            "shared_embedding": jnp.ones((4, 4))}
  assert float(penalties.orthogonal_penalty(params)) == pytest.approx(2.0)
  # A conv kernel [kh, kw, in, out] is reshaped to [kh * kw * in, out].
  conv = jnp.arange(2 * 2 * 1 * 3, dtype=jnp.float32).reshape(2, 2, 1, 3)
  w = np.asarray(conv).reshape(4, 3)
  gram = w.T @ w
  want = np.sum((gram * (1 - np.eye(3))) ** 2)
  assert float(penalties.orthogonal_penalty({"c": {"kernel": conv}})) == pytest.approx(want)


class _LatentSampler:
  """A Sampler whose 'images' are its latents: what `generate` draws."""
  image_shape, num_classes, ema_decay, generator, objective = (1, 1, 3), 0, 0.0, None, None
  truncation = "latent"

  def __init__(self, latent_dim, g_latent_dim):
    self.latent_dim, self.g_latent_dim = latent_dim, g_latent_dim
    self.sample_jit = jax.jit(lambda state, z, labels=None, psi=None: z)


def test_truncation_bounds_the_generators_latent_only():
  plain = generate(_LatentSampler(5, 4), {}, 600, seed=3)
  assert np.abs(plain).max() > 2.0  # N(0, 1) at 3,000 draws
  cut = generate(_LatentSampler(5, 4), {}, 600, seed=3, truncation=0.5)
  assert np.abs(cut[:, 1:]).max() <= 0.5 and np.std(cut[:, 1:]) > 0.2
  # The first coordinate (a self-conditioned generator's cluster) is untouched.
  np.testing.assert_array_equal(cut[:, 0], plain[:, 0])
  np.testing.assert_array_equal(generate(_LatentSampler(5, 4), {}, 600, seed=3), plain)
  with pytest.raises(ValueError, match="truncation threshold must be > 0"):
    generate(_LatentSampler(5, 4), {}, 8, seed=3, truncation=0.0)


def test_preset_trains_end_to_end_with_its_regulariser(tmp_path):
  """The biggan preset, narrowed, trains on digits resized to 32x32: finite
  losses, the orthogonal penalty logged, an evaluation and a grid."""
  config = gan_configs.get_config("biggan")
  fields = {**TINY_DCGAN, "dataset": "digits", "image_size": 32, "ngf": 4, "ndf": 4,
            "batch_size": 8, "n_critic": 1, "num_train_steps": 2, "log_every_steps": 1,
            "sample_every_steps": 2, "checkpoint_every_steps": 2, "eval_every_steps": 2,
            "eval_split": "test[:16]", "num_sample_images": 10}
  config.update(fields)
  result = gan_experiment.train_and_evaluate(config, str(tmp_path))
  records = read_metrics(str(tmp_path))
  assert [r["step"] for r in records] == [1, 2]
  for r in records:
    assert all(np.isfinite(v) for v in r.values() if isinstance(v, float)), r
    assert r["g_orthogonal"] > 0
  assert np.isfinite(records[-1]["eval_d_loss"])
  assert "shared_embedding" in result.state.g.params


def test_orthogonal_regulariser_changes_only_the_generator_update():
  """With beta > 0 the step's G parameters differ from beta = 0 (the
  regulariser is model-agnostic: a tiny DCGAN keeps this fast); D's are the
  same, and the logged penalty is R of the step's G."""
  base = gan_configs.get_config("dcgan")
  base.update(dict(TINY_DCGAN, batch_size=4))
  shape = (base.image_size, base.image_size, 1)
  batch = {"image": jnp.zeros((4, *shape))}
  out = {}
  for beta in (0.0, 1e-2):
    config = base.copy_and_resolve_references()
    config.g_orthogonal_reg = beta
    task = GANTask(config, shape)
    state = task.init_state(jax.random.PRNGKey(0))
    out[beta] = (state, *jax.jit(task.train_step)(state, batch))
  (_, s0, m0), (start, s1, m1) = out[0.0], out[1e-2]
  assert "g_orthogonal" not in m0
  assert float(m1["g_orthogonal"]) == pytest.approx(
      float(penalties.orthogonal_penalty(start.g.params)), rel=1e-5)
  for a, b in zip(jax.tree.leaves(s0.d.params), jax.tree.leaves(s1.d.params)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(s0.g.params),
                                                      jax.tree.leaves(s1.g.params)))
