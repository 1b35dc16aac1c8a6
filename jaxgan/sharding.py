"""The device mesh and how arrays are laid out on it.

One mesh axis, `data`, spans every device of every process. Parameters and
optimizer states are replicated; batches are split along their first axis.
The same code serves 1 device, 8 simulated CPU devices, or many hosts.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """`tree` replicated on every device of the mesh (every process), from
  host arrays, arrays on one local device (as `jaxgan.runs.restore` gives
  them) or arrays already replicated there (kept as they are). Every process
  must pass the same values."""
  target = replicated(mesh)

  def put(x):
    if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(target, x.ndim):
      return x
    return jax.device_put(np.asarray(x) if isinstance(x, jax.Array) else x, target)

  return jax.tree.map(put, tree)


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


def map_batch(fn, args, batch, mesh: Mesh):
  """`fn(args, batch)` with the batch's rows split over every device of the
  mesh (every process), gathered back to NumPy on every process, in row
  order: evaluation's sampling and feature extraction. `args` (parameters)
  must be replicated on the mesh (`replicate`); `batch` is a pytree of host
  arrays with the same leading size N, the same on every process (each
  takes its own rows); rows are padded with zeros to a multiple of the
  device count and the padding dropped from the outputs. `fn` is jitted."""
  n = len(jax.tree.leaves(batch)[0])
  devices, processes = mesh.devices.size, jax.process_count()
  padded = -(-n // devices) * devices
  local = padded // processes
  first = jax.process_index() * local

  def rows(x):
    x = np.asarray(x)
    x = np.concatenate([x, np.zeros((padded - n, *x.shape[1:]), x.dtype)]) if padded > n else x
    return x[first:first + local]

  out = fn(args, to_global_batch(jax.tree.map(rows, batch), mesh))
  if processes > 1:
    out = multihost_utils.process_allgather(out, tiled=True)
  return jax.tree.map(lambda y: np.asarray(y)[:n], out)
