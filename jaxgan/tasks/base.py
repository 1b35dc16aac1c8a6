"""The interface between the generic loop (`jaxgan.loop`) and a task, and the
helpers every task's step uses."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import flax.linen as nn
import jax
import optax


@runtime_checkable
class Task(Protocol):
  """What `jaxgan.loop.train_and_evaluate` drives.

  State and steps are pure: the loop jits `init_state`, `train_step` (state
  donated, batch sharded over the mesh) and `eval_step`.
  """

  images_per_step: int
  """Training images one step consumes (for images/s)."""
  batches_per_step: int
  """Pipeline batches one step consumes (e.g. a GAN's n_critic). With k > 1
  the step's batch leaves carry a leading axis of k: [k, batch, ...]."""
  progress_keys: tuple[str, ...]
  """The train metrics the progress bar shows."""

  def init_state(self, key: jax.Array) -> Any:
    """A pytree; jitted by the loop and replicated."""

  def train_step(self, state: Any, batch: dict) -> tuple[Any, dict]:
    """(new state, metrics): scalars, with `finite` = 1.0 if every loss was finite."""

  def eval_step(self, state: Any, batch: dict, batch_index: jax.Array) -> dict:
    """Per-batch sums of eval quantities weighted by `batch["mask"]`; the
    loop adds them up over the eval split and hands them to `summarize_eval`."""

  def summarize_eval(self, totals: dict, step: int, outdir: str | None) -> dict:
    """The summed `eval_step` outputs -> {name: float}, logged as `eval_<name>`;
    may write files under `outdir` (None except on process 0)."""

  def sample_images(self, state: Any) -> dict:
    """{name: images in [-1, 1], [N, H, W, C] or [rows, cols, H, W, C]}: run on
    every process; process 0 saves them under `samples/` as PNG grids."""


def per_example_means(totals: dict) -> dict:
  """Sums with a `count` entry -> per-example averages (`summarize_eval`'s
  usual form)."""
  count = max(float(totals["count"]), 1.0)
  return {k: float(v) / count for k, v in totals.items() if k != "count"}


def apply_model(model: nn.Module, params, batch_stats, x, *, train: bool,
                rngs: dict | None = None, **kwargs):
  """model(x) -> (output, batch_stats after the call). The `batch_stats`
  collection (BatchNorm statistics, spectral-norm vectors) is passed when
  non-empty and updated only in training."""
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
  rngs = rngs or {}
  if train and batch_stats:
    out, updates = model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"],
                               **kwargs)
    return out, updates["batch_stats"]
  return model.apply(variables, x, train=train, rngs=rngs, **kwargs), batch_stats


def apply_gradients(tx: optax.GradientTransformation, params, opt_state, grads):
  """One optimizer update -> (new params, new optimizer state)."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state
