"""The fields every config has (the run kind, data, run directory), with
their defaults in one place; each kind's config (classifier.py, gan.py,
superres.py, vae.py) starts from `base_config` and sets its own values.

`python -m experiments.fields --config experiments/configs/KIND.py[:PRESET]`
prints a config's fields, defaults and comments.
"""

import ml_collections

placeholder = ml_collections.config_dict.placeholder


def from_preset(kind: str, presets: dict, preset: str, base) -> ml_collections.ConfigDict:
  """`base()` with `presets[preset]` applied, recording `preset` ('' for the
  MNIST default); an unknown name is an error listing the presets."""
  if preset not in presets:
    raise ValueError(f"Unknown {kind} preset {preset!r}; use one of "
                     f"{', '.join(p for p in presets if p)} (or none).")
  config = base()
  presets[preset](config)
  config.preset = preset  # the preset the config was made from ('' for MNIST)
  return config


def base_config(task: str, image_size: int = 28) -> ml_collections.ConfigDict:
  """The shared fields; `task` names the run kind (`jaxgan.runs.KINDS`)."""
  config = ml_collections.ConfigDict()
  config.task = task  # gan | classifier | vae | superres (jaxgan/runs.py)

  # Data (docs/data.md). `dataset`: a TFDS catalog name (mnist, cifar10,
  # celeb_a, ...) or one of the local forms jaxgan/data/sources.py registers
  # (SOURCES); splits use TFDS syntax (train, train[:90%], test[9000:], a+b).
  config.dataset = "mnist"
  config.data_dir = placeholder(str)  # None: TFDS's default
  config.train_split = "train"
  config.eval_split = "test"
  config.image_size = image_size  # images are centre-cropped and resized to it
  # "auto": "indexed" when the fitted splits take at most a quarter of this
  # machine's memory, else "streamed" (the log says which); "indexed": the
  # split in memory, batches by a seeded permutation; "streamed": the same
  # batches read on demand through grain, memory independent of the split's
  # size; "tfdata": tf.data (runs made before the indexed pipeline).
  # jaxgan/data/pipeline.py, docs/data.md.
  config.data_pipeline = "auto"
  # streamed: worker processes decoding and fitting images ("auto": half the
  # CPUs, 1-8; 0: threads of the training process).
  config.data_workers = ml_collections.FieldReference("auto", field_type=object)
  config.data_on_device = ml_collections.FieldReference("auto", field_type=object)

  config.shuffle_buffer = 10_000  # tfdata: examples in the shuffle buffer
  # tfdata: keep decoded examples in memory after the first epoch (refused, before
  # training, for a split larger than half the machine's memory).
  config.cache_data = True

  # Training: the batch is global, over all devices and processes (it must
  # divide by the device count); the seed draws parameters, noise and data order.
  config.batch_size = 128
  config.num_train_steps = 1000
  config.seed = 0
  # Train steps per jitted call (unrolled); bitwise the same results, may
  # change on a resume. >1 pays where a step is short (docs/devices.md).
  config.steps_per_call = 1
  # The run stops (no save; the message says how to resume with a lower
  # learning rate) when a logged loss is NaN/Inf or beyond +-this: finite but
  # diverged (0: only at NaN/Inf). Far above any healthy loss or metric here.
  config.divergence_threshold = 1e8
  # A training-time budget in seconds (0: none): the run stops at the first
  # step boundary after this much training (compilation included, evaluations
  # and sample grids not; summed over restarts) and ends there as at its last
  # step. For comparisons at equal wall time (docs/runs.md); the step it
  # reaches depends on the machine.
  config.max_train_seconds = 0.0

  # Run directory (docs/runs.md): metrics.jsonl every log_every_steps,
  # sample grids every sample_every_steps, Orbax checkpoints (the last
  # keep_checkpoints kept), evaluation on eval_split every eval_every_steps
  # and at the last step (0 disables); the checkpoint with the best
  # `best_metric` (None: none kept) in best/.
  config.log_every_steps = 100
  config.sample_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 3
  config.eval_every_steps = 1000
  config.best_metric = placeholder(str)
  config.best_mode = "min"  # min | max
  return config
