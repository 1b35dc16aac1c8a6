"""TensorFlow, imported for input pipelines only.

TensorFlow must never claim accelerator memory: JAX owns the devices. Every
module of jaxgan that needs TF imports it from here, which hides all GPUs
from TF before anything else can touch them.

Start-up: `import tensorflow` eagerly imports Keras 3 (and scikit-learn
through it), ~2.5 s of its ~8 s on a 2-core CPU, though the pipelines never
use Keras. When TF is imported here first, TF_USE_LEGACY_KERAS is unset and
tf_keras is not installed, the import runs with TF_USE_LEGACY_KERAS=1, which
turns that eager import into a no-op; the variable is removed right after,
so `tf.keras` still works (TF loads Keras on first use) and subprocesses
see the environment as it was. (A training run still loads Keras: CLU's
TensorBoard writer imports TensorBoard's hparams plugin, which uses
`tf.keras`. Processes that only read data or evaluate start faster.)
"""

import importlib.util
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_skip_keras = ("tensorflow" not in sys.modules
               and "TF_USE_LEGACY_KERAS" not in os.environ
               and importlib.util.find_spec("tf_keras") is None)
if _skip_keras:
  os.environ["TF_USE_LEGACY_KERAS"] = "1"
try:
  import tensorflow as tf  # noqa: E402
except ImportError as e:
  raise ImportError(
      f"TensorFlow is not installed ({e}). It is needed only by data_pipeline='tfdata' "
      "(and runs made with it) and by TFDS datasets in the tfrecord format: install it "
      "(pip install -e '.[tf]') or use --config.data_pipeline=indexed.") from e
finally:
  if _skip_keras:
    del os.environ["TF_USE_LEGACY_KERAS"]

tf.config.set_visible_devices([], "GPU")

__all__ = ["tf"]
