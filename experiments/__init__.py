"""Entry points: `python -m experiments.NAME --workdir DIR --config experiments/configs/NAME.py`."""
