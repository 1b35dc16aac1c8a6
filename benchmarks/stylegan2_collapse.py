"""Where a StyleGAN2 run's diversity went: checks on its last checkpoint.

    python -m benchmarks.stylegan2_collapse --workdir runs/mq30-stylegan2-0 [--g_steps 100]

Prints, for the live generator and the average:
1. the spread (per-pixel standard deviation over 64 samples, averaged; the
   measure the GAN step logs as `pixel_std_fake`) with G's one fixed noise
   image for every sample (noise_mode "const"), with independent noise per
   sample ("random", what sampling and evaluation use), and with one z and
   independent noise per sample (how much of the spread is the noise's);
2. the learned noise strengths, w's standard deviation over z and the RMS of
   the mean w, and the style layers' kernel standard deviations;
3. D's mean output on 16 real images of the run's training split and on 16
   fakes, each batch scored with its own minibatch-std feature and with the
   other batch's (how much D punishes a collapsed batch through that
   feature);
4. `--g_steps` generator-only Adam steps (lr and betas of the run's config)
   against the frozen D: D's output on the fakes and their spread every 10.
The numbers in docs/results.md#mnist-stylegan2-collapse come from this.
"""

from __future__ import annotations

import argparse
from unittest import mock

import jax
import jax.numpy as jnp
import optax

from jaxgan import runs
from jaxgan.data.base import DataError
from jaxgan.models import stylegan2
from jaxgan.tasks.gan import pixel_spread


def _spreads(task, variables, z):
  g = task.generator
  ws = g.apply(variables, z, False, method=g.ws)
  keys = jax.random.split(jax.random.PRNGKey(3), len(z))

  def spread(mode, ws, keys=None):
    images = g.clone(noise_mode=mode).apply(variables, ws, False, keys,
                                            method=stylegan2.StyleGAN2Generator.synthesize)
    return float(pixel_spread(jnp.clip(images, -1.0, 1.0)))

  return (spread("const", ws), spread("random", ws, keys),
          spread("random", jnp.broadcast_to(ws[:1], ws.shape), keys))


def _mbstd_swap(task, state, real, fake):
  """D's mean output on real and fake batches, with their own minibatch-std
  feature and with the other batch's."""
  original, seen = stylegan2.minibatch_std, {}

  def capture(x, group_size=4):
    y = original(x, group_size)
    seen["feature"] = y[..., -1:]
    return y

  def substitute(x, group_size=4):
    y = original(x, group_size)
    return jnp.concatenate([y[..., :-1], seen["substitute"]], axis=-1)

  score = lambda x: float(jnp.mean(task.discriminate(state, x)))
  with mock.patch.object(stylegan2, "minibatch_std", capture):
    own_real = score(real)
    real_feature = seen["feature"]
    own_fake = score(fake)
    fake_feature = seen["feature"]
  with mock.patch.object(stylegan2, "minibatch_std", substitute):
    seen["substitute"] = fake_feature
    swapped_real = score(real)
    seen["substitute"] = real_feature
    swapped_fake = score(fake)
  return (float(jnp.mean(real_feature)), float(jnp.mean(fake_feature)), own_real, own_fake,
          swapped_real, swapped_fake)


def _g_only(task, state, steps: int, batch: int = 16):
  config, g, d = task.config, task.generator, task.discriminator
  g_stats = state.g.batch_stats
  d_vars = {"params": state.d.params, "batch_stats": state.d.batch_stats}
  tx = optax.adam(config.g_learning_rate, b1=config.g_beta1, b2=config.g_beta2)

  def loss(params, key):
    k_z, k_noise = jax.random.split(key)
    z = jax.random.normal(k_z, (batch, task.g_latent_dim))
    x = g.apply({"params": params, "batch_stats": g_stats}, z, True, rngs={"noise": k_noise},
                mutable=["batch_stats"])[0]
    out = d.apply(d_vars, x, True)
    return jnp.mean(jax.nn.softplus(-out)), (jnp.mean(out), pixel_spread(x))

  @jax.jit
  def step(params, opt_state, key):
    (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(params, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, aux

  params = state.g.params
  opt_state = tx.init(params)
  for i in range(steps + 1):
    params, opt_state, (d_fake, spread) = step(params, opt_state, jax.random.PRNGKey(i))
    if i % 10 == 0:
      print(f"  G-only step {i:4d}: D(fake) {float(d_fake):+.2f}, spread {float(spread):.3f}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="A stylegan2 / stylegan2_ada run.")
  parser.add_argument("--g_steps", type=int, default=100)
  args = parser.parse_args()
  try:
    run = runs.restore(args.workdir, expect="gan")
  except (DataError, ValueError) as e:
    raise SystemExit(f"error: {e}") from None
  task, state = run.task, run.state
  if not isinstance(task.generator, stylegan2.StyleGAN2Generator) or task.conditional:
    raise SystemExit(f"error: {args.workdir} is not an unconditional StyleGAN2 run "
                     f"(config.model={run.config.model!r}); these checks need its mapping "
                     "network, noise inputs and minibatch-std D.")
  print(f"{args.workdir}, step {run.step}")
  z = jax.random.normal(jax.random.PRNGKey(7), (64, task.g_latent_dim))
  live = {"params": state.g.params, "batch_stats": state.g.batch_stats}
  real = jnp.asarray(run.data.first_images(f"{run.config.train_split.split('[')[0]}[:64]"),
                     jnp.float32)
  print(f"spread of 64 real training images: {float(pixel_spread(real)):.3f}")
  for name, variables in (("live", live), ("average", state.g_ema)):
    fixed, fresh, one_z = _spreads(task, variables, z)
    print(f"{name} G spread: fixed noise {fixed:.3f}, noise per sample {fresh:.3f}, "
          f"one z with noise per sample {one_z:.3f}")
  g = task.generator
  w = g.apply(live, z, False, method=g.ws)[:, 0]
  print(f"w over z: standard deviation {float(jnp.mean(jnp.std(w, 0))):.3f}, "
        f"RMS of the mean w {float(jnp.sqrt(jnp.mean(jnp.mean(w, 0) ** 2))):.3f}")
  synthesis = state.g.params["synthesis"]
  strengths = [float(v["noise_strength"]) for v in synthesis.values()
               if isinstance(v, dict) and "noise_strength" in v]
  styles = [float(jnp.std(v["ModulatedConv_0"]["affine"]["kernel"]))
            for v in synthesis.values() if isinstance(v, dict) and "ModulatedConv_0" in v]
  print(f"noise strengths: largest |s| {max(abs(s) for s in strengths):.4f}; style kernels' "
        f"standard deviations {min(styles):.3f}-{max(styles):.3f}")
  fake = task.sample(state, jax.random.normal(jax.random.PRNGKey(1), (16, task.g_latent_dim)),
                     average=False)
  r_feat, f_feat, own_r, own_f, swap_r, swap_f = _mbstd_swap(task, state, real[:16], fake)
  print(f"minibatch-std feature: real batch {r_feat:.3f}, fake batch {f_feat:.3f}")
  print(f"D(real) {own_r:+.2f} with its own feature, {swap_r:+.2f} with the fakes'; "
        f"D(fake) {own_f:+.2f} with its own, {swap_f:+.2f} with the real batch's")
  _g_only(task, state, args.g_steps)


if __name__ == "__main__":
  main()
