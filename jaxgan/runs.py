"""Run kinds by name, and the one place that opens run directories.

Every trainable config names its kind in `config.task` ("gan", "classifier",
"vae", "superres"); `KINDS` maps each name to a `RunKind`: how to build its
task from a config and its data (`build`, restoring the runs the task
depends on and passing them in) and which evaluators it logs. `train(config,
workdir)` trains any kind through `jaxgan.loop`; `restore(run_dir)` opens
any run directory as a `Run` (config, data, task, restored state, step).
Runs saved before `task` existed get their kind inferred from their fields
(`provenance.infer_task`), here and in the resume guard only.

Specs that may name a run directory are resolved here too, so the layers
below never open runs themselves: `extractor(spec)` (FID features),
`texture_features(spec)`.

Adding a kind: its task (`jaxgan/tasks/KIND.py`), its config
(`experiments/configs/KIND.py`, with `config.task = "KIND"`), and one
`register(RunKind(...))` line below.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections

from jaxgan import evaluation, loop, provenance
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data, DataError, load_info, load_remembered
from jaxgan.tasks import Task
from jaxgan.tasks.classifier import ClassifierTask, GeneratedData
from jaxgan.tasks.gan import make_task as make_gan_task
from jaxgan.tasks.superres import SuperResolutionTask
from jaxgan.tasks.vae import VAETask
from jaxgan.texture import features as texture_lib


@dataclasses.dataclass(frozen=True)
class RunKind:
  """A kind of trainable run."""
  name: str
  command: str  # the command that trains it: python -m experiments.<command>
  build: Callable[[ml_collections.ConfigDict, Data], Task]
  evaluators: Callable[[ml_collections.ConfigDict], Sequence[loop.Evaluator]] = (
      lambda config: ())


KINDS: dict[str, RunKind] = {}


def register(kind: RunKind) -> RunKind:
  if kind.name in KINDS:
    raise ValueError(f"Run kind {kind.name!r} is registered twice.")
  KINDS[kind.name] = kind
  return kind


def kind_of(config, where: str = "the config") -> RunKind:
  """The `RunKind` a config (or a saved config.json) names, inferred for runs
  saved before `task` existed."""
  name = config.get("task") or provenance.infer_task(config)
  if name not in KINDS:
    raise DataError(f"{where} names no run kind (config.task = {name!r}); use one of "
                    f"{', '.join(KINDS)}.")
  return KINDS[name]


def build(config, data: Data | None = None) -> Task:
  """The task of a config (untrained), on `data` or the config's own."""
  return kind_of(config).build(config, Data(config) if data is None else data)


def train(config, workdir: str) -> loop.TrainResult:
  """Trains the kind `config.task` names into `workdir` (resuming it)."""
  kind = kind_of(config)
  return loop.train_and_evaluate(config, workdir, kind.build, kind.evaluators(config))


# -- opening run directories ---------------------------------------------------


@dataclasses.dataclass
class Run:
  """A run directory opened for use: its config, data, task and the state
  restored from one of its checkpoints."""
  dir: str
  kind: str
  config: ml_collections.ConfigDict
  data: Data
  task: Any
  state: Any
  step: int

  def checkpoint_sha256(self) -> str:
    """sha256 over the files of the restored checkpoint (relative paths and
    contents)."""
    root = os.path.join(self.dir, "checkpoints", str(self.step))
    digest = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
      for name in sorted(files):
        path = os.path.join(dirpath, name)
        digest.update(os.path.relpath(path, root).encode())
        with open(path, "rb") as f:
          for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_config(run_dir: str) -> ml_collections.ConfigDict:
  """A run directory's config.json."""
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise DataError(f"{run_dir!r} is not a run directory (no config.json); pass the "
                    "--workdir of a finished or running experiment.")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def restore(run_dir: str, step: int | None = None, expect: Sequence[str] | str = ()) -> Run:
  """The run at its latest checkpoint, the one at `step`, or with step=0 its
  initial state. `expect`: the kinds the caller can use (an error names the
  kind found otherwise)."""
  run_dir = os.path.abspath(run_dir)
  config = load_config(run_dir)
  kind = kind_of(config, f"{run_dir}/config.json")
  expect = (expect,) if isinstance(expect, str) else tuple(expect)
  if expect and kind.name not in expect:
    raise DataError(f"{run_dir} is a {kind.name} run (python -m experiments.{kind.command}); "
                    f"this needs a {' or '.join(expect)} run.")
  # What the task needs of the data (image shape, classes) as the run
  # recorded it: the examples are read only if the caller asks for them.
  data = Data(config, info=load_info(run_dir), remembered=load_remembered(run_dir))
  task = kind.build(config, data)
  key = jax.random.PRNGKey(config.seed)
  if step == 0:
    return Run(run_dir, kind.name, config, data, task, jax.jit(task.init_state)(key), 0)
  ckpt = Checkpointer(run_dir)
  try:
    available = ckpt.all_steps()
    if not available:
      raise DataError(f"No checkpoints in {ckpt.directory}.")
    target = jax.eval_shape(task.init_state, key)
    on_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    if step is None:  # the newest that restores, as training resumes (none is moved)
      state, step = ckpt.restore_latest_good(target, on_device, set_aside=False)
    elif step not in available:
      raise DataError(f"No checkpoint for step {step} in {ckpt.directory}; available: "
                      f"{available} (or 0 for the initialisation).")
    else:
      state = ckpt.restore_step(target, step, on_device)
  finally:
    ckpt.close()
  return Run(run_dir, kind.name, config, data, task, state, step)


def _dependency(field: str, run_dir: str, kind: str) -> Run:
  """A run a task is built from (config.<field>), with errors naming the field."""
  try:
    return restore(run_dir, expect=kind)
  except DataError as e:
    raise ValueError(f"config.{field}: {e}") from None


# -- specs that may name a run ------------------------------------------------------


def classifier_run(run_dir: str, step: int | None = None) -> Run:
  """An `experiments.classifier` run, with an error that says how to make one."""
  try:
    return restore(run_dir, step, expect="classifier")
  except DataError as e:
    raise DataError(f"Cannot load the feature classifier: {e} Train one on the same "
                    "dataset with: python -m experiments.classifier --workdir "
                    f"{run_dir} --config.dataset=...") from None


def extractor(spec: str):
  """FID/KID feature extractor by name: "inception[:WEIGHTS]" (pytorch-fid's
  resize), "inception-clean[:WEIGHTS]" (clean-fid's), or "classifier:RUN_DIR"
  (also a bare RUN_DIR): an `experiments.classifier` run on the same data."""
  name, _, arg = spec.partition(":")
  if name in evaluation.INCEPTION_RESIZES:
    return evaluation.InceptionExtractor(arg or None, resize=evaluation.INCEPTION_RESIZES[name])
  return evaluation.ClassifierExtractor(classifier_run(arg if name == "classifier" else spec))


def _is_run_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, "config.json"))


def texture_features(spec: str):
  """A texture feature network by name: "random[:SEED]", "vgg16[:WEIGHTS]",
  "vgg19[:WEIGHTS]", or "classifier:RUN_DIR" (also a bare RUN_DIR: the
  convolutions of an `experiments.classifier` run)."""
  if _is_run_dir(spec):
    spec = f"classifier:{spec}"
  name, _, arg = spec.partition(":")
  if name == "classifier" and arg:
    try:
      return texture_lib.ClassifierFeatures(classifier_run(arg), spec)
    except DataError as e:
      raise ValueError(f"Cannot load the classifier for {spec}: {e}") from None
  return texture_lib.make_features(spec)


# -- the kinds ----------------------------------------------------------------------


def _eval_split(config) -> str:
  return config.eval_split or config.train_split


def _build_classifier(config, data: Data) -> ClassifierTask:
  generated = None
  if config.generated_data:
    gan = _dependency("generated_data", config.generated_data, "gan")
    generated = GeneratedData(gan, float(config.generated_fraction), data.info.image_shape,
                              data.info.num_classes)
  return ClassifierTask(config, data.info.image_shape, data.info.num_classes, generated,
                        data.info.class_names)


def _build_vae(config, data: Data) -> VAETask:
  # The first eval images are the fixed inputs of the reconstruction figures.
  return VAETask(config, data.info.image_shape, data.remember(
      "vae_figure_inputs", lambda: data.first_images(_eval_split(config), 32)))


def _build_superres(config, data: Data) -> SuperResolutionTask:
  perceptual = None
  if config.perceptual_weight:
    if not config.perceptual_classifier:
      raise ValueError("config.perceptual_weight > 0 needs config.perceptual_classifier (an "
                       "experiments.classifier run directory on the same images).")
    perceptual = _dependency("perceptual_classifier", config.perceptual_classifier,
                             "classifier")
  return SuperResolutionTask(config, data.info.image_shape, data.remember(
      "superres_figure_inputs", lambda: data.first_images(_eval_split(config), 8)), perceptual)


def _gan_evaluators(config) -> list:
  """FID/KID of the generator when `fid_features` is set (needs eval_split)."""
  if not (config.eval_split and config.fid_features):
    return []
  return [evaluation.GeneratorFID(config, extractor(config.fid_features))]


def _superres_evaluators(config) -> list:
  """A classifier's accuracy on super-resolved images when `sr_classifier` is set."""
  if not (config.eval_split and config.sr_classifier):
    return []
  return [evaluation.SuperResolutionAccuracy(config, extractor(
      f"classifier:{config.sr_classifier}"))]


register(RunKind("gan", "gan", make_gan_task, _gan_evaluators))
register(RunKind("classifier", "classifier", _build_classifier))
register(RunKind("vae", "vae", _build_vae))
register(RunKind("superres", "superres", _build_superres, _superres_evaluators))
