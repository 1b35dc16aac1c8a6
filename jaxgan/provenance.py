"""What a run directory records to reproduce it, and the guard against
resuming it with a different config.

`run.json` holds one record per start of the run (the first start and each
resume): the step it started from, the seed, the git commit and whether the
tree was dirty, Python and package versions, the JAX backend, device kinds
and counts, the process count, the command line and the time. `config.json`
is the resolved config; a resume compares the new config with it and refuses
any difference outside `SAFE_TO_CHANGE`.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys

import jax

# Fields that change how long a run goes or what it logs, not what it computes.
SAFE_TO_CHANGE = frozenset({
    "num_train_steps", "log_every_steps", "sample_every_steps", "checkpoint_every_steps",
    "eval_every_steps", "keep_checkpoints", "data_dir", "cache_data", "num_eval_samples",
    "fid_features", "num_importance_samples", "num_sample_images", "sr_classifier",
    # Where batches are gathered, and how many steps a jitted call runs:
    # bitwise the same results either way (tested).
    "data_on_device", "steps_per_call",
    # The streamed pipeline's worker processes: the same batches for any number.
    "data_workers",
    # When a run counts as diverged (the loop's stop; 0: only at NaN/Inf).
    "divergence_threshold",
    # A training-time budget (the loop's stop; 0: none): how long a run goes.
    "max_train_seconds",
    # How StyleGAN2 samples outside training get their noise inputs: what the
    # grids and evaluations show, not what training computes.
    "model_options.noise_mode",
})

# Optimisation hyperparameters that change no shape of the train state (Adam
# keeps no learning rate or beta in its state): a resume may change them, as
# the recovery from a diverged run needs, and run.json records the change at
# the step it takes effect (`check_resume_config` returns it).
CHANGEABLE_ON_RESUME = frozenset({
    "learning_rate", "g_learning_rate", "d_learning_rate",
    "g_beta1", "g_beta2", "d_beta1", "d_beta2",
})

# Values of a field that give bitwise the same run (tested), so a resume may
# switch between them: the indexed and streamed pipelines read the same
# batches, and "auto" is one of the two.
EQUIVALENT_VALUES = {"data_pipeline": {"auto": "indexed", "streamed": "indexed"}}


def _canonical(name: str, value):
  return EQUIVALENT_VALUES.get(name, {}).get(value, value) if isinstance(value, str) else value

# Fields added to configs after runs were made, with the value that
# reproduces a run whose config.json lacks them (what the code did before the
# field existed). A resume compares an absent saved field with this value, so
# runs made by an older jaxgan still resume; code reading such a field from an
# old config uses `added_field(config, name)`.
ADDED_FIELDS = {
    "model": "dcgan", "conditional": "", "class_loss_weight": 1.0,  # conditional GANs
    "cluster_conditioning": 0,  # self-conditioned GANs
    "data_pipeline": "tfdata",  # the indexed pipeline
    "discriminator": "dcgan",  # super-resolution's adversarial discriminator, by name
    "label_smoothing": 0.0, "eval_flip_tta": False,  # classifiers
    "augment_cutout": 0, "eval_shift_tta": 0,  # classifiers, 2026-12-06
    "divergence_threshold": 0.0,  # the loop stopped only at NaN/Inf
    "max_train_seconds": 0.0,  # no training-time budget
}
# Fields added to one kind's configs only (a GAN config has always had its
# `preset`), with the value that reproduces that kind's older runs.
KIND_ADDED_FIELDS = {"classifier": {"preset": ""},
                     "vae": {"preset": "", "schedule": "constant", "free_bits": 0.0,
                             "model_options": {}},
                     "gan": {"g_orthogonal_reg": 0.0, "model_options": {}, "pl_weight": 0.0,
                             "pl_every": 4, "ada_target": 0.0, "ada_p": 0.0,
                             "ada_pipeline": "bgc", "ada_interval": 4, "ada_kimg": 500.0,
                             "g_topk": 1.0, "g_topk_decay": 0.99, "lecam_weight": 0.0,
                             "lecam_decay": 0.99, "info_codes": 0, "info_continuous": 0,
                             "info_continuous_weight": 1.0}}
# `task` (the run kind, jaxgan.runs) was added too; its value for an older run
# depends on the run, so it is inferred from the fields (`infer_task`).

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tensorflow",
            "tensorflow-cpu", "tensorflow-datasets", "ml_collections", "tensorboardX")


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def config_dict(config) -> dict:
  """The config as plain JSON values (what config.json holds)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def infer_task(config) -> str | None:
  """The run kind of a config saved before `task` existed, from the fields
  only that kind has (None when nothing fits)."""
  for field, kind in (("scale", "superres"), ("likelihood", "vae"), ("gan_loss", "gan"),
                      ("optimizer", "classifier")):
    if field in config:
      return kind
  return None


def added_field(config, name: str):
  """`config[name]`, or for a config saved before the field existed, the
  value that reproduces that run (`ADDED_FIELDS`, then the run kind's
  `KIND_ADDED_FIELDS`; `task` inferred)."""
  if name == "task":
    return config.get("task") or infer_task(config)
  if name in ADDED_FIELDS:
    return config.get(name, ADDED_FIELDS[name])
  return config.get(name, KIND_ADDED_FIELDS[added_field(config, "task")][name])


def config_differences(saved: dict, config) -> list[str]:
  """Dotted names of the fields where `config` differs from `saved` (a
  config.json), ignoring `SAFE_TO_CHANGE`; a field absent from `saved`
  counts as its `ADDED_FIELDS` (or its kind's `KIND_ADDED_FIELDS`) value."""
  new = _flatten(config_dict(config))
  kind = saved.get("task") or infer_task(saved)
  added = {**ADDED_FIELDS, "task": infer_task(saved), **KIND_ADDED_FIELDS.get(kind, {})}
  old = {**{k: v for k, v in added.items() if k in new}, **_flatten(saved)}
  return sorted(k for k in old.keys() | new.keys()
                if k.split(".")[0] not in SAFE_TO_CHANGE and k not in SAFE_TO_CHANGE
                and _canonical(k, old.get(k, "<absent>")) != _canonical(k, new.get(k, "<absent>")))


def check_resume_config(workdir: str, config) -> dict:
  """Raises ValueError naming the fields that differ from the run's
  config.json (or when it is missing: a run with checkpoints must have one);
  returns {field: [saved, new]} of the `CHANGEABLE_ON_RESUME` fields that
  differ (allowed, for the caller to record)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(
        f"{workdir} holds checkpoints but no config.json, so nothing shows that this config "
        "is the one they were trained with. Put the run's config.json back (from a copy, or "
        "rebuilt from the command in run.json), or use a new --workdir.")
  try:
    with open(path) as f:
      saved = json.load(f)
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); put the run's config.json back or "
                     "use a new --workdir.") from None
  diff = config_differences(saved, config)
  new, old = _flatten(config_dict(config)), _flatten(saved)
  changed = {k: [old.get(k), new.get(k)] for k in diff if k in CHANGEABLE_ON_RESUME}
  diff = [k for k in diff if k not in changed]
  if diff:
    details = ", ".join(f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}"
                        for k in diff)
    raise ValueError(
        f"{workdir} holds a run with a different config ({details}). Resuming it with "
        "these changes would not reproduce either run. Use a new --workdir, or rerun with "
        f"the saved values (see {path}). Safe to change on resume: "
        f"{', '.join(sorted(SAFE_TO_CHANGE))}; changeable (recorded in run.json): "
        f"{', '.join(sorted(CHANGEABLE_ON_RESUME))}.")
  return changed


def _git(*args: str) -> str | None:
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.TimeoutExpired):
    return None
  return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def collect(config, start_step: int) -> dict:
  """One record of how this process group is running `config`."""
  commit = _git("rev-parse", "HEAD")
  status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
  devices = jax.devices()
  kinds: dict[str, int] = {}
  for d in devices:
    kinds[d.device_kind] = kinds.get(d.device_kind, 0) + 1
  return {
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "start_step": start_step,
      "seed": config.seed,
      "git_commit": commit,
      "git_dirty": bool(status) if commit else None,
      "command": sys.argv,
      "python": platform.python_version(),
      "platform": platform.platform(),
      "packages": {p: v for p in PACKAGES if (v := _version(p))},
      "backend": jax.default_backend(),
      "devices": kinds,
      "device_count": len(devices),
      "local_device_count": jax.local_device_count(),
      "process_count": jax.process_count(),
  }


def record_start(workdir: str, config, start_step: int, **extra) -> dict:
  """Appends this start's record (with `extra` fields, e.g. the input
  pipeline it chose) to `workdir/run.json` (process 0 only)."""
  record = {**collect(config, start_step), **extra}
  if jax.process_index() != 0:
    return record
  path = os.path.join(workdir, "run.json")
  history = []
  if os.path.exists(path):
    with open(path) as f:
      history = json.load(f).get("starts", [])
  history.append(record)
  with open(path + ".tmp", "w") as f:
    json.dump({"starts": history}, f, indent=1)
  os.replace(path + ".tmp", path)
  return record
