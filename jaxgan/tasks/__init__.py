"""Tasks: what differs between experiments (a train state and its step functions).

The generic loop (`jaxgan.loop`) drives any object with this interface:

- `init_state(key) -> state`: a pytree; jitted by the loop and replicated.
- `train_step(state, batch) -> (state, metrics)`: pure; the loop jits it with
  the state donated and the batch sharded over the mesh. `metrics` is a dict of
  scalars and must hold `finite` (1.0 if every loss was finite).
- `eval_step(state, batch, batch_index) -> sums`: pure; per-batch sums of eval
  quantities weighted by `batch["mask"]`, with the example count in `count`.
  The loop averages them over the split and logs them as `eval_<name>`.
- `sample_images(state) -> {name: array in [-1, 1]}`, each [N, H, W, C] or
  [rows, cols, H, W, C]: run on every process; process 0 saves them under
  `samples/` as PNG grids.
- `summarize_eval(totals, step, outdir) -> {name: float}` (optional): turns
  the summed `eval_step` outputs into the logged metrics instead of the
  per-example average, and may write files under `outdir` (None except on
  process 0), e.g. a classifier's confusion matrix.
- `eval_info` (optional): a dict of constants logged with every evaluation
  as `eval_<name>` (e.g. the number of importance samples used).
- `images_per_step`: how many training images one step consumes.
- `progress_keys`: the metrics the progress bar shows.
"""

from jaxgan.tasks.gan import GANState, GANTask, NetState

__all__ = ["GANState", "GANTask", "NetState"]
