"""Input pipelines (TFDS catalog datasets and local files)."""

from jaxgan.data.pipeline import Data, DatasetInfo, device_batches
from jaxgan.data.sources import DataError, get_source, read_idx

__all__ = ["Data", "DataError", "DatasetInfo", "device_batches", "get_source", "read_idx"]
