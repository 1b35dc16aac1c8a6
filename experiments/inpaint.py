"""Inpainting with a trained GAN or VAE run:

  python -m experiments.inpaint --workdir GAN_OR_VAE_RUN --mask center \\
      [--split SPLIT] [--num_images N] [--features classifier:RUN_DIR]

Masks: center (a size/2 square), random (80% of the pixels), left, right,
top, bottom, or a PNG of the run's image size (dark = missing). A GAN run
inpaints by latent optimisation (Yeh et al. 2017), a VAE run by pseudo-Gibbs
sampling (see jaxgan/restoration/inpainting.py); two baselines run beside
it: `mean_fill` (the training mean in the hole) and `nearest` (the training
image closest on the known pixels, copied into the hole). Writes to the run
directory `inpainting_<mask>.png` (rows: masked | mean_fill | nearest |
model | original) and `inpainting_<mask>.json`: per method PSNR and SSIM on
the hole and on the whole image (images in [0, 1]), and with --features the
classifier's accuracy on each method's images next to the masked and the
original ones.
"""

import json
import os

import numpy as np
from absl import flags

from experiments import common


def define_flags() -> None:
  """The command's flags (defined at run time, so that the experiments can be
  imported side by side)."""
  flags.DEFINE_string("workdir", None, "A GAN or VAE run directory.", required=True)
  flags.DEFINE_string("mask", "center", "center, random, left, right, top, bottom, or a PNG.")
  flags.DEFINE_string("split", None, "Images to inpaint (default: the run's eval_split).")
  flags.DEFINE_integer("num_images", 256, "How many (the first of the split).")
  flags.DEFINE_string("features", None, "classifier:RUN_DIR (or a bare RUN_DIR): a classifier "
                      "run, whose accuracy on the results is reported.")
  flags.DEFINE_integer("steps", 1000, "GAN: Adam steps over z.")
  flags.DEFINE_integer("restarts", 4, "GAN: random starts per image.")
  flags.DEFINE_float("perceptual_weight", 0.003, "GAN: lambda of the perceptual loss.")
  flags.DEFINE_integer("gibbs_steps", 100, "VAE: pseudo-Gibbs iterations.")
  flags.DEFINE_integer("seed", 0, "Seed of the random mask, starts and samples.")


def _model(run_dir: str):
  """A GAN or VAE run (`jaxgan.runs.Run`) to inpaint with."""
  from jaxgan import provenance, runs
  config = runs.load_config(run_dir)
  if (runs.kind_of(config).name == "gan" and
      provenance.added_field(config, "conditional")):
    kind = ("self-conditioned" if provenance.added_field(config, "cluster_conditioning")
            or provenance.added_field(config, "info_codes") else "class-conditional")
    raise ValueError(f"{run_dir} is a {kind} GAN ({config.conditional}); "
                     "inpainting searches an unconditional generator's latent space: pass "
                     "an unconditional GAN run.")
  return runs.restore(run_dir, expect=("gan", "vae"))


def inpaint(run_dir: str, mask: str = "center", split: str | None = None,
            num_images: int = 256, features: str | None = None, steps: int = 1000,
            restarts: int = 4, perceptual_weight: float = 0.003, gibbs_steps: int = 100,
            seed: int = 0) -> dict:
  import jax
  from jaxgan import images as grid_images
  from jaxgan.restoration import inpainting, masks, quality
  run = _model(run_dir)
  kind, config, data, task, state, step = (run.kind, run.config, run.data, run.task, run.state,
                                           run.step)
  size = config.image_size
  m = masks.make_mask(mask, size, seed)
  split = split or config.eval_split
  x, labels = data.first_images(split, num_images, with_labels=True)
  train = data.first_images(config.train_split, 10_000)
  key = jax.random.PRNGKey(seed)
  results = {"mean_fill": inpainting.mean_fill(x, m, train),
             "nearest": inpainting.nearest_fill(x, m, train)}
  if kind == "gan":
    results["gan"], info = inpainting.gan_inpaint(
        task, state, x, m, key, steps=steps, restarts=restarts,
        perceptual_weight=perceptual_weight, progress=True)
    settings = {"method": "latent optimisation (Yeh et al. 2017)", "steps": steps,
                "restarts": restarts, "perceptual_weight": perceptual_weight, **info}
  else:
    results["vae"] = inpainting.vae_inpaint(task, state, x, m, key, steps=gibbs_steps)
    settings = {"method": "pseudo-Gibbs (Rezende et al. 2014)", "gibbs_steps": gibbs_steps}
  masked = np.where(m[None, :, :, None] > 0, x, -1.0)  # the hole black
  for name, out in results.items():  # never a known pixel changed
    if not np.array_equal(out[:, m > 0], x[:, m > 0]):
      raise RuntimeError(f"{name} changed known pixels: a bug, please report it.")
  to01 = lambda v: (np.asarray(v) + 1.0) / 2.0
  hole = np.broadcast_to(1.0 - m, x.shape[:3])
  report = {"run": os.path.abspath(run_dir), "step": step, "model": kind, "mask": mask,
            "split": split, "num_images": int(len(x)), "missing_pixels": int((m == 0).sum()),
            "settings": settings, "methods": {}}
  for name, out in {"masked": masked, **results}.items():
    report["methods"][name] = {
        "psnr_hole": float(np.mean(quality.psnr(to01(out), to01(x), region=hole))),
        "ssim_hole": float(np.mean(quality.ssim(to01(out), to01(x), region=hole))),
        "psnr": float(np.mean(quality.psnr(to01(out), to01(x)))),
        "ssim": float(np.mean(quality.ssim(to01(out), to01(x)))),
    }
  if features:
    from jaxgan import runs
    extractor = runs.extractor("classifier:" + features.removeprefix("classifier:"))
    accuracy = lambda v: float(np.mean(np.argmax(extractor(v)[1], axis=1) == labels))
    for name, out in {"masked": masked, **results, "original": x}.items():
      report["methods"].setdefault(name, {})["classifier_accuracy"] = accuracy(out)
    report["classifier"] = extractor.protocol["extractor_run"]
  stem = os.path.join(run_dir, f"inpainting_{os.path.splitext(os.path.basename(mask))[0]}")
  rows = [masked, results["mean_fill"], results["nearest"], results[kind], x]
  grid_images.save_grid(np.stack([r[:8] for r in rows]).reshape((-1, *x.shape[1:])),
                        stem + ".png", ncols=min(8, len(x)))
  with open(stem + ".json", "w") as f:
    json.dump(report, f, indent=1)
  report["written"] = [stem + ".png", stem + ".json"]
  return report


def _run() -> None:
  f = flags.FLAGS
  r = inpaint(f.workdir, f.mask, f.split, f.num_images, f.features, f.steps, f.restarts,
              f.perceptual_weight, f.gibbs_steps, f.seed)
  print(f"{r['model']} step {r['step']}, mask {r['mask']} ({r['missing_pixels']} pixels), "
        f"{r['num_images']} images of {r['split']}:")
  keys = ["psnr_hole", "ssim_hole", "psnr", "ssim"] + (
      ["classifier_accuracy"] if f.features else [])
  print(f"{'':12s}" + "".join(f"{k:>20s}" for k in keys))
  for name, values in r["methods"].items():
    print(f"{name:12s}" + "".join(f"{values[k]:20.4g}" if k in values else f"{'':20s}"
                                  for k in keys))
  print("wrote " + ", ".join(r["written"]))




if __name__ == "__main__":
  common.tool_main(define_flags, _run)
