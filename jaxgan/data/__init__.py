"""Input pipelines (local files, in-memory arrays and TFDS catalog datasets)."""

from jaxgan.data.pipeline import Data, DatasetInfo, device_batches
from jaxgan.data.sources import DataError, get_source, read_idx, register_arrays

__all__ = ["Data", "DataError", "DatasetInfo", "device_batches", "get_source", "read_idx",
           "register_arrays"]
