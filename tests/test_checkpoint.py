"""Checkpoint save -> restore round-trips the whole train state exactly."""

import jax
import numpy as np
import pytest

from conftest import compiled
from experiments.configs.dcgan import get_config
from jaxgan import sharding
from jaxgan.checkpoint import Checkpointer
from jaxgan.tasks.gan import GANTask


def test_round_trip_is_exact_and_keeps_sharding(tmp_path):
  config = get_config()
  config.batch_size = 16
  task = GANTask(config, (28, 28, 1))
  mesh, init, step = compiled(task, tuple(jax.devices()))  # the loop's shardings
  repl = sharding.replicated(mesh)
  state = init(jax.random.PRNGKey(0))
  batch = sharding.to_global_batch(
      {"image": np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32),
       "label": np.zeros(16, np.int32)}, mesh)
  state, _ = step(state, batch)  # Non-trivial optimizer state and batch statistics.

  ckpt = Checkpointer(str(tmp_path), max_to_keep=2)
  for s in (1, 2, 3):
    ckpt.save(s, state)
  ckpt.wait()
  assert ckpt.all_steps() == [2, 3]  # The last max_to_keep are kept.

  fresh = init(jax.random.PRNGKey(1))
  restored = Checkpointer(str(tmp_path)).restore(fresh)
  leaves, restored_leaves = jax.tree.leaves(state), jax.tree.leaves(restored)
  assert jax.tree.structure(state) == jax.tree.structure(restored)
  for a, b in zip(leaves, restored_leaves):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert b.sharding.is_equivalent_to(repl, b.ndim)
  ckpt.close()


def test_a_state_field_added_since_the_save_restores_as_none(tmp_path):
  """A checkpoint written before a field joined the train state (saved as
  the dict of the other fields, as Orbax stores a state dataclass) restores
  into today's state with that field None, where the run does not use it;
  a run that uses it cannot restore from there."""
  import dataclasses
  config = get_config()
  config.batch_size = 16
  task = GANTask(config, (28, 28, 1))
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  assert state.lecam is None  # the LeCam anchors: a field added on 7 Dec
  old = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "lecam"}
  ckpt = Checkpointer(str(tmp_path))
  ckpt.save(1, old)
  ckpt.wait()
  restored = Checkpointer(str(tmp_path)).restore(jax.jit(task.init_state)(jax.random.PRNGKey(1)))
  assert type(restored) is type(state) and restored.lecam is None
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  config.lecam_weight = 0.1
  with_lecam = GANTask(config, (28, 28, 1))
  with pytest.raises(ValueError, match="tree structures do not match"):
    Checkpointer(str(tmp_path)).restore(jax.jit(with_lecam.init_state)(jax.random.PRNGKey(1)))
  ckpt.close()


# Orbax's failed read of the damaged step leaves coroutines behind that
# complain when collected ("Event loop is closed"); collected here, at the end
# of this test, rather than in whichever test happens to run then.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreadable_checkpoint_is_skipped_for_the_previous_good_one(tmp_path):
  import gc
  import glob
  import os

  import jax.numpy as jnp

  state = {"w": jnp.arange(4096.0), "step": jnp.int32(0)}
  ckpt = Checkpointer(str(tmp_path))
  for s in (2, 4):
    ckpt.save(s, {"w": state["w"] + s, "step": jnp.int32(s)})
  ckpt.close()
  # A save a SIGKILL cut short: Orbax's temporary directory, never renamed.
  os.makedirs(tmp_path / "checkpoints" / "6.orbax-checkpoint-tmp-1234" / "default")
  # Step 4 damaged after it was written (a lost or truncated data file).
  data = max(glob.glob(str(tmp_path / "checkpoints" / "4" / "**" / "d" / "*"), recursive=True),
             key=os.path.getsize)
  with open(data, "r+b") as f:
    f.truncate(10)

  ckpt = Checkpointer(str(tmp_path))
  restored, step = ckpt.restore_latest_good(state)
  assert step == 2 and int(restored["step"]) == 2
  np.testing.assert_array_equal(restored["w"], state["w"] + 2)
  assert os.path.isdir(tmp_path / "checkpoints" / "4.unreadable")  # kept, out of the way
  assert ckpt.all_steps() == [2]
  ckpt.save(4, {"w": state["w"], "step": jnp.int32(4)})  # The step can be written again.
  ckpt.wait()
  assert ckpt.restore_latest_good(state)[1] == 4
  ckpt.close()
  gc.collect()

  # Nothing restores (here: a different state structure): an error, nothing moved.
  ckpt = Checkpointer(str(tmp_path))
  with pytest.raises(ValueError, match="No checkpoint .* can be restored"):
    ckpt.restore_latest_good({"other": jnp.zeros(3)})
  ckpt.close()
  assert sorted(os.listdir(tmp_path / "checkpoints"))[:2] == ["2", "4"]


def test_only_the_writer_removes_unfinished_saves(tmp_path):
  """A reader (evaluation, a second look while training runs) leaves the
  temporary directory of a save alone: it may be the writer's save in
  flight. The training run's writer removes those a killed process left."""
  import os

  import jax.numpy as jnp

  unfinished = tmp_path / "checkpoints" / "6.orbax-checkpoint-tmp-1234" / "default"
  os.makedirs(unfinished)
  reader = Checkpointer(str(tmp_path))
  assert reader.all_steps() == []
  reader.close()
  assert unfinished.is_dir()
  writer = Checkpointer(str(tmp_path), writer=True)
  writer.save(2, {"w": jnp.zeros(3)})
  writer.close()
  assert not unfinished.parent.exists() and writer.all_steps() == [2]
