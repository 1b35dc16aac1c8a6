"""Input pipelines: where examples come from (`sources.py`, the registry of
`config.dataset` forms; `arrays.py`, `folder.py`, `tfds.py`; the contract in
`base.py`) and how they reach the devices (`pipeline.py`: `Data`; the
indexed pipeline `indexed.py`; the streamed one `streamed.py`; the tf.data one
`tfdata.py`)."""

from jaxgan.data.arrays import read_idx, register_arrays
from jaxgan.data.base import DataError, DataSource
from jaxgan.data.pipeline import (Data, DatasetInfo, device_batches, load_info,
                                  load_remembered)
from jaxgan.data.sources import SOURCES, get_source

__all__ = ["SOURCES", "Data", "DataError", "DataSource", "DatasetInfo", "device_batches",
           "get_source", "load_info", "load_remembered", "read_idx", "register_arrays"]
