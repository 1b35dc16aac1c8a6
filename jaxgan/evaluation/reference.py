"""Reference statistics: the real side of an evaluation, computed once and reused.

`save_reference(path, ...)` writes an .npz with `mu`, `sigma` (float64: FID),
`features` and `probs` (float32: KID, precision/recall/density/coverage, the
Inception-Score-style score), `labels` (int64: the conditional metrics) and
`protocol` (JSON: extractor and its weights' sha256, resize, split, count).
`load_reference(path)` reads it back, or a plain `mu`/`sigma` file from
pytorch-fid or clean-fid (FID only, its protocol unknown: a warning);
`check_protocol` refuses a file made with another extractor than the run's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
import zipfile

import numpy as np

from jaxgan import metrics
from jaxgan.data.base import DataError

FORMAT = "jaxgan-reference-1"
# Extractor protocol entries that must agree between a reference file and the
# extractor scoring against it (paths such as the run or weights file may differ).
MATCHED_KEYS = ("extractor", "extractor_checkpoint_sha256", "features", "resize")


@dataclasses.dataclass
class Reference:
  path: str
  mu: np.ndarray
  sigma: np.ndarray
  features: np.ndarray | None  # None for a plain mu/sigma file (FID only)
  probs: np.ndarray | None
  labels: np.ndarray | None
  protocol: dict | None  # None: unknown (a plain mu/sigma file)

  @property
  def complete(self) -> bool:
    return self.features is not None


def save_reference(path: str, features, probs, labels, protocol: dict) -> str:
  """Writes the real side of an evaluation (see the module docstring)."""
  features = np.asarray(features, np.float32)
  mu, sigma = metrics.feature_statistics(features)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, mu=mu, sigma=sigma, features=features, probs=np.asarray(probs, np.float32),
           labels=np.asarray(labels, np.int64),
           protocol=np.asarray(json.dumps({"format": FORMAT, **protocol}, sort_keys=True)))
  os.replace(tmp, path)
  return path


def load_reference(path: str) -> Reference:
  """A reference file written by `save_reference`, or a plain mu/sigma .npz."""
  if not os.path.isfile(path):
    raise DataError(f"--reference {path}: no such file; write one with python -m "
                    "experiments.evaluate ... --save_reference FILE.npz.")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f"--reference {path}: not a readable .npz file ({e}).") from None
  if "mu" not in arrays or "sigma" not in arrays:
    raise DataError(f"--reference {path}: holds {sorted(arrays)}, not mu and sigma; write a "
                    "reference file with --save_reference FILE.npz.")
  mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
  if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
    raise DataError(f"--reference {path}: mu {mu.shape} and sigma {sigma.shape} are not a "
                    "mean [D] and covariance [D, D].")
  if "protocol" not in arrays:
    warnings.warn(f"{path} holds only mu and sigma (pytorch-fid / clean-fid statistics): its "
                  "protocol (extractor, resize, images) is unknown, so only FID is computed "
                  "and it is comparable only if it was made exactly as this extractor "
                  "computes features.", stacklevel=2)
    return Reference(path, mu, sigma, None, None, None, None)
  protocol = json.loads(str(arrays["protocol"]))
  if protocol.get("format") != FORMAT or "features" not in arrays:
    raise DataError(f"--reference {path}: format {protocol.get('format')!r} is not "
                    f"{FORMAT!r}; write it again with --save_reference.")
  return Reference(path, mu, sigma, arrays["features"], arrays["probs"], arrays["labels"],
                   protocol)


def check_protocol(ref: Reference, extractor_protocol: dict, split: str | None = None) -> None:
  """Refuses a reference made by another extractor (or of another split than
  `split`, where one is asked for)."""
  if ref.protocol is None:
    return
  for key in MATCHED_KEYS:
    if ref.protocol.get(key) != extractor_protocol.get(key):
      raise DataError(f"--reference {ref.path} was made with {key} "
                      f"{ref.protocol.get(key)!r}, but this evaluation's is "
                      f"{extractor_protocol.get(key)!r}: its numbers would not be comparable. "
                      "Use the same --features, or write a new reference with "
                      "--save_reference.")
  if split is not None and not ref.protocol.get("reference", "").endswith(f" {split}"):
    raise DataError(f"--reference {ref.path} holds {ref.protocol.get('reference')!r}, not "
                    f"split {split!r}; drop --split or write a reference of that split.")
