"""Run logging: `metrics.jsonl`, TensorBoard event files and a progress bar.

Only process 0 writes; on other processes every method is a no-op, so callers
need no `if jax.process_index() == 0` of their own. Event files are written
by tensorboardX (no TensorFlow needed; its writer thread does the file I/O).
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings

import jax
import numpy as np


def _plain(value):
  """JSON-safe Python scalars (NaN/Inf become strings, which JSON allows to read back)."""
  value = np.asarray(value).item() if hasattr(value, "shape") or isinstance(
      value, np.generic) else value
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


class RunWriter:
  """Appends metrics to `<run_dir>/metrics.jsonl` and TensorBoard events."""

  def __init__(self, run_dir: str, tensorboard: bool = True):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(run_dir, "metrics.jsonl")
    self._tb = None
    if self.enabled:
      os.makedirs(run_dir, exist_ok=True)
      if tensorboard:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(run_dir, flush_secs=30)

  def write_metrics(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for k, v in record.items():
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
          self._tb.add_scalar(k, v, int(step))

  def drop_metrics_after(self, step: int) -> None:
    """Removes records past `step` (logged after the checkpoint a resumed run
    restarts from, so they are about to be logged again), and a torn last
    line from a killed process."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if record.get("step", 0) <= step:
        kept.append(json.dumps(record) + "\n")
    if len(kept) != len(lines):
      with open(self.path + ".tmp", "w") as f:
        f.writelines(kept)
      os.replace(self.path + ".tmp", self.path)

  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """Images in [-1, 1], [N, H, W, C], to TensorBoard."""
    if self.enabled and self._tb is not None:
      for k, v in images.items():
        self._tb.add_images(k, np.clip((np.asarray(v) + 1.0) / 2.0, 0.0, 1.0), int(step),
                            dataformats="NHWC")

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def read_metrics(run_dir: str) -> list[dict]:
  """The records of a run's `metrics.jsonl`, in order. A torn last line (a
  process killed while writing it; the resume drops it too) is skipped with
  a warning; a damaged line elsewhere is a ValueError naming the file and line."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [(i, line) for i, line in enumerate(f, start=1) if line.strip()]
  records = []
  for n, (i, line) in enumerate(lines):
    try:
      record = json.loads(line)
      if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    except ValueError as e:
      if n == len(lines) - 1 and not line.endswith("\n"):
        warnings.warn(f"{path}: skipped its torn last line {i} (a process killed while "
                      "writing it).")
        break
      raise ValueError(f"{path}: line {i} is not a JSON record ({e}); remove or repair the "
                       "line.") from None
    records.append(record)
  return records


class ProgressBar:
  """Terminal progress: step, ETA and the latest metrics (process 0 only)."""

  def __init__(self, total: int, initial: int, desc: str, keys: tuple[str, ...]):
    self.keys = keys
    self._bar = None
    if jax.process_index() == 0:
      from tqdm import tqdm
      interactive = sys.stderr.isatty()
      self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step",
                       dynamic_ncols=True, mininterval=0.5 if interactive else 30.0,
                       file=sys.stderr)

  def update(self, step: int, metrics: dict | None = None) -> None:
    if self._bar is None:
      return
    if metrics:
      shown = {k: metrics[k] for k in self.keys if k in metrics}
      self._bar.set_postfix({k: f"{float(v):.3g}" for k, v in shown.items()}, refresh=False)
    self._bar.update(step - self._bar.n)

  def write(self, message: str) -> None:
    if self._bar is not None:
      self._bar.write(message, file=sys.stderr)
    elif jax.process_index() == 0:
      print(message, file=sys.stderr)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
