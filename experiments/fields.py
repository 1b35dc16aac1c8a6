"""Prints a config's fields, their values and what they mean:

  python -m experiments.fields --config experiments/configs/gan.py:wgan_gp [--config.FIELD=VALUE ...]

One line per field (`name = value`), each after the comment its config file
(or experiments/configs/common.py, which defines the fields every config
shares) writes above or beside it. The config files are where fields are
documented; this command shows them resolved for one config.
"""

import os
import re
import textwrap

from absl import flags
from ml_collections import config_flags

from experiments import common

_ASSIGN = re.compile(r"^\s*config\.(\w+)\s*=\s*[^=].*?(?:#\s*(.*))?$")


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Config file: "
                                  "experiments/configs/KIND.py[:PRESET].", lock_config=True)
  flags.mark_flag_as_required("config")


def field_comments(paths) -> dict[str, str]:
  """{field: comment} from `config.FIELD = ...` lines of these files: the
  comment block above a group of assignments (lines without a blank between
  them) and the comment beside each (the first file that documents a field
  wins)."""
  comments: dict[str, str] = {}
  for path in paths:
    block: list[str] = []  # the comment lines being read
    group: list[str] = []  # the block over the current group of assignments
    with open(path) as f:
      for line in f:
        stripped = line.strip()
        if not stripped:
          block, group = [], []
          continue
        if stripped.startswith("#"):
          block.append(stripped.lstrip("#").strip())
          continue
        if block:
          group, block = block, []
        m = _ASSIGN.match(line)
        if m and m.group(1) not in comments:
          text = " ".join(group + ([m.group(2)] if m.group(2) else []))
          if text:
            comments[m.group(1)] = text
  return comments


def _run() -> None:
  config = flags.FLAGS.config
  path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
  common_path = os.path.join(os.path.dirname(__file__), "configs", "common.py")
  comments = field_comments([path, common_path])
  print(f"# {path}: {len(config)} fields")
  for name in config:
    value = config[name]
    note = comments.get(name)
    if note:
      print("\n" + textwrap.fill(note, 88, initial_indent="# ", subsequent_indent="# "))
    print(f"{name} = {value!r}")


if __name__ == "__main__":
  common.tool_main(define_flags, _run)
