"""Orbax checkpoints of a train state in `<run_dir>/checkpoints/<step>/`.

Saves are asynchronous (training continues while the previous state is
written) and atomic (Orbax writes to a temporary directory and renames it on
completion, so an interrupted save is never mistaken for a checkpoint). The
last `max_to_keep` checkpoints are kept. Every process takes part.
`restore_latest_good` skips a checkpoint that cannot be read (a file
truncated or lost by a crash) in favour of the previous one.
`BestCheckpoint` keeps, beside them, the one with the best eval metric.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re

import jax
import orbax.checkpoint as ocp


class CheckpointSaveError(RuntimeError):
  """A checkpoint could not be written (full disk, lost permissions, ...);
  the message names the step, the cause and the last good checkpoint."""


# OS errors worth leading a failed save's message with (TensorStore's own
# messages run to several hundred characters around them).
_OS_ERRORS = re.compile(r"No space left on device|Disk quota exceeded|Permission denied|"
                        r"Read-only file system|Input/output error|Too many open files")


class Checkpointer:

  def __init__(self, run_dir: str, max_to_keep: int = 3, asynchronous: bool = True,
               writer: bool = False):
    """`writer`: the training run that saves here (one per directory:
    `jaxgan.runlock`). Only it removes the temporary directories of saves a
    killed process left unfinished; a reader (evaluation, a test, a second
    look while training runs) must not, or it would delete the temporary
    directory of the writer's save in flight."""
    self.directory = os.path.join(os.path.abspath(run_dir), "checkpoints")
    self._saving: int | None = None  # the step of the save in flight
    self._reported = False  # a failed save was raised as CheckpointSaveError
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=asynchronous,
            cleanup_tmp_directories=writer,
            create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state) -> bool:
    """Starts saving `state` as `step` (returns at once when asynchronous),
    after `check`ing that the previous save succeeded."""
    self.check()
    # Orbax waits for the previous save before starting this one; waiting here
    # first (no slower) blames a failure on the step whose save failed.
    self.wait()
    self._saving = step
    try:
      return self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise many kinds
      raise self._failed(e) from None

  def check(self) -> None:
    """Raises `CheckpointSaveError` if the asynchronous save in flight has
    failed (cheap: the loop calls it after every jitted call, so a failure
    stops the run at once rather than at the next save)."""
    if self._saving is None:
      return
    try:
      self.manager.check_for_errors()
    except Exception as e:  # noqa: BLE001
      raise self._failed(e) from None

  def _failed(self, error: BaseException) -> CheckpointSaveError:
    step, self._saving, self._reported = self._saving, None, True
    text = " ".join(str(error).split())
    named = re.search(r"checkpoints/(\d+)\.orbax-checkpoint-tmp", text)
    step = int(named.group(1)) if named else step  # the save that failed, not the next one
    cause = _OS_ERRORS.search(text)
    try:
      self.manager.reload()
      good = [s for s in self.all_steps() if s != step]
    except Exception:  # noqa: BLE001 - the directory itself may be gone
      good = []
    last = (f"step {max(good)} in {self.directory}" if good
            else f"none (in {self.directory})")
    return CheckpointSaveError(
        f"Saving the checkpoint of step {step} failed: "
        f"{cause.group(0) if cause else type(error).__name__} ({text[:300]}). The last good "
        f"checkpoint is {last}. Fix the cause (e.g. free disk space) and rerun the same "
        "command to resume from it.")

  def restore(self, target, step: int | None = None, sharding=None):
    """Restores into the structure, dtypes and shardings of `target` (a state
    or `jax.ShapeDtypeStruct` tree, e.g. from `jax.eval_shape`); the latest
    step by default. `sharding`, when given, is every leaf's sharding.

    A state field added to the train state since the checkpoint was written
    (a dataclass field that is None in `target`: an option the run does not
    use) is restored as None, so runs saved by an older version still
    resume and evaluate."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                       sharding=sharding or getattr(x, "sharding", None)),
        target)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except ValueError:
      unused = self._new_unused_fields(abstract, step)
      if not unused:
        raise
    fields = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(abstract)
              if f.name not in unused}
    saved = self.manager.restore(step, args=ocp.args.StandardRestore(fields))
    return type(target)(**saved, **{name: None for name in unused})

  def _new_unused_fields(self, abstract, step: int) -> list[str]:
    """The fields of a dataclass state that are None in it and absent from
    the checkpoint of `step` (added to the state after it was written)."""
    if not dataclasses.is_dataclass(abstract):
      return []
    try:
      saved = ocp.StandardCheckpointer().metadata(
          os.path.join(self.directory, str(step), "default")).item_metadata.tree
    except Exception:  # noqa: BLE001 - no readable metadata: report the first error
      return []
    if not isinstance(saved, dict):
      return []
    return [f.name for f in dataclasses.fields(abstract)
            if f.name not in saved and getattr(abstract, f.name) is None]

  def restore_latest_good(self, target, sharding=None, set_aside: bool = True) -> tuple:
    """(state, step) from the newest checkpoint that restores; (target, None)
    when there is none. A newer checkpoint that fails to restore while an
    older one succeeds is unreadable (written by a crashed process or damaged
    since): it is reported and, with `set_aside` (training; readers such as
    `jaxgan.runs.restore` leave the directory as it is), moved aside to
    `<step>.unreadable`. When none restores, the first error is raised as one
    ValueError and nothing is moved."""
    steps = sorted(self.all_steps(), reverse=True)
    errors = []
    for step in steps:
      try:
        state = self.restore(target, step, sharding)
      except Exception as e:  # Orbax/TensorStore raise many kinds.
        errors.append((step, e))
        continue
      if errors:
        if set_aside:
          self._set_aside([s for s, _ in errors])
        for bad, e in errors:
          done = (f"moved it to {bad}.unreadable and resumed from step {step}" if set_aside
                  else f"used step {step} instead")
          message = (f"Checkpoint step {bad} in {self.directory} could not be restored "
                     f"({type(e).__name__}: {_first_line(e)}); {done}.")
          print(f"warning: {message}", flush=True)
      return state, step
    if errors:
      step, e = errors[0]
      raise ValueError(f"No checkpoint in {self.directory} can be restored into this "
                       f"run's state (step {step}: {type(e).__name__}: {_first_line(e)}). If "
                       "the model or code changed, use a new --workdir.") from None
    return target, None

  def restore_step(self, target, step: int, sharding=None):
    """The checkpoint of `step`, or one ValueError naming it and the error."""
    try:
      return self.restore(target, step, sharding)
    except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise many kinds
      raise ValueError(f"Checkpoint step {step} in {self.directory} cannot be restored "
                       f"({type(e).__name__}: {_first_line(e)}); choose another --step or "
                       "leave it out for the newest readable one.") from None

  def _set_aside(self, steps: list[int]) -> None:
    if jax.process_count() > 1:  # Every process has finished reading first.
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("jaxgan_checkpoint_set_aside")
    if jax.process_index() == 0:
      for step in steps:
        src = os.path.join(self.directory, str(step))
        dst = src + ".unreadable"
        if os.path.exists(dst):
          dst += "." + str(os.getpid())
        os.rename(src, dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("jaxgan_checkpoint_set_aside_done")
    self.manager.reload()

  def wait(self):
    """Waits for the save in flight; `CheckpointSaveError` if it failed."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001
      if self._reported:
        return
      raise self._failed(e) from None
    self._saving = None

  def close(self):
    """Waits for the save in flight and closes. A failure already reported
    (`CheckpointSaveError`) is not raised again."""
    try:
      self.wait()
    finally:
      try:
        self.manager.close()
      except Exception:  # noqa: BLE001 - its failed save was reported already
        if not self._reported:
          raise


class BestCheckpoint:
  """Keeps the checkpoint with the best value of one logged metric (e.g.
  `eval_fid`, mode "min") in `<run_dir>/best/checkpoints/<step>`, with
  `<run_dir>/best/best.json` recording the metric, its value and the step;
  a resumed run continues from the recorded value."""

  def __init__(self, run_dir: str, metric: str, mode: str = "min"):
    if mode not in ("min", "max"):
      raise ValueError(f"config.best_mode must be 'min' or 'max', got {mode!r}.")
    self.metric, self.mode = metric, mode
    self.directory = os.path.join(os.path.abspath(run_dir), "best")
    self.record_path = os.path.join(self.directory, "best.json")
    self._ckpt = None
    self.best = None
    if os.path.exists(self.record_path):
      with open(self.record_path) as f:
        record = json.load(f)
      if record.get("metric") == metric:
        self.best = record["value"]

  def update(self, step: int, state, metrics: dict) -> bool:
    """Saves `state` if metrics[metric] beats the best so far; True if it did."""
    value = metrics.get(self.metric)
    if value is None or not math.isfinite(value):
      return False
    if self.best is not None and (value >= self.best if self.mode == "min"
                                  else value <= self.best):
      return False
    if self._ckpt is None:
      self._ckpt = Checkpointer(self.directory, max_to_keep=1, writer=True)
    self._ckpt.save(step, state)
    self._ckpt.wait()  # The record names a complete checkpoint.
    self.best = value
    if jax.process_index() == 0:
      with open(self.record_path + ".tmp", "w") as f:
        json.dump({"metric": self.metric, "mode": self.mode, "value": value, "step": step}, f)
      os.replace(self.record_path + ".tmp", self.record_path)
    return True

  def close(self):
    if self._ckpt is not None:
      self._ckpt.close()


def _first_line(error: BaseException, limit: int = 200) -> str:
  """An error's message cut to its first line (TensorStore's run to pages,
  and end in a pointer to details that prints as a bound method)."""
  text = str(error).split("See full TensorStore details")[0].strip().splitlines()
  return (text[0] if text else "").rstrip(". ")[:limit]
