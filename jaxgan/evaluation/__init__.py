"""Evaluating generators: samples, features, and the `jaxgan.metrics` suite.

    from jaxgan import evaluation, runs
    extractor = runs.extractor("classifier:runs/classifier")  # or "inception:WEIGHTS"
    result = evaluation.evaluate_generator(runs.restore("runs/dcgan", expect="gan"), extractor)

Run directories are opened by `jaxgan.runs` (the layer above); the functions
here take the restored `jaxgan.runs.Run`. By job:
- `extractors.py`: feature extractors, any object with `image_shape`,
  `protocol` (a dict describing it) and `__call__(images in [-1, 1]) ->
  (features [N, D], class probabilities [N, K])`: `ClassifierExtractor` (a
  classifier run of the same dataset; offline), `InceptionExtractor` (the
  standard FID network, weights from a local file);
- `generators.py`: samples of a generator (`generate`; `sample_classes` for
  given classes of a conditional run; `rejection_sample`, those an
  unconditional GAN's discriminator keeps, with the method's arithmetic in
  `rejection.py`), the metric suite (`compare`;
  `conditional_metrics`: intra-FID, class accuracy), `evaluate_generator`,
  the Classification Accuracy Score, tables and exports;
- `training.py`: metrics logged during training (`GeneratorFID`,
  `SuperResolutionAccuracy`).
"""

from jaxgan.evaluation.extractors import (INCEPTION_RESIZES, ClassifierExtractor,
                                          InceptionExtractor, resize_for_extractor)
from jaxgan.evaluation.generators import (check_cas_classifier, classification_accuracy_score,
                                          compare, conditional_metrics, evaluate_generator,
                                          export_samples, format_table, generate,
                                          kid_subset_size, load_samples, rejection_sample,
                                          sample_classes)
from jaxgan.evaluation.training import GeneratorFID, SuperResolutionAccuracy

__all__ = ["INCEPTION_RESIZES", "ClassifierExtractor", "GeneratorFID", "InceptionExtractor",
           "SuperResolutionAccuracy", "check_cas_classifier", "classification_accuracy_score",
           "compare", "conditional_metrics", "evaluate_generator", "export_samples",
           "format_table", "generate", "kid_subset_size", "load_samples", "rejection_sample",
           "resize_for_extractor", "sample_classes"]

# Names that moved to jaxgan.runs (the layer that opens run directories).
_MOVED = {"make_extractor": "jaxgan.runs.extractor(spec)",
          "restore_run": "jaxgan.runs.restore(run_dir, step)",
          "load_run_config": "jaxgan.runs.load_config(run_dir)",
          "checkpoint_hash": "jaxgan.runs.restore(run_dir, step).checkpoint_sha256()",
          "training_evaluators": "jaxgan.runs.KINDS[config.task].evaluators(config)",
          "fit_images": "jaxgan.evaluation.resize_for_extractor"}


def __getattr__(name: str):
  if name in _MOVED:
    raise AttributeError(f"jaxgan.evaluation.{name} moved: use {_MOVED[name]}.")
  raise AttributeError(f"module 'jaxgan.evaluation' has no attribute {name!r}")
