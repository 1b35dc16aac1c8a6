"""Multi-process start-up: `jax.distributed.initialize()` when a run asks for it.

Explicit: `coordinator_address` ("host:port" of process 0), `num_processes`
and `process_id`, the same on every process but the id. Automatic: under a
cluster launcher JAX recognises (SLURM `srun` with several tasks, Open MPI,
multi-host Cloud TPU, ...), or anywhere with JAXGAN_DISTRIBUTED=1, JAX reads
everything from the environment. Otherwise the run stays single-process.
Either way the library never assumes one process: each process reads its
own shard of the data, only process 0 writes logs, images and metadata, and
all of them write their part of each checkpoint.
"""

from __future__ import annotations

import os

import jax


def cluster_detected(env=None) -> bool:
  """True when the environment says this process is one of several."""
  env = os.environ if env is None else env
  if env.get("JAXGAN_DISTRIBUTED") == "1":
    return True
  if "SLURM_JOB_ID" in env and "SLURM_STEP_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
    return True  # inside `srun` with several tasks
  if int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return True
  if "," in env.get("TPU_WORKER_HOSTNAMES", ""):
    return True  # a multi-host Cloud TPU slice
  return False


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Starts JAX's distributed runtime if asked to; True if it did. Call it
  before anything touches a JAX device."""
  given = [v is not None for v in (coordinator_address, num_processes, process_id)]
  if any(given):
    if not all(given):
      raise ValueError("Give all three of --coordinator_address (host:port of process 0), "
                       "--num_processes and --process_id, or none of them.")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"--process_id={process_id} must be in [0, {num_processes}).")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True
  if cluster_detected():
    jax.distributed.initialize()
    return True
  return False
