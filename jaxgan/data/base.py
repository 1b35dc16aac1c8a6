"""What every data source shares: the error type, TFDS split syntax, process
shards, and the `DataSource` contract (jaxgan/data/sources.py chooses one by
name)."""

from __future__ import annotations

import types
from typing import Protocol, runtime_checkable

import numpy as np


class DataError(ValueError):
  """Bad dataset configuration or input files (the message says how to fix it)."""


def resolve_split(spec: str, split_sizes: dict[str, int]) -> list[tuple[str, int, int]]:
  """TFDS split syntax -> [(split name, start, stop)] absolute ranges."""
  import tensorflow_datasets as tfds  # (slow to import: only when a split is read)
  infos = {k: types.SimpleNamespace(num_examples=v) for k, v in split_sizes.items()}
  try:
    instructions = tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos)
  except (ValueError, KeyError, AssertionError) as e:
    raise DataError(f"Bad split {spec!r}: {e}. Available splits: "
                    f"{', '.join(f'{k} ({v} examples)' for k, v in split_sizes.items())}. "
                    "Use TFDS split syntax, e.g. 'train', 'train[:90%]', 'test[9000:]'.") from None
  ranges = []
  for ins in instructions:
    n = split_sizes[ins.splitname]
    start = 0 if ins.from_ is None else ins.from_
    stop = n if ins.to is None else ins.to
    ranges.append((ins.splitname, start, stop))
  return ranges


def shard_indices(num_examples: int, process_index: int, process_count: int) -> np.ndarray:
  """Process p reads examples p, p + P, p + 2P, ... (sizes differ by at most one)."""
  return np.arange(process_index, num_examples, process_count)


class IndexedSource:
  """Sources whose examples are numbered: sizes follow from the split alone."""

  def shard_sizes(self, spec: str, process_count: int) -> list[int]:
    n = sum(stop - start for _, start, stop in resolve_split(spec, self.splits))
    return [len(shard_indices(n, p, process_count)) for p in range(process_count)]


@runtime_checkable
class DataSource(Protocol):
  """What the pipelines (jaxgan/data/pipeline.py) read a dataset through.

  Images are uint8 [H, W, C] (C = 1 or 3), labels integers (0 when the data
  has none); split specs use TFDS syntax and are resolved against `splits`.
  """

  name: str
  """The `dataset` string it came from (for messages)."""

  @property
  def splits(self) -> dict[str, int]:
    """{split name: number of examples}."""

  @property
  def image_shape(self) -> tuple[int, int, int] | None:
    """(H, W, C) when every image has it, else None (they are resized)."""

  @property
  def channels(self) -> int:
    """1 (grey) or 3 (RGB)."""

  @property
  def num_classes(self) -> int:
    """Classes of the labels (1 for unlabelled data)."""

  @property
  def class_names(self) -> list[str] | None:
    """The classes' names, label order, where the data names them."""

  def shard_sizes(self, spec: str, process_count: int) -> list[int]:
    """Examples of each process's shard of split `spec`."""

  def fitted(self, spec: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole split as uint8 [N, size, size, C] (`resize.center_crop_resize`)
    and int64 labels [N]: the indexed pipeline's input; no TensorFlow."""

  def examples(self, spec: str, process_index: int, process_count: int):
    """One process's shard as a tf.data.Dataset of {"image": uint8 [H, W, C],
    "label": int64}: the tf.data pipeline's input; imports TensorFlow."""

  def reader(self, spec: str) -> "ExampleReader":
    """Random access to split `spec`'s examples, without reading them: the
    streamed pipeline's input (jaxgan/data/streamed.py)."""


@runtime_checkable
class ExampleReader(Protocol):
  """One split's examples by number, read on demand; picklable (the streamed
  pipeline sends it to its worker processes), so what it holds is small:
  paths and offsets, not pixels, except where `in_memory`."""

  where: str
  """The source and split, for messages."""

  in_memory: bool
  """Whether the examples are already in this process's memory (arrays):
  then they are read in a thread, never copied into worker processes."""

  def __len__(self) -> int:
    """Examples in the split."""

  def read(self, i: int) -> tuple[np.ndarray, int]:
    """Example i: (uint8 [H, W, C], its integer label); raises on a file or
    record that cannot be decoded."""

  def name_of(self, i: int) -> str:
    """What example i is, for messages (its file, record or row)."""
