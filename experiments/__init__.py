"""Entry points: `python -m experiments.NAME --workdir DIR --config experiments/configs/NAME.py`."""

from jaxgan import xla_flags as _xla_flags

_xla_flags.add_defaults()  # Before anything starts JAX's backends.
