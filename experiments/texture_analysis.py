"""Texture analysis: classify texture patches from their Gram descriptors,
next to a baseline on raw pixel statistics.

  python -m experiments.texture_analysis --workdir runs/texture-analysis
  python -m experiments.texture_analysis --data DIR --features classifier:runs/classifier

Patches (--patch, stride half a patch) are cut from each class's images
(--data: one image or one subfolder per class; default: scikit-image's brick,
grass and gravel), the left half of every image for training and the right
half for testing. Each patch gets a Gram descriptor (the upper triangles of
the chosen layers' Gram matrices) and the pixel baseline (per-channel mean,
std, 16-bin histogram); both are classified by nearest class mean and by
logistic regression. Writes DIR/analysis.json (accuracies, confusion
matrices, counts), DIR/confusion_gram.png, DIR/confusion_pixels.png and
DIR/pca.png (the descriptors' first two principal components by class).
"""

import json
import os

import numpy as np
from absl import flags

from experiments import common

def define_flags() -> None:
  """The command's flags (defined at run time, so that the experiments can be
  imported side by side)."""
  flags.DEFINE_string("data", None, "Folder of textures (one image or subfolder per class); "
                      "default: scikit-image's brick, grass, gravel.")
  flags.DEFINE_string("workdir", "runs/texture_analysis", "Output directory.")
  flags.DEFINE_string("features", "random", "Feature network: random[:SEED], "
                      "vgg16[:WEIGHTS], vgg19[:WEIGHTS] or classifier:RUN_DIR.")
  flags.DEFINE_list("layers", None, "Layers of the descriptor (default: all).")
  flags.DEFINE_integer("patch", 64, "Patch side in pixels.")


def analyze(workdir: str, data: str | None = None, features: str = "random", layers=None,
            patch: int = 64, batch_size: int = 32) -> dict:
  import jax
  from jaxgan import images as grid_images
  from jaxgan import runs
  from jaxgan.texture import analysis, gram

  classes = analysis.load_classes(data)
  names = list(classes)
  net = runs.texture_features(features)
  layers = list(layers or net.default_layers)
  split = {"train": ([], []), "test": ([], [])}
  for label, name in enumerate(names):
    for image in classes[name]:
      for part, patches in zip(("train", "test"), analysis.region_patches(image, patch,
                                                                          patch // 2)):
        split[part][0].append(patches)
        split[part][1].append(np.full(len(patches), label))
  x = {k: np.concatenate(v[0]) for k, v in split.items()}
  y = {k: np.concatenate(v[1]) for k, v in split.items()}

  describe = jax.jit(lambda b: gram.descriptor(net(b), layers))

  def grams(patches):
    return np.concatenate([gram.flat_descriptor(describe(patches[i:i + batch_size]))
                           for i in range(0, len(patches), batch_size)])

  descriptors = {"gram": {k: grams(v) for k, v in x.items()},
                 "pixels": {k: analysis.pixel_statistics(v) for k, v in x.items()}}
  os.makedirs(workdir, exist_ok=True)
  result = {"classes": names, "features": net.spec, "layers": layers, "patch": patch,
            "num_train": int(len(y["train"])), "num_test": int(len(y["test"])),
            "split": "left half of each image: train; right half: test"}
  for kind, d in descriptors.items():
    predictions = analysis.classify(d["train"], y["train"], d["test"], len(names))
    for method, predicted in predictions.items():
      m = analysis.confusion(y["test"], predicted, len(names))
      result[f"{kind}_{method}_accuracy"] = float(np.trace(m) / m.sum())
      result[f"{kind}_{method}_confusion"] = m.tolist()
    grid_images.save_confusion_matrix(
        np.asarray(result[f"{kind}_linear_confusion"]),
        os.path.join(workdir, f"confusion_{kind}.png"))
  _plot_pca(analysis.pca_2d(np.concatenate([descriptors["gram"]["train"],
                                            descriptors["gram"]["test"]])),
            np.concatenate([y["train"], y["test"]]), len(y["train"]), names,
            os.path.join(workdir, "pca.png"))
  with open(os.path.join(workdir, "analysis.json"), "w") as f:
    json.dump(result, f, indent=1)
  return result


def _plot_pca(points, labels, num_train, names, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
  for k, name in enumerate(names):
    for part, marker in (("train", "o"), ("test", "x")):
      sel = (labels == k) & ((np.arange(len(labels)) < num_train) == (part == "train"))
      ax.scatter(points[sel, 0], points[sel, 1], s=10, marker=marker, color=f"C{k}",
                 label=f"{name} ({part})")
  ax.set_xlabel("PC 1")
  ax.set_ylabel("PC 2")
  ax.set_title("Gram descriptors, first two principal components")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _run() -> None:
  f = flags.FLAGS
  r = analyze(f.workdir, f.data, f.features, f.layers, f.patch)
  print(f"{len(r['classes'])} classes ({', '.join(r['classes'])}), {r['num_train']} train / "
        f"{r['num_test']} test patches of {r['patch']}x{r['patch']}; test accuracy:")
  for kind in ("gram", "pixels"):
    print(f"  {kind:7s} nearest mean {r[f'{kind}_nearest_mean_accuracy']:.3f}   "
          f"linear {r[f'{kind}_linear_accuracy']:.3f}")
  print(f"wrote {f.workdir}/analysis.json, confusion_*.png, pca.png")




if __name__ == "__main__":
  common.tool_main(define_flags, _run)
