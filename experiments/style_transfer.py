"""Style transfer (Gatys et al. 2016): an image with one image's content
(one layer's activations) and another's style (Gram matrices of several
layers).

  python -m experiments.style_transfer --content skimage:astronaut --style skimage:brick \\
      --workdir runs/style

The image starts from the content image. Writes DIR/content.png,
DIR/style.png, DIR/snapshots/step_*.png, DIR/stylized.png, and the losses
(total, content, style, per style layer, total variation) in
DIR/metrics.jsonl.
"""


from absl import flags

from experiments import common

def define_flags() -> None:
  """The command's flags (defined at run time, so that the experiments can be
  imported side by side)."""
  flags.DEFINE_string("content", None, "Content image: a file or skimage:NAME.", required=True)
  flags.DEFINE_string("style", None, "Style image: a file or skimage:NAME.", required=True)
  flags.DEFINE_string("workdir", "runs/style_transfer", "Output directory.")
  flags.DEFINE_string("features", "random", "Feature network: random[:SEED], "
                      "vgg16[:WEIGHTS], vgg19[:WEIGHTS] or classifier:RUN_DIR.")
  flags.DEFINE_string("content_layer", None, "Layer of the content loss (default: the "
                      "network's: the first random scale; VGG conv4_2).")
  flags.DEFINE_list("style_layers", None, "Layers of the style loss (default: the "
                    "network's texture layers).")
  flags.DEFINE_float("style_weight", 10.0, "Weight of the (relative) style loss.")
  flags.DEFINE_float("tv_weight", 1.0, "Weight of the total variation.")
  flags.DEFINE_integer("size", 128, "Side of the images (centre square, resized).")
  flags.DEFINE_integer("steps", 200, "Optimiser steps.")
  flags.DEFINE_enum("optimizer", "lbfgs", ["lbfgs", "adam"], "Pixel optimiser.")
  flags.DEFINE_float("learning_rate", 0.05, "Adam's learning rate (in logit space).")
  flags.DEFINE_integer("snapshot_every", 50, "Save the image every N steps.")


def stylize(content: str, style: str, workdir: str, features: str = "random",
            content_layer: str | None = None, style_layers=None, style_weight: float = 10.0,
            tv_weight: float = 1.0, size: int = 128, steps: int = 200,
            optimizer: str = "lbfgs", learning_rate: float = 0.05,
            snapshot_every: int = 50) -> dict:
  import jax.numpy as jnp
  from jaxgan import runs
  from jaxgan.texture import image_files, optimization, synthesis
  content_image = image_files.load_image(content, size)
  style_image = image_files.load_image(style, size)
  net = runs.texture_features(features)
  content_layer = content_layer or net.content_layer
  style_layers = list(style_layers or net.default_layers)
  unknown = [l for l in [content_layer, *style_layers] if l not in net.layers]
  if unknown:
    raise ValueError(f"Unknown layer(s) {', '.join(unknown)}; this feature network has "
                     f"{', '.join(net.layers)}.")
  c, s = jnp.asarray(content_image[None]), jnp.asarray(style_image[None])
  objective = synthesis.style_objective(net, c, s, content_layer, style_layers, style_weight,
                                        tv_weight)
  return optimization.run_optimization(
      workdir, objective, c, steps=steps, optimizer=optimizer, learning_rate=learning_rate,
      snapshot_every=snapshot_every, result_name="stylized",
      inputs={"content": content_image, "style": style_image},
      settings={"content": content, "style": style, "features": net.spec,
                "content_layer": content_layer, "style_layers": style_layers,
                "style_weight": style_weight, "tv_weight": tv_weight, "size": size})


def _run() -> None:
  f = flags.FLAGS
  last = stylize(f.content, f.style, f.workdir, f.features, f.content_layer, f.style_layers,
                 f.style_weight, f.tv_weight, f.size, f.steps, f.optimizer, f.learning_rate,
                 f.snapshot_every)
  print(f"loss {last['loss']:.4g} (content {last['content']:.3g}, style {last['style']:.3g}) "
        f"after {f.steps} steps ({last['wall_time_s']:.0f} s); wrote "
        f"{f.workdir}/stylized.png")




if __name__ == "__main__":
  common.tool_main(define_flags, _run, errors=(ValueError, FloatingPointError, FileNotFoundError))
