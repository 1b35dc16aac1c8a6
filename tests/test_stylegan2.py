"""StyleGAN2 (jaxgan/models/stylegan2.py): the modulated convolution against
the per-sample convolution with the modulated kernel, equalized learning
rate, the path length penalty against an explicit Jacobian, minibatch std and
the resampling filters by hand, parameter counts against the architecture
written out, the truncation trick, and the presets end to end (stylegan2_ada
resumes bitwise with p in the state)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_resumes_bitwise
from experiments import gan as gan_experiment
from experiments.configs import gan as gan_configs
from jaxgan.evaluation.generators import generate
from jaxgan.models import stylegan2 as sg
from jaxgan.models.registry import make_gan
from jaxgan.tasks.gan import GANTask
from jaxgan.writers import read_metrics


def _count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def test_modulated_conv_is_the_per_sample_conv_with_the_modulated_kernel():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(k1, (3, 6, 5, 4))
  kernel = jax.random.normal(k2, (3, 3, 4, 7)) / 6.0
  styles = jax.random.uniform(k3, (3, 4), minval=0.2, maxval=2.0)
  got = sg.modulated_conv(x, kernel, styles, demodulate=True)
  for b in range(3):
    w = np.asarray(kernel, np.float64) * np.asarray(styles[b], np.float64)[None, None, :, None]
    w = w / np.sqrt(np.sum(w * w, axis=(0, 1, 2), keepdims=True) + 1e-8)
    want = jax.lax.conv_general_dilated(
        jnp.asarray(x[b:b + 1], jnp.float32), jnp.asarray(w, jnp.float32), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")
    np.testing.assert_allclose(got[b:b + 1], want, rtol=2e-4, atol=2e-5)
  plain = sg.modulated_conv(x, kernel, styles, demodulate=False)
  want = jax.lax.conv_general_dilated(x * styles[:, None, None, :], kernel, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision="highest")
  np.testing.assert_allclose(plain, want, rtol=2e-4, atol=2e-5)


def test_demodulated_outputs_have_unit_variance_for_unit_inputs():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
  x = jax.random.normal(k1, (8, 32, 32, 64))
  kernel = jax.random.normal(k2, (3, 3, 64, 32))
  styles = jax.random.uniform(k3, (8, 64), minval=0.1, maxval=3.0)
  y = sg.modulated_conv(x, kernel, styles)[:, 1:-1, 1:-1]  # away from the zero padding
  assert float(jnp.std(y)) == pytest.approx(1.0, abs=0.03)
  # Without demodulation the scale follows the styles.
  assert float(jnp.std(sg.modulated_conv(x, kernel, styles, demodulate=False))) > 5.0


def test_equalized_learning_rate_scales_at_run_time():
  x = jax.random.normal(jax.random.PRNGKey(0), (4096, 50))
  for lr in (1.0, 0.01):
    layer = sg.EqualDense(30, lr_multiplier=lr, bias_init=0.5)
    params = layer.init(jax.random.PRNGKey(1), x)["params"]
    # Stored N(0, 1 / lr^2) and bias_init / lr: the optimizer's steps act
    # lr times more slowly on the layer's function.
    assert float(jnp.std(params["kernel"])) == pytest.approx(1.0 / lr, rel=0.05)
    np.testing.assert_allclose(params["bias"], 0.5 / lr, rtol=1e-6)
    y = layer.apply({"params": params}, x)
    want = x @ (params["kernel"] * lr / math.sqrt(50)) + params["bias"] * lr
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    # Unit inputs give about unit-variance outputs (about the bias), whatever lr.
    assert float(jnp.std(y - 0.5)) == pytest.approx(1.0, abs=0.05)
  conv = sg.EqualConv(8, 3, activation=False)
  xs = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 5, 6))
  params = conv.init(jax.random.PRNGKey(3), xs)["params"]
  want = jax.lax.conv_general_dilated(xs, params["kernel"] / math.sqrt(54), (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision="highest")
  np.testing.assert_allclose(conv.apply({"params": params}, xs), want, rtol=1e-4, atol=1e-5)


def test_resampling_filters_by_hand():
  x = jnp.arange(4.0).reshape(1, 4, 1, 1) * jnp.ones((1, 1, 2, 1))
  up = sg.upsample2(x)[0, :, 0, 0]
  # [1, 3, 3, 1] / 4 per phase: 0.25 * neighbour + 0.75 * self, edges replicated.
  np.testing.assert_allclose(up, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
  down = sg.downsample2(jnp.arange(8.0).reshape(1, 8, 1, 1) * jnp.ones((1, 1, 2, 1)))
  # [1, 3, 3, 1] / 8 at stride 2 over [0 (edge), 0, 1, 2], [1, 2, 3, 4], ...
  np.testing.assert_allclose(down[0, :, 0, 0], [(0 + 0 + 3 + 2) / 8, 2.5, 4.5,
                                                (5 + 18 + 21 + 7) / 8])
  # A constant image stays constant both ways.
  c = jnp.full((1, 8, 8, 3), 0.7)
  np.testing.assert_allclose(sg.upsample2(c), 0.7, rtol=1e-6)
  np.testing.assert_allclose(sg.downsample2(c), 0.7, rtol=1e-6)


def test_minibatch_std_by_hand():
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 2, 2, 3))
  out = sg.minibatch_std(x, group_size=4)
  assert out.shape == (8, 2, 2, 4)
  np.testing.assert_array_equal(out[..., :3], x)
  xs = np.asarray(x, np.float64)
  for i in range(8):  # sample i is in group i mod 2: samples i, i + 2, i + 4, i + 6
    members = xs[i % 2::2]
    want = np.mean(np.sqrt(np.var(members, axis=0) + 1e-8))
    np.testing.assert_allclose(out[i, :, :, 3], want, rtol=1e-5)


def test_minibatch_std_group_reaches_the_discriminator():
  """model_options mbstd_group: with one group per batch (8 of 8) D's outputs
  follow any reordering of the batch; with groups of 4 (samples i, i + 2,
  ...) swapping samples 0 and 1 regroups them and changes other outputs.
  The ADA preset uses the paper's CIFAR-10 groups of 32."""
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 8, 8, 3))
  perm = np.array([1, 0, 2, 3, 4, 5, 6, 7])
  outs = {}
  for group in (8, 4):
    _, d = make_gan("stylegan2", 8, 3, ngf=8, ndf=8, d_normalization=None, spectral_norm=False,
                    num_classes=0, conditional="", mbstd_group=group)
    assert d.mbstd_group == group
    variables = d.init(jax.random.PRNGKey(1), x, train=False)
    out = np.asarray(d.apply(variables, x, train=False))
    outs[group] = (out, np.asarray(d.apply(variables, x[perm], train=False)))
  np.testing.assert_allclose(outs[8][1], outs[8][0][perm], rtol=1e-5, atol=1e-6)
  assert np.abs(outs[4][1][2:] - outs[4][0][perm][2:]).max() > 1e-4
  assert gan_configs.get_config("stylegan2_ada").model_options.mbstd_group == 32
  with pytest.raises(ValueError, match="mbstd_group"):
    make_gan("stylegan2", 8, 3, ngf=8, ndf=8, d_normalization=None, spectral_norm=False,
             num_classes=0, conditional="", mbstd_group=0)
  # A batch neither smaller than the group nor a multiple of it stops the run early.
  with pytest.raises(ValueError, match="minibatch-std group"):
    GANTask(_with_batch(40), (8, 8, 1))
  GANTask(_with_batch(12), (8, 8, 1))  # one group of 12


def _with_batch(batch):
  config = _tiny_preset("stylegan2_ada")
  config.batch_size = batch
  return config


def _tiny(size=8, classes=0, mixing=0.0):
  return make_gan("stylegan2", size, 3, ngf=8, ndf=8, d_normalization=None,
                  spectral_norm=False, num_classes=classes,
                  conditional="projection" if classes else "", mapping_layers=2,
                  style_mixing=mixing)


def _noisy(variables, strength=1.0):
  """Noise strengths moved away from 0, so the noise inputs matter."""
  return jax.tree_util.tree_map_with_path(
      lambda p, v: v + strength if "noise_strength" in jax.tree_util.keystr(p) else v,
      variables)


def test_path_length_penalty_against_the_explicit_jacobian():
  g, _ = _tiny()
  z = jax.random.normal(jax.random.PRNGKey(0), (2, 8))
  variables = g.init(jax.random.PRNGKey(1), z, train=False)
  variables = _noisy(variables, 0.3)
  key = jax.random.PRNGKey(2)
  penalty, (new_mean, mean_length) = sg.path_length_penalty(g, variables, z, None,
                                                            jnp.asarray(0.5), key)
  # Independently: the same ws and y (same keys), the full Jacobian.
  k_noise, k_y = jax.random.split(key)
  ws = g.apply(variables, z, True, None, method=sg.StyleGAN2Generator.ws,
               rngs={"noise": k_noise}, mutable=["batch_stats"])[0]
  y = jax.random.normal(k_y, (2, 8, 8, 3)) / math.sqrt(64)
  synth = lambda w: g.apply(variables, w, True, method=sg.StyleGAN2Generator.synthesize,
                            rngs={"noise": k_noise}, mutable=["batch_stats"])[0]
  jac = jax.jacfwd(synth)(ws)  # [2, 8, 8, 3, 2, num_ws, w_dim]
  jty = np.einsum("bhwc,bhwcxnd->bxnd", np.asarray(y, np.float64), np.asarray(jac, np.float64))
  jty = np.stack([jty[b, b] for b in range(2)])  # images depend only on their own ws
  lengths = np.sqrt(np.mean(np.sum(jty ** 2, axis=2), axis=1))
  want_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
  np.testing.assert_allclose(new_mean, want_mean, rtol=1e-4)
  np.testing.assert_allclose(mean_length, lengths.mean(), rtol=1e-4)
  np.testing.assert_allclose(penalty, np.mean((lengths - want_mean) ** 2), rtol=1e-3)


def test_parameter_counts_by_hand_and_the_ada_cifar_configuration():
  """ngf = ndf = c at 32x32 (c channels everywhere), z = w = d, mapping of L
  layers; conditional adds the label embedding and widens the first mapping
  layer. At the ADA paper's CIFAR-10 widths (c = 512, d = 512, L = 2): G
  19,947,539 and D 21,507,073 parameters unconditional."""
  def want_g(c, d, layers, k=0):
    synthesis_layer = (d * c + c) + 9 * c * c + 1 + c  # affine, kernel, noise strength, bias
    torgb = (d * c + c) + c * 3 + 3
    mapping = layers * (d * d + d) + (k * d + d + d * d if k else 0)
    return mapping + 16 * c + 7 * synthesis_layer + 4 * torgb

  def want_d(c, k=0):
    block = c * c + 2 * (9 * c * c + c)
    return (3 * c + c) + 3 * block + (9 * (c + 1) * c + c) + (16 * c * c + c) + (c + 1) + k * c

  assert (want_g(512, 512, 2), want_d(512)) == (19_947_539, 21_507_073)
  for classes in (0, 10):
    g, d = make_gan("stylegan2", 32, 3, ngf=16, ndf=16, d_normalization=None,
                    spectral_norm=False, num_classes=classes,
                    conditional="projection" if classes else "", mapping_layers=3)
    labels = jnp.zeros((4,), jnp.int32) if classes else None
    kw = {"labels": labels} if classes else {}
    g_vars = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((4, 24)),
                                           train=False, **kw))
    d_vars = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((4, 32, 32, 3)),
                                           train=False, **kw))
    assert _count(g_vars["params"]) == want_g(16, 24, 3, classes)
    assert _count(d_vars["params"]) == want_d(16, classes)
    assert sg.num_ws(32) == 8


def test_shapes_sizes_widths_and_errors():
  assert [sg.channels_at(r, 512) for r in (4, 32, 64, 128)] == [512, 512, 256, 128]
  g, d = _tiny(16, classes=10)
  z, labels = jnp.zeros((4, 16)), jnp.arange(4)
  g_vars = g.init(jax.random.PRNGKey(0), z, train=False, labels=labels)
  x = g.apply(g_vars, z, train=False, labels=labels)
  assert x.shape == (4, 16, 16, 3) and float(jnp.max(jnp.abs(x))) <= 1.0
  d_vars = d.init(jax.random.PRNGKey(0), x, train=False, labels=labels)
  assert d.apply(d_vars, x, train=False, labels=labels).shape == (4,)
  with pytest.raises(ValueError, match="power-of-two image_size"):
    _tiny(28)
  with pytest.raises(ValueError, match="not spectral normalisation"):
    make_gan("stylegan2", 32, 3, ngf=8, ndf=8, d_normalization=None, spectral_norm=True,
             num_classes=0, conditional="")
  with pytest.raises(ValueError, match="model_options zoom not known to model 'stylegan2'; "
                     "it takes mapping_layers, style_mixing"):
    make_gan("stylegan2", 32, 3, ngf=8, ndf=8, d_normalization=None, spectral_norm=False,
             num_classes=0, conditional="", zoom=2)
  with pytest.raises(ValueError, match="model_options mapping_layers not known to model "
                     "'dcgan'"):
    make_gan("dcgan", 32, 3, ngf=8, ndf=8, d_normalization=None, spectral_norm=False,
             num_classes=0, conditional="", mapping_layers=2)


def test_each_layer_takes_the_papers_w():
  """8x8: 4x4 conv1 w0, its ToRGB w1; 8x8 conv0 w1, conv1 w2, ToRGB w3. A
  change of w_j changes exactly the layers that take it (and those after)."""
  g, _ = _tiny()
  z = jax.random.normal(jax.random.PRNGKey(0), (2, 16))
  variables = g.init(jax.random.PRNGKey(1), z, train=False)
  ws = g.apply(variables, z, False, None, method=sg.StyleGAN2Generator.ws)
  assert ws.shape == (2, sg.num_ws(8), 16) and sg.num_ws(8) == 4

  def layers(w):
    _, state = g.apply(variables, w, False, sg.latent_keys(z),
                       method=sg.StyleGAN2Generator.synthesize,
                       capture_intermediates=True)
    inter = state["intermediates"]["synthesis"]
    names = ("b4_conv1", "b4_torgb", "b8_conv0", "b8_conv1", "b8_torgb")
    return {n: np.asarray(inter[n]["__call__"][0]) for n in names}

  base = layers(ws)
  changed = {}
  for j in range(4):
    out = layers(ws.at[:, j].add(1.0))
    changed[j] = {n for n in base if not np.allclose(out[n], base[n])}
  assert changed == {0: {"b4_conv1", "b4_torgb", "b8_conv0", "b8_conv1", "b8_torgb"},
                     1: {"b4_torgb", "b8_conv0", "b8_conv1", "b8_torgb"},
                     2: {"b8_conv1", "b8_torgb"}, 3: {"b8_torgb"}}


def test_style_mixing_noise_and_the_running_mean_of_w():
  g, _ = _tiny(mixing=1.0)
  z = jax.random.normal(jax.random.PRNGKey(0), (64, 16))
  variables = g.init(jax.random.PRNGKey(1), z, train=False)
  ws, stats = g.apply(variables, z, True, None, method=sg.StyleGAN2Generator.ws,
                      rngs={"noise": jax.random.PRNGKey(2)}, mutable=["batch_stats"])
  # With probability 1 every sample's ws switch to another w after a cut-off
  # in [1, num_ws): the first w is its own, the last another.
  w = g.apply(variables, z, False, None, method=sg.StyleGAN2Generator.ws)
  np.testing.assert_allclose(ws[:, 0], w[:, 0], rtol=1e-6)
  assert not np.allclose(ws[:, -1], w[:, -1])
  # w_avg moved from 0 towards the batch mean by 1 - 0.995.
  np.testing.assert_allclose(stats["batch_stats"]["mapping"]["w_avg"],
                             0.005 * jnp.mean(w[:, 0], axis=0), rtol=1e-4, atol=1e-7)
  # Evaluation is deterministic, training draws new noise.
  a = g.apply(variables, z[:4], train=False)
  np.testing.assert_array_equal(a, g.apply(variables, z[:4], train=False))
  train = lambda k: g.apply(variables, z[:4], train=True, rngs={"noise": k},
                            mutable=["batch_stats"])[0]
  variables = _noisy(variables)
  assert not np.allclose(train(jax.random.PRNGKey(3)), train(jax.random.PRNGKey(4)))


def test_latent_keys_depend_on_each_row_alone():
  z = jax.random.normal(jax.random.PRNGKey(0), (5, 16))
  keys = np.asarray(sg.latent_keys(z))
  assert keys.shape == (5, 2) and len({tuple(k) for k in keys}) == 5
  np.testing.assert_array_equal(keys[3], sg.latent_keys(z[3:4])[0])
  np.testing.assert_array_equal(keys[::-1], sg.latent_keys(z[::-1]))
  # One coordinate one float step away is another key.
  nudged = z.at[2, 7].set(jnp.nextafter(z[2, 7], jnp.inf))
  assert tuple(np.asarray(sg.latent_keys(nudged))[2]) != tuple(keys[2])


def test_noise_modes_outside_training():
  """"random": each sample's noise drawn from its key, layer i from
  fold_in(key, i) (checked by handing the same images to "const" as its
  fixed noise), so a sample is a function of its z wherever it sits;
  "const": one noise image for all; "none": no noise."""
  g, _ = _tiny()
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))
  variables = _noisy(g.init(jax.random.PRNGKey(1), z, train=False))
  ws = g.apply(variables, z, False, method=sg.StyleGAN2Generator.ws)
  same_ws = jnp.broadcast_to(ws[:1], ws.shape)
  synth = lambda mode, v, w, keys=None: g.clone(noise_mode=mode).apply(
      v, w, False, keys, method=sg.StyleGAN2Generator.synthesize)
  keys = jax.random.split(jax.random.PRNGKey(2), 4)
  random = synth("random", variables, same_ws, keys)
  assert all(not np.allclose(random[0], random[i], atol=1e-3) for i in (1, 2, 3))
  const = synth("const", variables, same_ws)
  np.testing.assert_allclose(const, jnp.broadcast_to(const[:1], const.shape), atol=1e-6)
  # Row 1's noise, layer by layer, given to "const" as its fixed noise.
  layers = ["b4_conv1", "b8_conv0", "b8_conv1"]
  stats = variables["batch_stats"]["synthesis"]
  assert sorted(k for k in stats if "noise_const" in stats[k]) == layers
  sized = {n: stats[n]["noise_const"].shape for n in layers}
  row1 = {n: {"noise_const": jax.random.normal(jax.random.fold_in(keys[1], i), sized[n])}
          for i, n in enumerate(layers)}
  as_const = {**variables, "batch_stats": {**variables["batch_stats"], "synthesis": row1}}
  np.testing.assert_allclose(synth("const", as_const, same_ws[:1]), random[1:2], atol=1e-5)
  silent = {n: {"noise_const": jnp.zeros(sized[n])} for n in layers}
  silent = {**variables, "batch_stats": {**variables["batch_stats"], "synthesis": silent}}
  np.testing.assert_allclose(synth("none", variables, ws), synth("const", silent, ws),
                             atol=1e-6)
  # Through the generator: the default is "random", keyed by z's rows.
  images = g.apply(variables, z, train=False)
  assert g.noise_mode == "random"
  for i in range(4):
    np.testing.assert_allclose(images[i], g.apply(variables, z[i:i + 1], train=False)[0],
                               atol=1e-5)
  np.testing.assert_allclose(images[::-1], g.apply(variables, z[::-1], train=False),
                             atol=1e-5)
  assert not np.allclose(images, g.clone(noise_mode="const").apply(variables, z, train=False),
                         atol=1e-3)
  with pytest.raises(ValueError, match="needs one noise key per sample"):
    synth("random", variables, ws)
  with pytest.raises(ValueError, match="noise_mode must be one of random, const, none; "
                     "got 'fresh'"):
    make_gan("stylegan2", 8, 3, ngf=8, ndf=8, d_normalization=None, spectral_norm=False,
             num_classes=0, conditional="", noise_mode="fresh")


def test_evaluation_samples_get_noise_per_sample_on_any_number_of_devices():
  """`generate` on a run whose noise matters: the samples differ with
  noise_mode (the preset's "random" against "const"), and are the same on 1
  device and on 8 (one sample each)."""
  from jaxgan import sharding
  config = _tiny_preset("stylegan2")
  task = GANTask(config, (8, 8, 1))
  state = task.init_state(jax.random.PRNGKey(0))
  state = state.replace(g_ema=_noisy(state.g_ema, 0.5))
  one = sharding.make_mesh(jax.devices()[:1])
  eight = generate(task, state, 8, seed=0)
  np.testing.assert_allclose(eight, generate(task, state, 8, seed=0, mesh=one), atol=1e-5)
  config.model_options.noise_mode = "const"
  const_task = GANTask(config, (8, 8, 1))
  assert not np.allclose(eight, generate(const_task, state, 8, seed=0), atol=1e-3)


def test_truncation_psi_pulls_w_to_its_mean():
  g, _ = _tiny()
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))
  variables = g.init(jax.random.PRNGKey(1), z, train=False)
  w_avg = jnp.linspace(-1, 1, 16)
  variables = {**variables, "batch_stats": {**variables["batch_stats"],
                                            "mapping": {"w_avg": w_avg}}}
  ws = g.apply(variables, z, False, None, method=sg.StyleGAN2Generator.ws)
  half = g.clone(truncation_psi=0.5).apply(variables, z, False, None,
                                           method=sg.StyleGAN2Generator.ws)
  np.testing.assert_allclose(half, w_avg + 0.5 * (ws - w_avg), rtol=1e-5, atol=1e-6)
  zero = g.clone(truncation_psi=0.0).apply(variables, z, train=False)
  # psi = 0: every sample is the image of w_avg.
  np.testing.assert_allclose(zero, jnp.broadcast_to(zero[:1], zero.shape), atol=1e-5)


def _tiny_preset(preset, **overrides):
  config = gan_configs.get_config(preset)
  config.update(dict(dataset="digits", image_size=8, ngf=8, ndf=8, latent_dim=16,
                     batch_size=8, num_train_steps=4, log_every_steps=1,
                     sample_every_steps=4, checkpoint_every_steps=2, eval_every_steps=4,
                     eval_split="test[:16]", num_sample_images=4, **overrides))
  return config


def test_stylegan2_preset_trains_with_lazy_r1_and_path_length():
  config = _tiny_preset("stylegan2", r1_every=2, pl_every=2)
  config.model_options.mapping_layers = 2
  task = GANTask(config, (8, 8, 1))
  state = task.init_state(jax.random.PRNGKey(0))
  step = jax.jit(task.train_step)
  batch = {"image": jax.random.uniform(jax.random.PRNGKey(1), (8, 8, 8, 1), minval=-1)}
  means = []
  for _ in range(3):
    state, metrics = step(state, batch)
    means.append(float(state.pl_mean))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  # Steps 0 and 2 regularise (pl_mean moves), step 1 does not.
  assert means[0] > 0 and means[1] == means[0] and means[2] != means[1]
  assert float(metrics["pl_penalty"]) >= 0 and float(metrics["r1"]) > 0
  # The w truncation reaches sampling.
  z = jnp.ones((2, 16))
  assert task.truncation == "w"
  assert not np.allclose(task.sample(state, z), task.sample(state, z, psi=0.5))
  # ... and evaluation's samples (`experiments.evaluate --truncation`).
  plain, cut = (generate(task, state, 4, seed=0, truncation=t) for t in (None, 0.5))
  assert not np.allclose(plain, cut)
  np.testing.assert_array_equal(cut, generate(task, state, 4, seed=0, truncation=0.5))


def test_stylegan2_ada_preset_trains_resumes_bitwise_and_logs_p(tmp_path):
  """The ADA preset, narrowed (p adjusted every step at a fast speed so it
  moves within 4 steps), trained 4 steps equals 2, a stop, and 2 more, with
  p and its sums in the checkpoint."""
  config = _tiny_preset("stylegan2_ada", ada_interval=1, ada_kimg=0.1)
  straight = assert_resumes_bitwise(gan_experiment.train_and_evaluate, config, str(tmp_path))
  records = read_metrics(str(tmp_path / "straight"))
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert records[0]["ada_p"] == 0.0
  assert all(0.0 <= r["ada_p"] <= 1.0 and -1.0 <= r["ada_rt"] <= 1.0 for r in records)
  # p follows sign(r_t - 0.6) in steps of 8 / 100 images.
  p = 0.0
  for r in records:
    assert r["ada_p"] == pytest.approx(p, abs=1e-6)
    p = float(np.clip(p + np.sign(r["ada_rt"] - 0.6) * 8 / 100, 0, 1))
  assert float(straight.state.ada["p"]) == pytest.approx(p, abs=1e-6)


def test_gan_runs_saved_before_these_fields_still_resume_and_build():
  """A GAN config.json without model_options, pl_* and ada_* (runs made
  before StyleGAN2 and ADA) matches today's dcgan config and builds its task."""
  import ml_collections

  from jaxgan import provenance
  new = gan_configs.get_config("dcgan")
  saved = provenance.config_dict(new)
  for name in ("model_options", "pl_weight", "pl_every", "ada_target", "ada_p",
               "ada_pipeline", "ada_interval", "ada_kimg", "g_orthogonal_reg"):
    saved.pop(name)
  assert provenance.config_differences(saved, new) == []
  new.ada_p = 0.1
  assert provenance.config_differences(saved, new) == ["ada_p"]
  old = ml_collections.ConfigDict(saved)
  task = GANTask(old, (28, 28, 1))
  assert not task.ada_on and not task.pl_weight and task.truncation == "latent"
  # A StyleGAN2 run saved before noise_mode resumes with today's preset, and
  # a resume may switch the mode (it changes samples, not training).
  new = gan_configs.get_config("stylegan2")
  saved = provenance.config_dict(new)
  saved["model_options"].pop("noise_mode")
  assert provenance.config_differences(saved, new) == []
  new.model_options.noise_mode = "const"
  assert provenance.config_differences(saved, new) == []
  new.model_options.style_mixing = 0.5
  assert provenance.config_differences(saved, new) == ["model_options.style_mixing"]
  assert GANTask(ml_collections.ConfigDict(saved), (32, 32, 1)).generator.noise_mode == "random"
