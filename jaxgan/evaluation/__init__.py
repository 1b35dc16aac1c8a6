"""Evaluating generators: samples, features, and the `jaxgan.metrics` suite.

    from jaxgan import evaluation
    extractor = evaluation.ClassifierExtractor("runs/classifier")
    result = evaluation.evaluate_generator("runs/dcgan", extractor)

By job:
- `runs.py`: a run directory's config and restored state (`restore_run`);
- `extractors.py`: feature extractors, any object with `image_shape`,
  `protocol` (a dict describing it) and `__call__(images in [-1, 1]) ->
  (features [N, D], class probabilities [N, K])`: `ClassifierExtractor` (a
  classifier run of the same dataset; offline), `InceptionExtractor` (the
  standard FID network, weights from a local file), `make_extractor(spec)`;
- `generators.py`: samples of a generator (`generate`; `sample_classes` for
  given classes of a conditional run), the metric suite (`compare`;
  `conditional_metrics`: intra-FID, class accuracy), `evaluate_generator`,
  tables and exports;
- `training.py`: FID/KID logged during training (`training_evaluators`).
"""

from jaxgan.evaluation.extractors import (ClassifierExtractor, InceptionExtractor, fit_images,
                                          make_extractor)
from jaxgan.evaluation.generators import (classification_accuracy_score, compare, conditional_metrics, evaluate_generator,
                                          export_samples, format_table, generate,
                                          kid_subset_size, sample_classes)
from jaxgan.evaluation.runs import checkpoint_hash, load_run_config, restore_run
from jaxgan.evaluation.training import GeneratorFID, training_evaluators

__all__ = ["ClassifierExtractor", "GeneratorFID", "InceptionExtractor", "checkpoint_hash",
           "classification_accuracy_score", "compare", "conditional_metrics", "evaluate_generator", "export_samples", "fit_images", "format_table",
           "generate", "kid_subset_size", "load_run_config", "make_extractor", "restore_run",
           "sample_classes", "training_evaluators"]
