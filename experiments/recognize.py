"""ImageNet recognition with a pretrained VGG (the seeds' `VGG16(weights=
'imagenet')` + `decode_predictions` snippet, in JAX):

  python -m experiments.recognize photo.jpg [more.png ...] [--model vgg16|vgg19] \\
      [--weights PATH] [--top 5]

The weights are not bundled: torchvision's vgg16-397923af.pth / vgg19-dcbb9e9d.pth
or Keras's vgg16_weights_tf_dim_ordering_tf_kernels.h5 (see
jaxgan/models/vgg.py), found in ~/.cache/jaxgan or given with --weights;
without them the command says where to get them and exits 1. Images are
prepared as each source's own pipeline does: torchvision's (shorter side
resized to 256, centre 224x224 crop, ImageNet mean/std) or Keras's
(resized to 224x224 nearest, as `image.load_img(target_size=(224, 224))`,
then "caffe" BGR mean subtraction). Prints the top-k classes with their
probabilities for each image.
"""

import numpy as np
from absl import flags

from experiments import common


def define_flags() -> None:
  """The command's flags (defined at run time, so that the experiments can be
  imported side by side)."""
  flags.DEFINE_enum("model", "vgg16", ["vgg16", "vgg19"], "Network.")
  flags.DEFINE_string("weights", None, "Weights file (.pth torchvision, .h5 Keras); default: "
                      "~/.cache/jaxgan/<standard file name>.")
  flags.DEFINE_integer("top", 5, "How many classes to print per image.")


def prepare(path: str, source: str) -> np.ndarray:
  """An image file -> [224, 224, 3] RGB in [0, 1], resized as `source`'s own
  pipeline resizes."""
  from PIL import Image
  from jaxgan.texture.image_files import load_image
  pixels = (load_image(path) * 255.0 + 0.5).astype(np.uint8)  # clear errors for bad files
  image = Image.fromarray(pixels)
  if source == "keras":
    image = image.resize((224, 224), Image.NEAREST)
  else:
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((max(256, round(w * scale)), max(256, round(h * scale))),
                         Image.BILINEAR)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
  return np.asarray(image, np.float32) / 255.0


def recognize(paths, model: str = "vgg16", weights: str | None = None, top: int = 5) -> list:
  """[(path, [(class name, probability), ...])] for each image, best first."""
  import jax
  from jaxgan.models import vgg
  if top < 1:
    raise ValueError(f"--top must be >= 1, got {top}.")
  depth = int(model[3:])
  variables, source, _ = vgg.load_vgg(depth, weights)
  batch = np.stack([prepare(p, source) for p in paths])
  net = vgg.VGG(depth)
  logits = jax.jit(lambda v, x: net.apply(v, vgg.preprocess(x, source))["logits"])(
      variables, batch)
  probs = np.asarray(jax.nn.softmax(logits))
  names = vgg.imagenet_classes()
  return [(p, [(names[k], float(row[k])) for k in np.argsort(-row)[:top]])
          for p, row in zip(paths, probs)]


def _run(paths) -> None:
  f = flags.FLAGS
  for path, best in recognize(paths, f.model, f.weights, f.top):
    print(path)
    for rank, (name, p) in enumerate(best, start=1):
      print(f"  {rank}. {name:30s} {p:.4f}")


if __name__ == "__main__":
  common.tool_main(define_flags, _run,
                     usage="python -m experiments.recognize IMAGE [IMAGE ...] [--weights PATH]")
