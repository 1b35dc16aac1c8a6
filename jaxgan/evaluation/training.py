"""Metrics logged during training that need more than the task (FID and KID
of a generator; a classifier's accuracy on super-resolved images), kept out
of the tasks: the loop calls each evaluator at every evaluation,
`evaluator(task, state, data) -> {name: float}`, logged as `eval_<name>`."""

from __future__ import annotations

import jax
import numpy as np

from jaxgan import metrics
from jaxgan.evaluation.generators import generate, kid_subset_size
from jaxgan.models.superres import area_downsample, bicubic_upsample


class GeneratorFID:
  """FID and KID of `num_eval_samples` samples of the task's (averaged)
  generator against the images of `eval_split`, in the features of
  `extractor` (what `fid_features` names, `jaxgan.runs.extractor`: built
  before training, so a bad path fails at once). The real features are
  computed at the first evaluation and kept."""

  def __init__(self, config, extractor):
    self.config = config
    self.extractor = extractor
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


class SuperResolutionAccuracy:
  """A classifier's accuracy on the eval split's images up-sampled by the
  super-resolution task (`accuracy_sr`), by bicubic interpolation
  (`accuracy_bicubic`) and on the originals (`accuracy_hr`): how much of
  what the classifier needs the up-sampling restores (`extractor`: the
  `ClassifierExtractor` of `sr_classifier`)."""

  def __init__(self, config, extractor):
    self.config = config
    self.extractor = extractor
    self._reference = None

  def __call__(self, task, state, data) -> dict:
    if self._reference is None:
      self._reference = data.first_images(self.config.eval_split, with_labels=True)
    hr, labels = self._reference
    lr = area_downsample(hr, task.scale)
    upscale = jax.jit(task.upscale)
    sr = np.concatenate([np.asarray(upscale(state, lr[i:i + 500]))
                         for i in range(0, len(lr), 500)])
    bicubic = np.clip(np.asarray(bicubic_upsample(lr, task.scale)), -1.0, 1.0)
    accuracy = lambda x: float(np.mean(np.argmax(self.extractor(x)[1], axis=1) == labels))
    return {"accuracy_sr": accuracy(sr), "accuracy_bicubic": accuracy(bicubic),
            "accuracy_hr": accuracy(hr)}
