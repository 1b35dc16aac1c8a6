"""Metrics of a generator logged during training (FID, KID), kept out of the
tasks: the loop calls each evaluator at every evaluation,
`evaluator(task, state, data) -> {name: float}`, logged as `eval_<name>`."""

from __future__ import annotations

from jaxgan import metrics
from jaxgan.evaluation.extractors import make_extractor
from jaxgan.evaluation.generators import generate, kid_subset_size


class GeneratorFID:
  """FID and KID of `num_eval_samples` samples of the task's (averaged)
  generator against the images of `eval_split`, in the features
  `fid_features` names (a classifier run directory, or "inception[:WEIGHTS]").
  The extractor is loaded at once, so a bad path fails before training; the
  real features are computed at the first evaluation and kept."""

  def __init__(self, config):
    self.config = config
    self.extractor = make_extractor(config.fid_features)
    self._reference = None

  def __call__(self, task, state, data) -> dict:
    if self._reference is None:
      self._reference = self.extractor(data.first_images(self.config.eval_split))[0]
    real = self._reference
    fake = self.extractor(generate(task, state, self.config.num_eval_samples,
                                   self.config.seed))[0]
    kid_mean, kid_std = metrics.kernel_inception_distance(
        real, fake, num_subsets=100, subset_size=kid_subset_size(len(real), len(fake)))
    return {"fid": metrics.fid_from_features(real, fake), "kid_mean": kid_mean,
            "kid_std": kid_std}


def training_evaluators(config) -> list:
  """The evaluators a generator run's config asks for (FID/KID when
  `fid_features` and `eval_split` are set)."""
  if config.get("fid_features") and config.get("eval_split"):
    return [GeneratorFID(config)]
  return []
