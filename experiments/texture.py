"""Texture synthesis (Gatys et al. 2015): a new image whose feature Gram
matrices match a source texture's.

  python -m experiments.texture --image skimage:brick --workdir runs/texture-brick
  python -m experiments.texture --image photo.png --features classifier:runs/classifier \\
      --size 128 --steps 300 --workdir runs/texture

Writes DIR/source.png, DIR/snapshots/step_*.png, DIR/texture.png, and the
loss (total and per layer) in DIR/metrics.jsonl. The same --seed gives the
same texture.
"""


from absl import flags

from experiments import common

def define_flags() -> None:
  """The command's flags (defined at run time, so that the experiments can be
  imported side by side)."""
  flags.DEFINE_string("image", None, "Source texture: an image file or skimage:NAME "
                      "(brick, grass, gravel, ...).", required=True)
  flags.DEFINE_string("workdir", "runs/texture", "Output directory.")
  flags.DEFINE_string("features", "random", "Feature network: random[:SEED] (random "
                      "multi-scale filters, no download), vgg16[:WEIGHTS], vgg19[:WEIGHTS] "
                      "or classifier:RUN_DIR.")
  flags.DEFINE_list("layers", None, "Layers whose Gram matrices to match (default: the network's "
                    "texture layers: all random scales; VGG conv1_1 ... conv5_1).")
  flags.DEFINE_integer("size", 128, "Side of the source (centre square, resized) and the result.")
  flags.DEFINE_integer("steps", 200, "Optimiser steps.")
  flags.DEFINE_enum("optimizer", "lbfgs", ["lbfgs", "adam"], "Pixel optimiser.")
  flags.DEFINE_float("learning_rate", 0.05, "Adam's learning rate (in logit space).")
  flags.DEFINE_integer("seed", 0, "Seed of the starting noise.")
  flags.DEFINE_integer("snapshot_every", 50, "Save the image every N steps.")


def synthesize(image: str, workdir: str, features: str = "random", layers=None,
               size: int = 128, steps: int = 200, optimizer: str = "lbfgs",
               learning_rate: float = 0.05, seed: int = 0, snapshot_every: int = 50) -> dict:
  import jax
  from jaxgan import runs
  from jaxgan.texture import image_files, optimization, synthesis
  source = image_files.load_image(image, size)
  net = runs.texture_features(features)
  layers = list(layers or net.default_layers)
  src = jax.numpy.asarray(source[None])
  objective = synthesis.texture_objective(net, src, layers)
  x0 = synthesis.noise_image(jax.random.PRNGKey(seed), src.shape)
  return optimization.run_optimization(
      workdir, objective, x0, steps=steps, optimizer=optimizer, learning_rate=learning_rate,
      snapshot_every=snapshot_every, result_name="texture", inputs={"source": source},
      settings={"image": image, "features": net.spec, "layers": layers, "size": size,
                "seed": seed})


def _run() -> None:
  f = flags.FLAGS
  last = synthesize(f.image, f.workdir, f.features, f.layers, f.size, f.steps, f.optimizer,
                    f.learning_rate, f.seed, f.snapshot_every)
  print(f"loss {last['loss']:.4g} after {f.steps} steps ({last['wall_time_s']:.0f} s); "
        f"wrote {f.workdir}/texture.png")




if __name__ == "__main__":
  common.tool_main(define_flags, _run, errors=(ValueError, FloatingPointError, FileNotFoundError))
