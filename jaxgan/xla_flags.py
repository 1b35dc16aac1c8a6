"""XLA flags jaxgan turns on by default, before JAX starts its backends.

On CPU, XLA's own convolution and matmul kernels leave much of the machine's
speed unused; its YNNPACK path (`--xla_cpu_experimental_ynn_fusion_type=dot`)
runs the DCGAN's convolutions, forward and backward, about 2x faster on the
2-core development CPU (`python -m benchmarks.dcgan_step` measures the whole
step). The flag touches only CPU compilation. The test suite runs with it, so
the equality and bitwise-reproducibility tests cover it.

`add_defaults()` appends the flags to $XLA_FLAGS unless the variable already
mentions them, JAXGAN_XLA_DEFAULTS=0 is set, or the installed jaxlib is not
the series they were measured with (an unknown flag aborts XLA). It must run
before the first JAX computation; `experiments/__init__.py` and the tests'
conftest call it.
"""

from __future__ import annotations

import importlib.metadata
import os

CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=dot",)
# Series the flag was measured with: 0.10 (this machine, ~2x the DCGAN step)
# and 0.11 (363-368 vs 234-240 images/s for the MNIST DCGAN step,
# `benchmarks.dcgan_step`, jaxlib 0.11.2 on Python 3.12).
_KNOWN_JAXLIB = ("0.10.", "0.11.")


def add_defaults() -> list[str]:
  """Appends the default flags to $XLA_FLAGS; returns the ones it added."""
  if os.environ.get("JAXGAN_XLA_DEFAULTS", "1") == "0":
    return []
  try:
    version = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return []
  if not version.startswith(_KNOWN_JAXLIB):
    return []
  current = os.environ.get("XLA_FLAGS", "")
  added = [f for f in CPU_FLAGS if f.split("=")[0] not in current]
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current] + added).strip()
  return added
