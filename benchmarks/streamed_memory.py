"""Peak memory of a training run against the size of its dataset, and the
streamed pipeline's images/s per worker count.

    python -m benchmarks.streamed_memory [--sizes 10000,200000]
        [--formats folder,tfds] [--pipelines streamed] [--steps 20]
        [--root /tmp/jaxgan_streamed] [--throughput_workers 0,1,2]

Makes synthetic 64x64 RGB JPEG datasets of each size (once; kept in --root):
a `folder:` dataset (ten class subfolders) and a TFDS dataset in the
array_record format (`jaxgan_synthetic_jpeg<size>`, prepared here; needs
TensorFlow to write, not to read). Then, per format, size and pipeline, runs
`python -m experiments.dcgan` at 64x64 (Radford et al.'s architecture), batch
64, `--steps` steps, in its own process, sampling every 0.25 s the main
process's resident memory (RSS) and the proportional memory (PSS, shared
pages split) of it and its worker processes together; reports the peaks.
The streamed pipeline's peak should not grow with the dataset (issue 30:
within 10% between 10k and 200k images); the indexed pipeline's grows with
it (it holds the fitted split).

Throughput: the streamed training feed alone (decode + fit + transfer, no
step) on the largest folder dataset, in images/s per `data_workers`, next to
the bare Radford-64 b64 train step's images/s (benchmarks/end_to_end.py's).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE, CLASSES = 64, 10


def _picture(i: int) -> np.ndarray:
  """A smooth random 64x64 RGB picture (an 8x8 grid of colours, upsampled)."""
  rng = np.random.default_rng(i)
  coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
  return np.repeat(np.repeat(coarse, 8, 0), 8, 1)


def _jpeg(i: int) -> bytes:
  import io
  from PIL import Image
  out = io.BytesIO()
  Image.fromarray(_picture(i)).save(out, format="JPEG", quality=90)
  return out.getvalue()


def _write_range(args):
  root, start, stop = args
  for i in range(start, stop):
    path = os.path.join(root, f"class_{i % CLASSES}", f"{i:07d}.jpg")
    with open(path, "wb") as f:
      f.write(_jpeg(i))


def make_folder(root: str, n: int) -> str:
  directory = os.path.join(root, f"folder{n}")
  done = os.path.join(directory, ".complete")
  if not os.path.exists(done):
    for c in range(CLASSES):
      os.makedirs(os.path.join(directory, f"class_{c}"), exist_ok=True)
    chunks = [(directory, a, min(a + 5000, n)) for a in range(0, n, 5000)]
    with multiprocessing.Pool(os.cpu_count() or 2) as pool:
      pool.map(_write_range, chunks)
    open(done, "w").close()
  return f"folder:{directory}"


def make_tfds(root: str, n: int) -> tuple[str, str]:
  """(dataset name, data_dir) of an array_record TFDS dataset of n JPEGs."""
  import io
  import tensorflow_datasets as tfds
  name = f"jaxgan_synthetic_jpeg{n}"
  data_dir = os.path.join(root, "tfds")

  def info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(SIZE, SIZE, 3), encoding_format="jpeg"),
        "label": tfds.features.ClassLabel(num_classes=CLASSES)}))

  def generate(self):
    for i in range(n):
      yield i, {"image": io.BytesIO(_jpeg(i)), "label": i % CLASSES}

  # The class name gives the dataset's name (JaxganSyntheticJpeg<n> -> name).
  Builder = type(f"JaxganSyntheticJpeg{n}", (tfds.core.GeneratorBasedBuilder,), {
      "VERSION": tfds.core.Version("1.0.0"), "_info": info,
      "_split_generators": lambda self, dl_manager: {"train": self._generate_examples()},
      "_generate_examples": generate})
  builder = Builder(data_dir=data_dir, file_format="array_record")
  if not builder.is_prepared():
    builder.download_and_prepare()
  return name, data_dir


def _tree_memory(pid: int) -> tuple[int, int]:
  """(RSS of pid, PSS of pid and its descendants) in bytes."""
  import psutil
  try:
    main = psutil.Process(pid)
    rss = main.memory_info().rss
    pss = 0
    for p in [main, *main.children(recursive=True)]:
      try:
        pss += p.memory_full_info().pss
      except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return rss, pss
  except psutil.NoSuchProcess:
    return 0, 0


def run_training(dataset: str, data_dir: str | None, pipeline: str, steps: int,
                 workdir: str) -> dict:
  args = [sys.executable, "-m", "experiments.dcgan", f"--workdir={workdir}",
          f"--config.dataset={dataset}", "--config.image_size=64", "--config.batch_size=64",
          f"--config.num_train_steps={steps}", "--config.train_split=train",
          "--config.eval_split=", "--config.eval_every_steps=0", f"--config.log_every_steps={steps}",
          f"--config.checkpoint_every_steps={steps}", f"--config.sample_every_steps={steps}",
          f"--config.data_pipeline={pipeline}"]
  if data_dir:
    args.append(f"--config.data_dir={data_dir}")
  start = time.time()
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  peaks = {"rss": 0, "pss": 0}

  def sample():
    while proc.poll() is None:
      rss, pss = _tree_memory(proc.pid)
      peaks["rss"], peaks["pss"] = max(peaks["rss"], rss), max(peaks["pss"], pss)
      time.sleep(0.25)

  thread = threading.Thread(target=sample, daemon=True)
  thread.start()
  _, err = proc.communicate()
  thread.join()
  if proc.returncode:
    raise SystemExit(f"training failed ({proc.returncode}):\n{err[-3000:]}")
  line = next((l for l in err.splitlines() if "Input:" in l), "")
  return {"peak_rss_gib": peaks["rss"] / 2**30, "peak_pss_tree_gib": peaks["pss"] / 2**30,
          "wall_s": time.time() - start, "input": line[line.find("Input:"):]}


def feed_throughput(dataset: str, workers: int, batches: int = 40) -> float:
  """images/s of the streamed training feed alone, after its first batch."""
  code = f"""
import time, numpy as np
from experiments.configs.dcgan import get_config
from jaxgan import sharding
from jaxgan.data import Data
def main():
  c = get_config()
  c.update(dict(dataset={dataset!r}, image_size=64, batch_size=64, train_split="train",
                eval_split="", data_pipeline="streamed", data_workers={workers}))
  feed = Data(c).train_feed(sharding.make_mesh(), 0)
  it = feed.inputs()
  np.asarray(next(it)["image"])
  t = time.perf_counter()
  for _ in range({batches}):
    np.asarray(next(it)["image"])
  print({batches} * 64 / (time.perf_counter() - t))
  feed.close()
if __name__ == "__main__":
  main()
"""
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, check=True)
  return float(out.stdout.strip().splitlines()[-1])


def bare_step_rate(steps: int = 10) -> float:
  """images/s of the bare Radford-64 b64 DCGAN step (end_to_end's)."""
  code = """
from benchmarks import end_to_end
c = end_to_end._config("dcgan", "float32", 10, "digits", batch=64, image_size=64)
print(end_to_end._bare("dcgan", c, %d))
""" % steps
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, check=True)
  return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default="10000,200000")
  parser.add_argument("--formats", default="folder,tfds")
  parser.add_argument("--pipelines", default="streamed")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--root", default="/tmp/jaxgan_streamed")
  parser.add_argument("--throughput_workers", default="0,1,2")
  args = parser.parse_args(argv)
  os.makedirs(args.root, exist_ok=True)
  sizes = [int(s) for s in args.sizes.split(",")]
  results = []
  for fmt in args.formats.split(","):
    for n in sizes:
      t = time.time()
      if fmt == "folder":
        dataset, data_dir = make_folder(args.root, n), None
      else:
        dataset, data_dir = make_tfds(args.root, n)
      made = time.time() - t
      for pipe in args.pipelines.split(","):
        r = run_training(dataset, data_dir, pipe, args.steps,
                         os.path.join(args.root, f"run_{fmt}{n}_{pipe}_{time.time():.0f}"))
        r.update(format=fmt, images=n, pipeline=pipe, dataset_ready_s=made)
        print(json.dumps(r), flush=True)
        results.append(r)
  if args.throughput_workers:
    dataset = make_folder(args.root, max(sizes))
    for w in [int(x) for x in args.throughput_workers.split(",")]:
      print(json.dumps({"feed_images_per_s": feed_throughput(dataset, w), "data_workers": w}),
            flush=True)
    print(json.dumps({"bare_step_images_per_s": bare_step_rate()}), flush=True)


if __name__ == "__main__":
  main()
