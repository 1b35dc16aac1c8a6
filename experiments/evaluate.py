"""Evaluates a generator run: `python -m experiments.evaluate --workdir RUN_DIR [--features CLASSIFIER_RUN | inception[:WEIGHTS]]`.

FID, KID, precision/recall, density/coverage and an Inception-Score-style
score of the run's generator (latest checkpoint, or --step; --step=0 is the
initialisation) against a real split (default: the run's eval_split), in the
feature space of a classifier trained by `experiments.classifier` on the same
dataset, or of the standard FID InceptionV3 (`--features=inception`, weights
from a local file; see jaxgan/models/inception.py). --baseline_split scores that split's real images instead of samples,
to show the scale. Writes the result with its protocol to RUN_DIR/evaluation.json
(evaluation_step_<S>.json with --step, evaluation_real_<split>.json with
--baseline_split) and prints a table. A class-conditional run adds intra_fid
(mean per-class FID) and class_accuracy (the share of samples the feature
classifier assigns to their class; its accuracy on the real images is in the
protocol); --cas adds the Classification Accuracy Score. --save_reference
FILE.npz writes the real side once (statistics, features, protocol);
--reference FILE.npz scores against it without reading real images again;
--samples FILE.npz|DIR scores images another program wrote instead of the
generator's; --drs PERCENTILE scores the samples an unconditional GAN's
discriminator accepts (discriminator rejection sampling; docs/evaluation.md).
Sampling and feature extraction split each batch over every device; with
the multi-process flags of the trainers (--coordinator_address,
--num_processes, --process_id, or a cluster launcher) over every device of
every process, and process 0 writes.
"""

import json
import os
import re

from absl import flags

from experiments import common


def define_flags() -> None:
  """The command's flags (defined at run time, so that commands can be imported
  side by side)."""
  flags.DEFINE_string("workdir", None, "The generator's run directory.", required=True)
  common.define_distributed_flags()  # several processes share the sampling and features
  flags.DEFINE_string("features", "classifier:runs/classifier", "Feature extractor: "
                      "classifier:RUN_DIR (or a bare RUN_DIR), a classifier run (python -m "
                      "experiments.classifier on the same dataset), or 'inception[:WEIGHTS]' / "
                      "'inception-clean[:WEIGHTS]' for the standard FID InceptionV3.")
  flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: latest; 0: the "
                       "initialisation).")
  flags.DEFINE_string("split", None, "Reference split of real images (default: the run's "
                      "eval_split).")
  flags.DEFINE_integer("num_samples", None, "Generated samples (default: as many as real images).")
  flags.DEFINE_string("baseline_split", None, "Score this split's real images instead of "
                      "generator samples.")
  flags.DEFINE_string("texture_features", None, "Also the per-layer texture distance (Gram "
                      "statistics) of the samples to the real images, in this feature network: "
                      "random[:SEED] or classifier:RUN_DIR.")
  flags.DEFINE_string("cas", None, "A conditional run's Classification Accuracy Score: a "
                      "classifier run trained on its samples only (experiments.classifier "
                      "--config.generated_data=RUN_DIR), scored on the real reference split.")
  flags.DEFINE_string("cas_real", None, "With --cas: the same classifier trained on real "
                      "images (e.g. the --features run), scored alike for scale.")
  flags.DEFINE_string("save_reference", None, "Also write the real side (mu, sigma, features, "
                      "class scores, labels, and the protocol: extractor, split, count) to this "
                      ".npz, for --reference.")
  flags.DEFINE_string("reference", None, "Score against this --save_reference file instead of "
                      "reading and featurizing real images (refused if made with other "
                      "features); a plain mu/sigma .npz (pytorch-fid, clean-fid) gives FID only.")
  flags.DEFINE_string("samples", None, "Score these images instead of the generator's: a "
                      ".npz of uint8 [N, H, W, C] (as --export writes) or a directory of "
                      "PNG/JPEG files, written by any program.")
  flags.DEFINE_float("truncation", None, "The truncation trick (default: none): BigGAN and "
                     "the other generators draw their latents from N(0, 1) truncated to "
                     "[-T, T] (Brock et al. 2019); StyleGAN2 pulls w towards its mean with "
                     "psi = T (Karras et al. 2019).")
  flags.DEFINE_float("drs", None, "Discriminator rejection sampling (Azadi et al. 2019; "
                     "default: none) of an unconditional GAN: its D, calibrated on the run's "
                     "training images, keeps samples, gamma at this percentile (e.g. 80) of the "
                     "first round's log odds; the higher, the fewer kept "
                     "(jaxgan/evaluation/rejection.py).")
  flags.DEFINE_integer("drs_round", 10_000, "With --drs: candidates drawn per round, and real "
                       "training images (at most) that calibrate D against the first round.")
  flags.DEFINE_string("export", None, "Also write the scored images: a .npz file or a directory "
                      "of PNGs.")


def _run() -> None:
  common.initialize_distributed()
  import jax
  from jaxgan import evaluation, runs
  FLAGS = flags.FLAGS
  if FLAGS.cas_real and not FLAGS.cas:
    raise ValueError("--cas_real needs --cas (the classifier trained on the samples).")
  runs.load_config(FLAGS.workdir)  # A wrong --workdir is named before any work.
  extractor = runs.extractor(FLAGS.features)
  texture = runs.texture_features(FLAGS.texture_features) if FLAGS.texture_features else None
  if FLAGS.cas:  # Refused before any sampling when it does not fit.
    evaluation.check_cas_classifier(FLAGS.workdir, FLAGS.cas, runs.load_config(FLAGS.cas))
  gan = runs.restore(FLAGS.workdir, FLAGS.step, expect="gan")
  result = evaluation.evaluate_generator(
      gan, extractor, split=FLAGS.split, num_samples=FLAGS.num_samples,
      baseline_split=FLAGS.baseline_split, export=FLAGS.export, texture_features=texture,
      reference=FLAGS.reference, save_reference=FLAGS.save_reference, samples=FLAGS.samples,
      truncation=FLAGS.truncation, drs=FLAGS.drs, drs_round=FLAGS.drs_round)
  if FLAGS.cas:
    result.update(evaluation.classification_accuracy_score(
        gan, runs.classifier_run(FLAGS.cas),
        runs.classifier_run(FLAGS.cas_real) if FLAGS.cas_real else None, split=FLAGS.split))
  if FLAGS.baseline_split:
    name = "evaluation_real_" + re.sub(r"[^A-Za-z0-9]+", "_", FLAGS.baseline_split).strip("_")
    label = f"real {FLAGS.baseline_split}"
  elif FLAGS.samples:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", os.path.basename(FLAGS.samples.rstrip("/"))).strip("_")
    name, label = f"evaluation_samples_{stem}", f"samples {FLAGS.samples}"
  elif FLAGS.step is not None:
    name, label = f"evaluation_step_{FLAGS.step}", f"generator step {result['protocol']['step']}"
  else:
    name, label = "evaluation", f"generator step {result['protocol']['step']}"
  if FLAGS.truncation:
    name += f"_truncation_{FLAGS.truncation:g}".replace(".", "_")
    label += f", truncation {FLAGS.truncation:g}"
  if FLAGS.drs is not None:
    name += f"_drs_{FLAGS.drs:g}".replace(".", "_")
    drs = result["protocol"]["rejection_sampling"]
    label += f", DRS {FLAGS.drs:g} (kept {drs['acceptance_rate']:.1%})"
  path = os.path.join(FLAGS.workdir, name + ".json")
  if jax.process_index():
    return  # process 0 writes and reports
  with open(path + ".tmp", "w") as f:
    json.dump(result, f, indent=1)
  os.replace(path + ".tmp", path)
  print(evaluation.format_table({label: result}))
  if "texture_distance" in result:
    print(f"texture distance ({result['texture_features']}): "
          + ", ".join(f"{k} {v:.4g}" for k, v in result["texture_distance"].items()))
  protocol = result["protocol"]
  print(f"against {protocol['num_real'] or 'the statistics of'} real images of "
        f"{protocol['reference']}"
        + (f" (from {protocol['reference_file']})" if "reference_file" in protocol else "")
        + f"; features: {protocol['extractor']}; written to {path}"
        + (f"; reference written to {FLAGS.save_reference}" if FLAGS.save_reference else ""))


if __name__ == "__main__":
  common.tool_main(define_flags, _run)
