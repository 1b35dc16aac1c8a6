"""Studies: aggregation of run directories into mean ± spread tables and a
plot, sweep grids, and the CLI end to end on a tiny classifier study."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import env_with_devices
from jaxgan import study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_run(path, final_fid, loss=1.0):
  os.makedirs(path)
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    f.write(json.dumps({"step": 10, "d_loss": loss + 1, "images_per_sec": 5.0}) + "\n")
    f.write(json.dumps({"step": 20, "d_loss": loss, "eval_fid": final_fid + 10}) + "\n")
    f.write(json.dumps({"step": 30, "d_loss": loss, "eval_fid": final_fid,
                        "images_per_sec": 6.0, "wall_time_s": 3.0}) + "\n")


def test_aggregation_of_fake_runs(tmp_path):
  d = str(tmp_path)
  for seed, fid in enumerate([10.0, 12.0, 14.0]):
    fake_run(study.run_dir(d, {}, seed), fid)
  for seed, fid in enumerate([20.0, 30.0]):
    fake_run(study.run_dir(d, {"learning_rate": 0.1}, seed), fid, loss=2.0)
  os.makedirs(os.path.join(d, "base", "seed_9"))  # no metrics yet: ignored

  summary = study.aggregate(d)
  base = summary["base"]["eval_fid"]
  assert base["n"] == 3 and base["mean"] == pytest.approx(12.0)
  assert base["std"] == pytest.approx(2.0)
  # 95% interval of the mean: 12 ± t(0.975, 2) * 2 / sqrt(3), t = 4.303.
  assert base["ci_low"] == pytest.approx(12 - 4.303 * 2 / np.sqrt(3))
  assert (base["min"], base["max"]) == (10.0, 14.0)
  assert summary["learning_rate=0.1"]["eval_fid"]["mean"] == pytest.approx(25.0)
  assert summary["learning_rate=0.1"]["d_loss"]["std"] == 0.0
  assert "images_per_sec" not in summary["base"] and "step" not in summary["base"]

  with open(os.path.join(d, "study.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [(r["point"], r["seed"], r["eval_fid"]) for r in rows] == [
      ("base", "0", "10.0"), ("base", "1", "12.0"), ("base", "2", "14.0"),
      ("learning_rate=0.1", "0", "20.0"), ("learning_rate=0.1", "1", "30.0")]
  md = open(os.path.join(d, "study.md")).read()
  assert "| eval_fid | 12 ± 2 | [7.031, 16.97] | 10 | 14 | 3 |" in md
  assert "| eval_fid | 25 ± 7.071 |" in md
  with Image.open(os.path.join(d, "study.png")) as im:
    assert im.size[0] > 100 and im.size[1] > 100

  # Re-aggregating reads the same files and writes the same tables.
  before = open(os.path.join(d, "study.csv")).read(), md
  study.aggregate(d)
  assert (open(os.path.join(d, "study.csv")).read(), open(os.path.join(d, "study.md")).read()) \
      == before


def test_a_torn_last_line_is_skipped_and_a_damaged_one_named(tmp_path):
  """A run killed while writing metrics.jsonl leaves a torn last line: the
  study aggregates without it, with a warning; damage elsewhere is one error
  naming the file and line."""
  d = str(tmp_path)
  for seed in range(2):
    fake_run(study.run_dir(d, {}, seed), 10.0 + seed)
  path = os.path.join(study.run_dir(d, {}, 1), "metrics.jsonl")
  with open(path, "a") as f:
    f.write('{"step": 40, "eval_fid": 99.0, "d_lo')
  with pytest.warns(UserWarning, match="torn last line 4"):
    summary = study.aggregate(d)
  assert summary["base"]["eval_fid"]["mean"] == pytest.approx(10.5)
  lines = open(path).read().splitlines()
  with open(path, "w") as f:
    f.write("\n".join([lines[0], lines[3], lines[1]]) + "\n")
  with pytest.raises(ValueError, match=f"{path}: line 2 is not a JSON record"):
    study.aggregate(d)


def test_t_quantiles_match_scipy():
  from scipy import stats
  for dof in list(range(1, 61)) + [100, 1000]:
    assert study.t_quantile_975(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=6e-4)


def test_sweep_grid_and_bad_specs():
  sweep = study.parse_sweep(["learning_rate=1e-4,2e-4", "model=lenet5,small_cnn"])
  points = study.sweep_points(sweep)
  assert len(points) == 4 and points[0] == {"learning_rate": 1e-4, "model": "lenet5"}
  assert study.point_name(points[-1]) == "learning_rate=0.0002,model=small_cnn"
  assert study.sweep_points([]) == [{}]
  with pytest.raises(ValueError, match="FIELD=V1,V2"):
    study.parse_sweep(["learning_rate"])
  with pytest.raises(ValueError, match="one or two"):
    study.parse_sweep(["a=1", "b=2", "c=3"])
  with pytest.raises(ValueError, match="No run directories"):
    study.aggregate("/nonexistent/study")


def test_study_cli_trains_each_seed_then_reaggregates_without_training(tmp_path):
  workdir = str(tmp_path / "study")
  args = [sys.executable, "-m", "experiments.study", "--config",
          "experiments/configs/classifier.py", "--seeds", "2", "--workdir", workdir,
          "--config.dataset=digits", "--config.batch_size=32", "--config.num_train_steps=6",
          "--config.log_every_steps=3", "--config.eval_every_steps=3",
          "--config.eval_split=test[:64]", "--config.checkpoint_every_steps=6"]
  # One device: what is tested is the study's bookkeeping (multi-device runs
  # are tested elsewhere), and a process with 8 simulated devices on 2 cores
  # spends longer compiling and stepping.
  env = env_with_devices(1)
  out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "| eval_accuracy |" in out.stdout
  with open(os.path.join(workdir, "study.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [(r["seed"], r["step"]) for r in rows] == [("0", "6"), ("1", "6")]
  accuracies = [float(r["eval_accuracy"]) for r in rows]
  assert all(0.0 <= a <= 1.0 for a in accuracies)
  for seed in (0, 1):
    with open(os.path.join(workdir, "base", f"seed_{seed}", "config.json")) as f:
      assert json.load(f)["seed"] == seed

  again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
  assert again.returncode == 0, again.stderr[-3000:]
  assert (again.stdout + again.stderr).count("nothing to train") == 2
  with open(os.path.join(workdir, "study.csv")) as f:
    assert [float(r["eval_accuracy"]) for r in csv.DictReader(f)] == accuracies
