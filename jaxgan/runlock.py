"""One training run per run directory: an exclusive lock on `WORKDIR/.lock`.

Process 0 of a run takes an `fcntl.flock` on the file before it writes
anything and holds it to the end; the kernel releases it when the process
exits, however it exits (SIGKILL and crashes included), so a stale lock
never blocks a resume. A second run on the same directory stops at once
with a `RunLockedError` naming the process that holds it (its pid, host and
start time, written into the file). flock works on local file systems and
on most shared ones (NFSv4, Lustre, GPFS with locking enabled); where the
file system has no locks the run warns and goes on unprotected.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import warnings

LOCK_FILE = ".lock"


class RunLockedError(ValueError):
  """Another process holds the run directory's lock."""


class RunLock:
  """`with RunLock(workdir):` holds the lock (taken at construction, or
  `RunLockedError`); leaving the block, `release()` or the process's exit
  gives it back."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._file = open(self.path, "a+")  # never truncated before the lock is ours
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        holder = self._holder()
        self._file.close()
        raise RunLockedError(
            f"{workdir} is in use by another training run ({holder}); two runs in one "
            "directory would overwrite each other's checkpoints and logs. Wait for it to "
            "finish or stop it, or pass another --workdir.") from None
      if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        warnings.warn(f"{self.path}: the file system does not support locks ({e.strerror}); "
                      "nothing stops a second run from using this directory.")
      else:
        self._file.close()
        raise
    self._file.seek(0)
    self._file.truncate()
    json.dump({"pid": os.getpid(), "host": socket.gethostname(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, self._file)
    self._file.flush()

  def _holder(self) -> str:
    try:
      self._file.seek(0)
      info = json.loads(self._file.read() or "{}")
      return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (ValueError, KeyError, TypeError, OSError):
      return "a process that has not yet written its pid"

  def __enter__(self) -> "RunLock":
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  def release(self) -> None:
    if not self._file.closed:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
