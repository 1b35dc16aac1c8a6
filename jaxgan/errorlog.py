"""Keeping background tracebacks off the terminal.

Orbax's asynchronous work, TensorStore's callbacks and asyncio leave
tracebacks behind when something fails (a failed save: hundreds, with the
real cause buried among them). Inside `background_errors_logged(directory)`
they go to a file, and an error that ends the command names it, so that
what a user reads is the command's own one-line error.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
import warnings

import jax


@contextlib.contextmanager
def background_errors_logged(directory: str | None = None, keep_on_error: bool = False):
  """Tracebacks that are not the command's own go to DIRECTORY/errors.log
  (errors.process_<i>.log on other processes; a file in the temporary
  directory without a directory, or when it cannot be written, e.g. a full
  disk) instead of the terminal, where the command's own one-line error is
  what a user reads: exceptions ignored in collected coroutines and callbacks,
  background threads, asyncio's "exception was never retrieved", and the
  errors Orbax's background threads log (a failed asynchronous save leaves
  hundreds). An error leaving the block names the file in its message.
  `keep_on_error` (a command's main, whose process ends with the error):
  the diversion then stays in place for the process's last moments, whose
  teardown collects the rest; otherwise it is always undone."""
  log = _ErrorLog(directory)
  handler = logging.StreamHandler(log)
  handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(pathname)s:%(lineno)d "
                                         "%(message)s"))
  diverted = _DivertBackgroundRecords(handler)
  asyncio_log = logging.getLogger("asyncio")
  saved = sys.unraisablehook, threading.excepthook, asyncio_log.propagate
  sys.unraisablehook, threading.excepthook = log.unraisable, log.thread_exception
  asyncio_log.addHandler(handler)
  asyncio_log.propagate = False
  root_handlers = list(logging.getLogger().handlers)
  for h in root_handlers:
    h.addFilter(diverted)
  failed = False
  try:
    yield
  except BaseException as e:
    failed = True
    gc.collect()  # what the failure left behind reports now, into the log
    if keep_on_error:  # (the coroutines a failed save abandons are no news at exit)
      warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    if (log.path and len(e.args) == 1 and isinstance(e.args[0], str)
        and log.path not in e.args[0] and not isinstance(e, (KeyboardInterrupt, SystemExit))):
      e.args = (f"{e.args[0]} (Background tracebacks: {log.path}.)",)
    raise
  finally:
    if not failed:
      gc.collect()
    if not (failed and keep_on_error):
      sys.unraisablehook, threading.excepthook, asyncio_log.propagate = saved
      asyncio_log.removeHandler(handler)
      for h in root_handlers:
        h.removeFilter(diverted)
      log.close()


class _ErrorLog:
  """The file behind `background_errors_logged`, opened on first use."""

  def __init__(self, directory: str | None):
    self._directory = directory
    self._candidates: list[str] | None = None  # at the first write: the process
    # index then (asking now could start JAX before jax.distributed.initialize)
    self.path: str | None = None
    self._file = None
    self._lock = threading.Lock()

  def write(self, text: str) -> None:
    with self._lock:
      if self._candidates is None:
        index = jax.process_index()
        name = "errors.log" if index == 0 else f"errors.process_{index}.log"
        self._candidates = ([os.path.join(self._directory, name)] if self._directory
                            else []) + [
            os.path.join(tempfile.gettempdir(), f"jaxgan-{os.getpid()}-{name}")]
      while self._candidates or self._file is not None:
        try:
          if self._file is None:
            self.path = self._candidates.pop(0)
            self._file = open(self.path, "a")
            self._file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n")
          self._file.write(text)
          self._file.flush()
          return
        except OSError:  # e.g. the full disk the save failed on: the next place
          self._drop()
      self.path = None  # nowhere to write: the tracebacks are dropped

  def _drop(self) -> None:
    if self._file is not None:
      try:
        self._file.close()
      except OSError:
        pass
    self._file = None

  def flush(self) -> None:
    pass

  def close(self) -> None:
    with self._lock:
      self._drop()

  def unraisable(self, u) -> None:
    self.write(f"{u.err_msg or 'Exception ignored in'}: {u.object!r}\n" + "".join(
        traceback.format_exception(u.exc_type, u.exc_value, u.exc_traceback)))

  def thread_exception(self, a) -> None:
    self.write(f"In thread {a.thread.name if a.thread else '?'}:\n" + "".join(
        traceback.format_exception(a.exc_type, a.exc_value, a.exc_traceback)))


class _DivertBackgroundRecords(logging.Filter):
  """Keeps the log records of Orbax's and asyncio's background work off the
  terminal's handlers, handing them to the error log's handler instead."""

  def __init__(self, handler: logging.Handler):
    super().__init__()
    self.handler = handler

  def filter(self, record: logging.LogRecord) -> bool:
    path = record.pathname.replace(os.sep, "/")
    if record.levelno >= logging.ERROR and ("/orbax/" in path or "/asyncio/" in path):
      self.handler.handle(record)
      return False
    return True
