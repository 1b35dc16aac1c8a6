"""Orbax checkpoints of a train state in `<run_dir>/checkpoints/<step>/`.

Saves are asynchronous (training continues while the previous state is
written) and atomic (Orbax writes to a temporary directory and renames it on
completion, so an interrupted save is never mistaken for a checkpoint). The
last `max_to_keep` checkpoints are kept. Every process takes part.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, run_dir: str, max_to_keep: int = 3, asynchronous: bool = True):
    self.directory = os.path.join(os.path.abspath(run_dir), "checkpoints")
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=asynchronous,
            cleanup_tmp_directories=True,
            create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state) -> bool:
    """Starts saving `state` as `step` (returns at once when asynchronous)."""
    return self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, target, step: int | None = None):
    """Restores into the structure, dtypes and shardings of `target` (a state
    or `jax.ShapeDtypeStruct` tree); the latest step by default."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        target)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()
