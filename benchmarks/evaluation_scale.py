"""Paper-scale evaluation: time and peak memory of the metric suite.

    python -m benchmarks.evaluation_scale [--real 50000] [--fake 10000,50000] [--dim 2048]

Random float32 features (a real set and a generated set from standard
Gaussians, the generated one scaled by 1.01) scored
with FID, KID (100 subsets of 1000) and precision/recall/density/coverage
(`jaxgan.metrics.manifold_metrics`, distances in row blocks). Each size runs
in its own process, so its peak resident memory (ru_maxrss) is its own; the
features themselves (2 x N x D float32) are part of the peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _one(num_real: int, num_fake: int, dim: int) -> dict:
  import numpy as np
  from jaxgan import metrics
  rng = np.random.default_rng(0)
  real = rng.standard_normal((num_real, dim), dtype=np.float32)
  fake = rng.standard_normal((num_fake, dim), dtype=np.float32) * np.float32(1.01)
  base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  out = {"real": num_real, "fake": num_fake, "dim": dim, "features_gib": round(base, 2)}
  t = time.perf_counter()
  fid = metrics.fid_from_features(real, fake)
  out["fid_s"] = round(time.perf_counter() - t, 1)
  t = time.perf_counter()
  metrics.kernel_inception_distance(real, fake, num_subsets=100, subset_size=1000)
  out["kid_s"] = round(time.perf_counter() - t, 1)
  t = time.perf_counter()
  prdc = metrics.manifold_metrics(real, fake, 3, 5)
  out["prdc_s"] = round(time.perf_counter() - t, 1)
  out["peak_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
  out.update(fid=round(fid, 3), **{k: round(v, 4) for k, v in prdc.items()})
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--real", type=int, default=50000)
  parser.add_argument("--fake", default="10000,50000")
  parser.add_argument("--dim", type=int, default=2048)
  parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._child:
    print(json.dumps(_one(args.real, int(args.fake), args.dim)))
    return
  with open("/proc/cpuinfo") as f:
    cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
  print(f"cpu: {cpu}; features float32, distances float64 in blocks of "
        "jaxgan.metrics.CHUNK_BYTES")
  print(f"{'real':>7s} {'fake':>7s} {'dim':>5s} {'FID s':>7s} {'KID s':>7s} {'PRDC s':>7s} "
        f"{'peak GiB':>9s} {'features GiB':>13s}  metrics")
  for fake in args.fake.split(","):
    child = subprocess.run([sys.executable, "-m", "benchmarks.evaluation_scale", "--_child",
                            "--real", str(args.real), "--fake", fake, "--dim", str(args.dim)],
                           check=True, capture_output=True, text=True)
    r = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"{r['real']:7d} {r['fake']:7d} {r['dim']:5d} {r['fid_s']:7.1f} {r['kid_s']:7.1f} "
          f"{r['prdc_s']:7.1f} {r['peak_gib']:9.2f} {r['features_gib']:13.2f}  "
          f"fid {r['fid']}, precision {r['precision']}, recall {r['recall']}, "
          f"density {r['density']}, coverage {r['coverage']}", flush=True)


if __name__ == "__main__":
  main()
