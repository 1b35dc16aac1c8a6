"""A background thread that prepares the next batches while a step runs."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator


def prefetched(items: Iterable, convert: Callable, prefetch: int = 2) -> Iterator:
  """`convert(item)` for each item, computed up to `prefetch` items ahead in a
  background thread (e.g. assembling global arrays and transferring them to
  the devices), so the accelerator does not wait on the host. Errors surface
  in the consumer. Close the generator (`.close()`) when done with an
  infinite stream: that stops and joins the thread."""
  it = iter(items)
  if prefetch <= 0:
    for item in it:
      yield convert(item)
    return
  q: queue.Queue = queue.Queue(maxsize=prefetch)
  stop = threading.Event()
  done = object()

  def producer():
    try:
      for item in it:
        item = convert(item)
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            pass
        if stop.is_set():
          return
      q.put(done)
    except BaseException as e:  # Surface pipeline errors in the consumer.
      q.put(e)

  thread = threading.Thread(target=producer, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    # Closing the generator stops the producer. Join it: a thread still inside
    # TensorFlow when the interpreter exits aborts the whole process.
    stop.set()
    thread.join(timeout=60)
