"""Multi-seed studies and sweeps: run directories in, mean ± spread tables out.

A study directory holds one run directory per (sweep point, seed):
`<study>/<point>/seed_<s>/` (`<point>` is e.g. `learning_rate=0.001`, or
`base` without a sweep). `aggregate(study_dir)` reads each run's
`metrics.jsonl` (its final value of every metric it logs: the value at the
last step where that metric appears) and writes

  study.csv   one row per run: point, seed, step, every final metric
  study.md    per point and metric: mean ± std, the 95% interval of the mean
              (Student t), min, max, number of seeds
  study.png   each headline metric against the step: a thin line per seed,
              a thick line for the mean, one colour per point

Nothing is retrained: aggregation only reads run directories.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re

import numpy as np

from jaxgan.writers import read_metrics

# Bookkeeping, not results.
_NOT_METRICS = {"step", "wall_time_s", "images_per_sec", "logged_steps"}

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile_975(dof: int) -> float:
  if dof < 1:
    return math.nan
  if dof <= len(_T975):
    return _T975[dof - 1]
  # Cornish-Fisher expansion around the normal quantile (error < 1e-5 here).
  z, v = 1.959963985, float(dof)
  return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
          + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


def parse_sweep(specs: list[str]) -> list[tuple[str, list]]:
  """["learning_rate=1e-4,2e-4", "batch_size=64,128"] -> [(field, [values])]
  with values parsed as JSON where they parse (numbers, true/false, null)."""
  out = []
  for spec in specs:
    field, sep, values = spec.partition("=")
    if not sep or not field or not values:
      raise ValueError(f"--sweep {spec!r}: expected FIELD=V1,V2,...")
    parsed = []
    for v in values.split(","):
      try:
        parsed.append(json.loads(v))
      except json.JSONDecodeError:
        parsed.append(v)
    out.append((field, parsed))
  if len(out) > 2:
    raise ValueError("--sweep takes one or two fields (a grid over both).")
  return out


def sweep_points(sweep: list[tuple[str, list]]) -> list[dict]:
  """The grid: one {field: value} per combination ([{}] without a sweep)."""
  if not sweep:
    return [{}]
  fields = [f for f, _ in sweep]
  return [dict(zip(fields, combo)) for combo in itertools.product(*(v for _, v in sweep))]


def point_name(point: dict) -> str:
  if not point:
    return "base"
  return ",".join(f"{k}={v}" for k, v in point.items()).replace("/", "_")


def run_dir(study_dir: str, point: dict, seed: int) -> str:
  return os.path.join(study_dir, point_name(point), f"seed_{seed}")


def final_metrics(records: list[dict]) -> dict:
  """Each metric's value at the last step where it was logged."""
  out = {}
  for r in records:
    for k, v in r.items():
      if k not in _NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
        out[k] = float(v)
  return out


def find_runs(study_dir: str) -> list[dict]:
  """Every `<point>/seed_<s>` run directory with metrics, sorted."""
  runs = []
  for point in sorted(os.listdir(study_dir)) if os.path.isdir(study_dir) else []:
    pdir = os.path.join(study_dir, point)
    if not os.path.isdir(pdir):
      continue
    for name in os.listdir(pdir):
      m = re.fullmatch(r"seed_(-?\d+)", name)
      path = os.path.join(pdir, name)
      if not m or not os.path.exists(os.path.join(path, "metrics.jsonl")):
        continue
      records = read_metrics(path)
      if records:
        runs.append({"point": point, "seed": int(m.group(1)), "dir": path,
                     "records": records, "step": records[-1]["step"],
                     "final": final_metrics(records)})
  return sorted(runs, key=lambda r: (r["point"], r["seed"]))


def summarize(values: list[float]) -> dict:
  x = np.asarray(values, np.float64)
  n = len(x)
  mean = float(np.mean(x))
  std = float(np.std(x, ddof=1)) if n > 1 else math.nan
  half = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
  return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half,
          "min": float(np.min(x)), "max": float(np.max(x))}


def _fmt(v: float) -> str:
  return "n/a" if math.isnan(v) else f"{v:.4g}"


def headline_metrics(names) -> list[str]:
  """Eval metrics first (FID, accuracy, NLL, ...), then the rest."""
  evals = sorted(n for n in names if n.startswith("eval_") and not n.startswith("eval_num_"))
  return evals or sorted(names)


def aggregate(study_dir: str, plot: bool = True) -> dict:
  """Writes study.csv, study.md (and study.png); returns {point: {metric: summary}}."""
  runs = find_runs(study_dir)
  if not runs:
    raise ValueError(f"No run directories with metrics under {study_dir} "
                     "(expected <point>/seed_<s>/metrics.jsonl).")
  metrics = sorted({k for r in runs for k in r["final"]})
  with open(os.path.join(study_dir, "study.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["point", "seed", "step", "run_dir"] + metrics)
    for r in runs:
      w.writerow([r["point"], r["seed"], r["step"], os.path.relpath(r["dir"], study_dir)]
                 + [r["final"].get(m, "") for m in metrics])

  summary: dict[str, dict] = {}
  info: dict[str, tuple[int, list[int]]] = {}
  for point, group in itertools.groupby(runs, key=lambda r: r["point"]):
    group = list(group)
    summary[point] = {m: summarize([r["final"][m] for r in group if m in r["final"]])
                      for m in metrics if any(m in r["final"] for r in group)}
    info[point] = (len(group), sorted({r["step"] for r in group}))

  lines = ["# Study: " + os.path.basename(os.path.abspath(study_dir)), "",
           "Final value of each metric per run; mean ± standard deviation over seeds, "
           "the 95% interval of the mean (Student t), min and max.", ""]
  for point, stats in summary.items():
    n, steps = info[point]
    lines += [f"## {point}", "",
              f"Runs: {n}; final step: {', '.join(map(str, steps))}"
              + (" (the runs ended at different steps)" if len(steps) > 1 else ""), "",
              "| metric | mean ± std | 95% interval | min | max | n |",
              "| --- | --- | --- | --- | --- | --- |"]
    first = headline_metrics(list(stats))
    for m in first + sorted(set(stats) - set(first)):
      st = stats[m]
      lines.append(f"| {m} | {_fmt(st['mean'])} ± {_fmt(st['std'])} | "
                   f"[{_fmt(st['ci_low'])}, {_fmt(st['ci_high'])}] | {_fmt(st['min'])} | "
                   f"{_fmt(st['max'])} | {st['n']} |")
    lines.append("")
  with open(os.path.join(study_dir, "study.md"), "w") as f:
    f.write("\n".join(lines))
  if plot:
    plot_curves(runs, os.path.join(study_dir, "study.png"))
  return summary


def plot_curves(runs: list[dict], path: str, max_metrics: int = 6) -> None:
  """Headline metrics against the step: one thin line per seed, the mean thick."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = headline_metrics({k for r in runs for k in r["final"]})[:max_metrics]
  cols = min(3, len(names))
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
  points = sorted({r["point"] for r in runs})
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for ax, name in zip(axes.flat, names):
    for i, point in enumerate(points):
      colour = colours[i % len(colours)]
      curves = {}
      for r in runs:
        if r["point"] != point:
          continue
        xs = [rec["step"] for rec in r["records"] if name in rec]
        ys = [rec[name] for rec in r["records"] if name in rec]
        if xs:
          ax.plot(xs, ys, color=colour, alpha=0.35, linewidth=0.8)
          curves[r["seed"]] = dict(zip(xs, ys))
      common = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
      if common:
        ax.plot(common, [np.mean([c[s] for c in curves.values()]) for s in common],
                color=colour, linewidth=2.2, label=f"{point} (mean of {len(curves)})")
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
