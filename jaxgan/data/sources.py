"""Data sources by name: the one registry of what `config.dataset` may say.

`dataset` is PREFIX:ARG for a form in `SOURCES` (or a bare NAME for a form
that takes no argument), and anything else is a TFDS catalog name
(`mnist`, `cifar10`, `celeb_a`, ..., optionally `name:version`) read from
`data_dir`. Each form's loader validates its files and returns a
`jaxgan.data.base.DataSource`; every error that lists the forms is made from
`SOURCES`.

Adding a source: a module with its loader (jaxgan/data/arrays.py,
folder.py and tfds.py are examples: a class following `DataSource`, a
`load_X(arg)` that raises `DataError` naming the file and the fix), one
`SOURCES` line below, and its row in docs/data.md (tests/test_structure.py
checks the table lists every form).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from jaxgan.data import arrays, cifar10, folder, tfds
from jaxgan.data.base import DataError, DataSource


@dataclasses.dataclass(frozen=True)
class SourceForm:
  """One form of `config.dataset`: `usage` as written (e.g. "idx:DIR"), what
  it reads, and `load(arg)` (arg: what follows the prefix; paths have ~
  expanded)."""
  usage: str
  what: str
  load: Callable[[str], DataSource]

  @property
  def takes_arg(self) -> bool:
    return ":" in self.usage

  @property
  def takes_path(self) -> bool:
    return self.usage.endswith((":DIR", ":FILE", ":PATH"))


SOURCES: dict[str, SourceForm] = {
    "idx": SourceForm("idx:DIR", "MNIST-format IDX files", arrays.load_idx_dir),
    "folder": SourceForm("folder:DIR", "a folder of PNG/JPEG images, a subfolder per class",
                         folder.load_folder),
    "npz": SourceForm("npz:FILE", "NumPy arrays <split>_images [, <split>_labels]",
                      arrays.load_npz),
    "arrays": SourceForm("arrays:NAME", "arrays registered with "
                         "jaxgan.data.register_arrays", arrays.registered_arrays),
    "cifar10": SourceForm("cifar10:PATH", "CIFAR-10's official binary or python files, "
                          "folder or .tar.gz", cifar10.load_cifar10),
    "digits": SourceForm("digits", "scikit-learn's bundled 8x8 digits, offline",
                         lambda _: arrays.load_digits()),
}


def local_forms() -> str:
  """The forms, for messages: "idx:DIR (MNIST-format IDX files), ... or digits (...)"."""
  items = [f"{f.usage} ({f.what})" for f in SOURCES.values()]
  return ", ".join(items[:-1]) + " or " + items[-1]


def get_source(dataset: str, data_dir: str | None = None) -> DataSource:
  """The source a `dataset` config string names (see the module docstring)."""
  if not dataset:
    raise DataError(f"config.dataset is empty; name a TFDS dataset or {local_forms()}.")
  prefix, sep, arg = dataset.partition(":")
  form = SOURCES.get(prefix)
  if form is not None and form.takes_arg == bool(sep):
    return form.load(os.path.expanduser(arg) if form.takes_path else arg)
  return tfds.load_tfds(dataset, data_dir, local_forms())
