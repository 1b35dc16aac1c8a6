"""The device mesh and how arrays are laid out on it.

One mesh axis, `data`, spans every device of every process. Parameters and
optimizer states are replicated; batches are split along their first axis.
The same code serves 1 device, 8 simulated CPU devices, or many hosts.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Splits the leading (batch) axis over the mesh's data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """This process's share of a global batch; errors early if it does not divide."""
  num_devices = mesh.devices.size
  if global_batch_size <= 0 or global_batch_size % num_devices:
    raise ValueError(
        f"batch_size={global_batch_size} does not divide over the {num_devices} devices "
        f"of the mesh; set --config.batch_size to a multiple of {num_devices} "
        f"(for example {max(1, round(global_batch_size / num_devices)) * num_devices}).")
  return global_batch_size // jax.process_count()


def to_global_batch(local_batch, mesh: Mesh):
  """Assembles each process's numpy batch into one global `jax.Array` pytree,
  sharded over the data axis."""
  sharding = data_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local_batch)
