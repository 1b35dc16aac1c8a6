"""The generic training loop, shared by every experiment.

`train_and_evaluate(config, workdir, make_task, evaluators)` builds the mesh
and the input pipeline, asks `make_task(config, data)` for a task (a
`jaxgan.tasks.Task`: a train state and its step functions), restores the latest checkpoint in
`workdir` if there is one, and trains to `config.num_train_steps`, writing the
run directory:

  config.json        the resolved config (a resume with other values is refused)
  run.json           per start: seed, git commit, package versions, devices, ...
  metrics.jsonl      one JSON object per log step (always `step`, `images_per_sec`)
  events.out.tfevents.*  TensorBoard
  samples/           the task's image grids (`sample_images`), as PNG
  checkpoints/<step> Orbax checkpoints (async, atomic, the last N kept)
  best/              the checkpoint with the best `best_metric` (if configured)
  train_seconds.json seconds of training at each checkpointed step (the budget below)
  .lock              held by the training process while it runs (`jaxgan.runlock`):
                     a second run on the directory is refused

SIGTERM or SIGINT (preemption, Ctrl-C) saves a checkpoint at the current step
and raises `Preempted`; rerunning resumes there. A second Ctrl-C stops at once.

`config.max_train_seconds` > 0 is a training-time budget: the run stops at the
first step boundary after that many seconds of training (compilation,
checkpointing and logging count; evaluations and sample grids do not), and
ends there as at its last step (evaluates, samples, checkpoints). The time
is summed over restarts (`train_seconds.json`, per checkpointed step), so a
resumed run gets what is left. Where it stops depends on the machine:
`metrics.jsonl` says the step; rerun with that `num_train_steps` and no
budget to reproduce it exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import errorlog, images, provenance, sharding
from jaxgan.checkpoint import BestCheckpoint, Checkpointer
from jaxgan.data import Data, indexed
from jaxgan.runlock import RunLock
from jaxgan.tasks import Task
from jaxgan.writers import ProgressBar, RunWriter

# Config fields every experiment has (the contract later issues rely on).
# (experiments/configs/common.py defines them, with their defaults.)
REQUIRED_FIELDS = ("task", "dataset", "data_dir", "batch_size", "num_train_steps", "seed",
                   "log_every_steps", "sample_every_steps", "checkpoint_every_steps",
                   "keep_checkpoints", "eval_every_steps", "best_metric", "best_mode",
                   "steps_per_call", "data_on_device", "image_size", "train_split",
                   "eval_split")


class NonFiniteLossError(FloatingPointError):
  """A loss became NaN or Inf; the run stopped without saving the bad state."""


class Preempted(Exception):
  """Training stopped on SIGTERM/SIGINT after checkpointing the current step."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


class _StopSignals:
  """Turns SIGTERM and SIGINT into a request to stop at the next step
  boundary (installed only in the main thread; restored on exit). With
  several processes, a request on any of them stops all of them at the same
  step: they agree every `sync_every` steps."""

  def __init__(self, sync_every: int = 10):
    self.received: int | None = None
    self.sync_every = sync_every
    self._previous = {}

  def install(self) -> None:
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)

  def restore(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    if self.received == signal.SIGINT and signum == signal.SIGINT:
      raise KeyboardInterrupt  # A second Ctrl-C: stop without saving.
    self.received = signum

  def stop_requested(self, step: int, steps_run: int = 1) -> int | None:
    """The signal to stop on at `step` (reached by a call of `steps_run`
    steps), or None; the same on every process."""
    return _max_over_processes(self.received or 0, step, steps_run, self.sync_every) or None


def _max_over_processes(value: int, step: int, steps_run: int, sync_every: int) -> int:
  """`value`'s maximum over the processes, the same on each, for stopping
  decisions: with several processes they compare only when a call (ending at
  `step`, `steps_run` steps long) crosses a multiple of `sync_every`, and get
  0 in between, so all of them stop at the same step."""
  if jax.process_count() == 1:
    return value
  if step // sync_every == (step - steps_run) // sync_every:
    return 0
  from jax.experimental import multihost_utils
  return int(np.max(multihost_utils.process_allgather(np.int32(value))))


class TrainClock:
  """Seconds of training summed over a run's starts, for `max_train_seconds`.
  Process 0 records the total at each checkpointed step in
  RUN_DIR/train_seconds.json; a start from a checkpoint continues from that
  step's total (0 for a run made before the file existed: its earlier
  starts are not counted). A damaged file is refused when `needed` (a
  budget is set), else started afresh."""

  FILE = "train_seconds.json"
  _now = staticmethod(time.monotonic)  # the clock (tests replace it)

  def __init__(self, workdir: str, start_step: int, writer: bool, needed: bool = True):
    self.path = os.path.join(workdir, self.FILE)
    self.writer = writer
    self.totals = {}
    if os.path.exists(self.path):
      try:
        with open(self.path) as f:
          self.totals = {int(k): float(v) for k, v in json.load(f).items()}
      except (ValueError, AttributeError) as e:
        if not needed:
          self.totals = {}
        else:
          raise ValueError(f"{self.path} is damaged ({e}); delete it to count the training "
                           "time from this start (earlier starts are then not counted).") from None
    self.totals = {k: v for k, v in self.totals.items() if k <= start_step}
    self.before = self.totals.get(start_step, 0.0)
    self._t0 = self._now()
    self._paused = 0.0

  @contextlib.contextmanager
  def paused(self):
    """Time inside is not training (evaluations, sample grids)."""
    t = self._now()
    try:
      yield
    finally:
      self._paused += self._now() - t

  def seconds(self) -> float:
    return self.before + self._now() - self._t0 - self._paused

  def record(self, step: int) -> None:
    self.totals[step] = round(self.seconds(), 3)
    if self.writer:
      with open(self.path + ".tmp", "w") as f:
        json.dump({str(k): v for k, v in sorted(self.totals.items())}, f)
      os.replace(self.path + ".tmp", self.path)


@dataclasses.dataclass
class TrainResult:
  state: Any
  start_step: int  # the step training (re)started from in this call
  step: int  # the step reached
  last_metrics: dict


def validate_config(config) -> None:
  missing = [f for f in REQUIRED_FIELDS if f not in config]
  if missing:
    raise ValueError(f"Config is missing required fields: {', '.join(missing)} (start it "
                     "from experiments/configs/common.py:base_config).")
  for field in ("batch_size", "image_size", "log_every_steps", "sample_every_steps",
                "checkpoint_every_steps"):
    if not isinstance(config[field], int) or config[field] <= 0:
      raise ValueError(f"config.{field} must be a positive integer, got {config[field]!r}.")
  if not isinstance(config.num_train_steps, int) or config.num_train_steps < 0:
    raise ValueError(f"config.num_train_steps must be a non-negative integer, got "
                     f"{config.num_train_steps!r}.")
  budget = provenance.added_field(config, "max_train_seconds")
  if (isinstance(budget, bool) or not isinstance(budget, (int, float))
      or not 0 <= budget < float("inf")):
    raise ValueError(f"config.max_train_seconds must be a number of seconds >= 0 (0: no "
                     f"training-time budget), got {budget!r}.")
  _steps_per_call(config)
  indexed.on_device_setting(config.data_on_device)


def _mean_metrics(history: list[dict]) -> dict:
  return {k: float(np.mean([h[k] for h in history])) for k in history[0]}


def _first_bad_step(history: list[dict], first_step: int, threshold: float) -> int | None:
  """The first step whose losses are NaN/Inf or (threshold > 0) beyond
  +-threshold: finite but diverged (e.g. ~1e25 at a learning rate of 1e6)."""
  for i, h in enumerate(history):
    if h.get("finite", 1.0) < 1.0:
      return first_step + i
    if threshold and any(abs(float(v)) > threshold for k, v in h.items() if k != "finite"):
      return first_step + i
  return None


def _diverged_message(config, step: int, values: dict, threshold: float, kept,
                      directory: str) -> str:
  """What happened, where the last good state is, and the fields of this
  run's task that a resume may lower (`provenance.CHANGEABLE_ON_RESUME`)."""
  values = {k: float(v) for k, v in values.items() if k != "finite"}
  what = ("became NaN/Inf" if not all(np.isfinite(list(values.values())))
          else f"diverged beyond divergence_threshold={threshold:g}")
  rates = [k for k in sorted(provenance.CHANGEABLE_ON_RESUME)
           if k.endswith("learning_rate") and k in config]
  lower = " and ".join(f"--config.{k} (now {config[k]:g})" for k in rates)
  where = f"step {kept} in {directory}" if kept is not None else f"none (in {directory})"
  shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
  return (f"The losses {what} at step {step} ({shown}). "
          f"Stopped without saving; the last good checkpoint is {where}. Rerun the same "
          f"command with a lower {lower or 'learning rate'} (changeable on resume, recorded "
          "in run.json) or check the data, and it resumes from there.")


# An evaluator: (task, state, data) -> {name: float}, logged as eval_<name>
# at every evaluation (e.g. a generator's FID: jaxgan.evaluation.training).
Evaluator = Callable[[Task, Any, Data], dict]


def evaluate(task: Task, state, data: Data, mesh, eval_fn, local_batch: int, step: int = 0,
             workdir: str | None = None, evaluators: Sequence[Evaluator] = ()) -> dict:
  """The task's `eval_step` sums over the whole eval split, turned into
  metrics by the task's `summarize_eval` (which may write files under
  `workdir` on process 0), and the evaluators' metrics."""
  batches, _ = data.eval_batches(local_batch, mesh)
  totals = None
  for i, batch in enumerate(batches):
    # Summed on the host (the same float32 additions, in the same order):
    # op-by-op jnp.add here aborted the process now and then on CPU.
    sums = jax.device_get(eval_fn(state, batch, jnp.int32(i)))
    totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
  outdir = workdir if jax.process_index() == 0 else None
  summary = task.summarize_eval(totals, step=step, outdir=outdir)
  results = {f"eval_{k}": float(v) for k, v in summary.items()}
  for evaluator in evaluators:
    results.update({f"eval_{k}": float(v) for k, v in evaluator(task, state, data).items()})
  return results


def _multi_step(task: Task, feed, num_steps: int) -> Callable:
  """The function the loop jits: (state, inputs, resident) -> (state, metrics
  with a leading axis of `num_steps`, the states between the steps). `inputs`
  holds the feed's inputs for num_steps * task.batches_per_step batches; each
  step turns its share into batches with `feed.to_batch` (with
  `batches_per_step = k > 1`, stacked along a new leading axis: [k, batch,
  ...]) and runs `task.train_step`.

  Several steps run unrolled in one program (compiled once per K; compile
  time grows with K). Every step's state is also an output, which the loop
  drops at once: a state that stayed inside the program would be compiled
  differently from one that leaves it (XLA picks its layout and fusions
  freely, and its CPU compiler drops `optimization_barrier`s before fusing),
  and the DCGAN's state then differed from one step per call in the last
  bits. As outputs, K steps per call are bitwise equal to K calls of one step
  on CPU (tested for the DCGAN, WGAN-GP and the classifier; measured for
  every GAN preset and the VAE), for the price of K - 1 more states in
  memory at the end of a call. A rolled `lax.scan` was neither bitwise nor fast on XLA:CPU."""
  per_step = task.batches_per_step

  def one_step(state, inputs, resident):
    batches = [feed.to_batch(x, resident) for x in inputs]
    batch = batches[0] if per_step == 1 else jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    return task.train_step(state, batch)

  def run(state, inputs, resident):
    states, per_call = [], []
    for i in range(num_steps):
      state, metrics = one_step(state, inputs[i * per_step:(i + 1) * per_step], resident)
      states.append(state)
      per_call.append(metrics)
    return state, jax.tree.map(lambda *ms: jnp.stack(ms), *per_call), tuple(states[:-1])

  return run


def _steps_per_call(config) -> int:
  k = config.steps_per_call
  if not isinstance(k, int) or isinstance(k, bool) or k < 1:
    raise ValueError(f"config.steps_per_call must be an integer >= 1, got {k!r}.")
  return k


def _next_boundary(step: int, config, num_steps: int) -> int:
  """The first step after `step` that logs, samples, checkpoints or evaluates."""
  periods = [config.log_every_steps, config.sample_every_steps, config.checkpoint_every_steps]
  if config.eval_every_steps and config.eval_split:
    periods.append(config.eval_every_steps)
  return min([num_steps] + [(step // p + 1) * p for p in periods])


def train_and_evaluate(config, workdir: str, make_task: Callable[[Any, Data], Task],
                       evaluators: Sequence[Evaluator] = ()) -> TrainResult:
  """Trains `make_task(config, data)` (`data.info` has the image shape and
  split sizes) for config.num_train_steps, writing and resuming `workdir`;
  each of `evaluators` adds metrics at every evaluation."""
  validate_config(config)
  mesh = sharding.make_mesh()
  local_batch = sharding.local_batch_size(config.batch_size, mesh)
  data = Data(config)
  task = make_task(config, data)
  is_main = jax.process_index() == 0

  workdir = os.path.abspath(workdir)
  if is_main:
    os.makedirs(workdir, exist_ok=True)
  # Process 0 owns the directory before anything is written (a second run is
  # refused); the kernel releases the lock at exit, even on SIGKILL.
  with (RunLock(workdir) if is_main else contextlib.nullcontext(),
        errorlog.background_errors_logged(workdir)):
    return _train(config, workdir, task, data, mesh, local_batch, is_main, evaluators)


def _train(config, workdir: str, task: Task, data: Data, mesh, local_batch: int, is_main: bool,
           evaluators: Sequence[Evaluator]) -> TrainResult:
  ckpt = Checkpointer(workdir, max_to_keep=config.keep_checkpoints, writer=True)
  changed = {}  # learning rates changed on resume, recorded in run.json
  if ckpt.latest_step() is not None:
    try:
      changed = provenance.check_resume_config(workdir, config)
    except ValueError:
      ckpt.close()
      raise
  if is_main:
    with open(os.path.join(workdir, "config.json.tmp"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    os.replace(os.path.join(workdir, "config.json.tmp"), os.path.join(workdir, "config.json"))
    data.save_info(workdir)  # so that a restore needs no data (jaxgan.runs.restore)

  repl, batch_sharding = sharding.replicated(mesh), sharding.data_sharded(mesh)
  init_key = jax.random.PRNGKey(config.seed)

  best = (BestCheckpoint(workdir, config.best_metric, config.best_mode)
          if config.best_metric else None)
  writer = RunWriter(workdir)
  progress = feed = None
  signals = _StopSignals()
  try:
    # A restore needs only the state's shapes: the initialisation is
    # compiled and run only when there is nothing to resume.
    state, restored_step = ckpt.restore_latest_good(
        jax.eval_shape(task.init_state, init_key), sharding=repl)
    if restored_step is None:
      state = jax.jit(task.init_state, out_shardings=repl)(init_key)
    start_step = int(jax.device_get(state.step))
    provenance.record_start(workdir, config, start_step, input=data.describe(),
                            **({"changed": changed} if changed else {}))
    writer.drop_metrics_after(start_step)  # Steps logged after the checkpoint rerun.
    num_steps = config.num_train_steps
    progress = ProgressBar(num_steps, start_step, desc=os.path.basename(workdir),
                           keys=tuple(task.progress_keys) + ("images_per_sec",))
    progress.write(data.describe())
    if start_step:
      progress.write(f"Resuming from the checkpoint at step {start_step} in {ckpt.directory}.")
    if changed:
      progress.write("Changed from step " + str(start_step) + " on (recorded in run.json): "
                     + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()) + ".")
    if start_step >= num_steps:
      progress.write(f"Already at step {start_step} >= num_train_steps={num_steps}; "
                     "nothing to train.")
      return TrainResult(state, start_step, start_step, {})
    budget = float(provenance.added_field(config, "max_train_seconds"))
    clock = TrainClock(workdir, start_step, writer=is_main, needed=bool(budget))
    if budget and clock.before >= budget:
      progress.write(f"Already trained {clock.before:.0f} s >= max_train_seconds={budget:g} "
                     f"(at step {start_step}); nothing to train. Raise the budget (or set it "
                     "to 0) to train on.")
      return TrainResult(state, start_step, start_step, {})

    steps_per_call = _steps_per_call(config)
    # A step consumes batches_per_step pipeline batches; a resume skips them all.
    per_step = task.batches_per_step
    feed = data.train_feed(mesh, start_step * per_step)
    inputs = feed.inputs()
    calls: dict[int, Callable] = {}  # steps per call -> jitted function

    def train_steps(state, n):
      if n not in calls:
        calls[n] = jax.jit(_multi_step(task, feed, n),
                           out_shardings=(repl, repl, repl),
                           donate_argnums=0)
      state, metrics, _ = calls[n](state, tuple(next(inputs) for _ in range(n * per_step)),
                                   feed.resident)
      return state, metrics

    eval_fn = jax.jit(task.eval_step, in_shardings=(repl, batch_sharding, repl),
                      out_shardings=repl)

    history: list = []  # device metrics since the last check, [n] per call
    history_start = start_step + 1
    last_metrics: dict = {}
    t_start = time.time()
    t_last, timed_steps = None, 0
    eval_every = config.eval_every_steps
    threshold = float(provenance.added_field(config, "divergence_threshold"))
    signals.install()
    step = start_step
    while step < num_steps:
      # Calls end at boundaries, so each boundary sees its own step.
      n = min(steps_per_call, _next_boundary(step, config, num_steps) - step)
      state, metrics = train_steps(state, n)
      ckpt.check()  # a failed asynchronous save stops the run now, naming the last good one
      step += n
      history.append(metrics)
      if len(history) >= 2:
        # At most two calls in flight: the host never runs far ahead of the
        # devices (bounded memory), and XLA's CPU backend cannot deadlock
        # with many queued multi-device steps waiting on each other's
        # collectives (seen with 8 simulated devices and tiny models).
        jax.block_until_ready(history[-2])
      if t_last is None:  # Exclude compilation from the throughput.
        jax.block_until_ready(metrics)
        t_last, timed_steps = time.time(), 0
      else:
        timed_steps += n
      stop_signal = signals.stop_requested(step, n)
      out_of_time = bool(budget) and bool(_max_over_processes(
          int(clock.seconds() >= budget), step, n, signals.sync_every))
      last = step == num_steps or out_of_time
      do_eval = bool(eval_every) and config.eval_split and (step % eval_every == 0 or last)
      do_ckpt = step % config.checkpoint_every_steps == 0 or last or bool(stop_signal)
      # A stop logs too, so that no step between the last log and the
      # checkpoint goes unlogged.
      do_log = step % config.log_every_steps == 0 or last or do_eval or bool(stop_signal)
      do_sample = step % config.sample_every_steps == 0 or last

      if do_log or do_ckpt:
        fetched = [{k: v[i] for k, v in m.items()}
                   for m in jax.device_get(history) for i in range(len(m["finite"]))]
        bad = _first_bad_step(fetched, history_start, threshold)
        if bad is not None:
          ckpt.wait()
          raise NonFiniteLossError(_diverged_message(
              config, bad, fetched[bad - history_start], threshold, ckpt.latest_step(),
              ckpt.directory))
        history, history_start = [], step + 1
        if do_log:
          now = time.time()
          rate = (timed_steps * task.images_per_step / (now - t_last)
                  if timed_steps else float("nan"))
          last_metrics = {**{k: v for k, v in _mean_metrics(fetched).items() if k != "finite"},
                          "images_per_sec": rate, "wall_time_s": now - t_start}
          if len(fetched) != config.log_every_steps:
            # A shorter interval (after a resume, at a stop or the last
            # step): how many steps the means are over.
            last_metrics["logged_steps"] = len(fetched)
          if do_eval:
            with clock.paused():
              last_metrics.update(evaluate(task, state, data, mesh, eval_fn, local_batch,
                                           step, workdir, evaluators))
            if best is not None:
              best.update(step, state, last_metrics)
              if best.best is not None:
                last_metrics[f"best_{config.best_metric}"] = best.best
          writer.write_metrics(step, last_metrics)
          progress.update(step, last_metrics)
      else:
        progress.update(step)

      if do_sample:
        with clock.paused():
          figures = task.sample_images(state)
          if figures:
            write_images(figures, step, workdir, writer)
      if do_ckpt:
        ckpt.save(step, state)
        clock.record(step)
      if stop_signal:
        ckpt.wait()
        writer.flush()
        name = signal.Signals(stop_signal).name
        raise Preempted(f"Stopped by {name} at step {step}; saved a checkpoint of step {step} "
                        f"in {ckpt.directory}. Rerun the same command to resume.", stop_signal)
      if do_log or do_sample or do_ckpt:
        t_last, timed_steps = time.time(), 0  # Time training only.
      if out_of_time:
        progress.write(f"Stopped at step {step} of {num_steps}: the training time budget "
                       f"max_train_seconds={budget:g} is spent ({clock.seconds():.0f} s).")
        break
    ckpt.wait()
    writer.flush()
    return TrainResult(state, start_step, step, last_metrics)
  finally:
    _close_all(signals.restore,
               feed and feed.close,  # stops the prefetch thread
               progress and progress.close, ckpt.close, best and best.close, writer.close)


def _close_all(*closers) -> None:
  """Calls each closer (None: skipped), all of them whatever fails. When the
  run is already ending in an error, theirs (e.g. the same full disk) are
  left out so that the run's own error is the one reported; otherwise the
  first is raised."""
  failing = sys.exc_info()[1] is not None
  first = None
  for close in closers:
    if close is None:
      continue
    try:
      close()
    except Exception as e:  # noqa: BLE001
      first = first or e
  if first is not None and not failing:
    raise first


def write_images(named_images: dict, step: int, workdir: str, writer: RunWriter) -> None:
  """Process 0 saves each batch in [-1, 1] as a PNG grid: `samples/step_<step>.png`
  for "samples", `samples/<name>_step_<step>.png` for any other name, and to
  TensorBoard. A batch is [N, H, W, C] (a square-ish grid) or [rows, cols, H, W, C]."""
  if jax.process_index() != 0:
    return
  flat = {}
  for name, batch in named_images.items():
    batch = np.asarray(batch)
    ncols = batch.shape[1] if batch.ndim == 5 else None
    flat[name] = batch.reshape((-1, *batch.shape[-3:]))
    prefix = "" if name == "samples" else f"{name}_"
    images.save_grid(flat[name], os.path.join(workdir, "samples", f"{prefix}step_{step:07d}.png"),
                     ncols=ncols)
  writer.write_images(step, flat)
