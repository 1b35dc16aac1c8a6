"""Tasks: what differs between experiments (a train state and its step
functions). The loop drives any `Task` (`jaxgan/tasks/base.py`, a
`typing.Protocol`): `init_state`, `train_step`, `eval_step`,
`summarize_eval`, `sample_images`, and the attributes `images_per_step`,
`batches_per_step`, `progress_keys`."""

from jaxgan.tasks.base import Task, apply_gradients, apply_model, per_example_means

__all__ = ["Task", "apply_gradients", "apply_model", "per_example_means"]
