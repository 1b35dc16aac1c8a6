"""Entry points: `python -m experiments.NAME --workdir DIR --config experiments/configs/NAME.py`.

Importing this package has no side effects; each command's `main` adds
jaxgan's default XLA flags (`jaxgan.xla_flags.add_defaults`) before JAX starts.
"""
