"""Texture descriptors, synthesis, style transfer and texture analysis."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import style_transfer, texture, texture_analysis
from jaxgan.texture import analysis, features, gram, image_files, synthesis

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gram_matrix_hand_case():
  # One image, 1x2 positions, 2 channels: positions (1, 2) and (3, 4).
  f = jnp.asarray([[[[1.0, 2.0], [3.0, 4.0]]]])
  np.testing.assert_allclose(gram.gram_matrix(f)[0], [[5.0, 7.0], [7.0, 10.0]])
  a = {"l": jnp.asarray([[[1.0, 0.0], [0.0, 1.0]]])}
  b = {"l": jnp.asarray([[[1.0, 1.0], [1.0, 1.0]]])}
  total, per_layer = gram.texture_loss(b, a)
  np.testing.assert_allclose(per_layer["l"], (2 / 4) / (2 / 4))  # mean (G-A)^2 / mean A^2
  assert float(gram.texture_loss(a, a)[0]) == 0.0
  # Relative: scaling both sides alike leaves it unchanged.
  scaled = gram.texture_loss({"l": 3 * b["l"]}, {"l": 3 * a["l"]})[0]
  np.testing.assert_allclose(scaled, total, rtol=1e-6)
  assert gram.flat_descriptor({"l": jnp.ones((4, 3, 3))}).shape == (4, 6)


def _best_alignment_correlation(result: np.ndarray, source: np.ndarray) -> float:
  """The largest Pearson correlation between the grey result and the source
  over every shift leaving at least half of each side overlapping."""
  a, b = result.mean(-1), source.mean(-1)
  n = a.shape[0]
  best = -1.0
  for dy in range(-n // 2, n // 2 + 1):
    for dx in range(-n // 2, n // 2 + 1):
      ra = a[max(dy, 0):n + min(dy, 0), max(dx, 0):n + min(dx, 0)]
      rb = b[max(-dy, 0):n + min(-dy, 0), max(-dx, 0):n + min(-dx, 0)]
      best = max(best, float(np.corrcoef(ra.ravel(), rb.ravel())[0, 1]))
  return best


def test_synthesis_lowers_the_loss_without_copying_the_source(tmp_path):
  workdir = str(tmp_path / "brick")
  last = texture.synthesize("skimage:brick", workdir, size=48, steps=30, snapshot_every=15)
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert records[0]["step"] == 0 and records[-1]["step"] == 30
  assert last["loss"] < 0.05 * records[0]["loss"], (records[0]["loss"], last["loss"])
  assert {"scale_3", "scale_23"} <= set(records[-1])  # per-layer losses
  for name in ("source.png", "texture.png", "snapshots/step_00015.png",
               "snapshots/step_00030.png", "settings.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  result = image_files.load_image(os.path.join(workdir, "texture.png"))
  source = image_files.load_image(os.path.join(workdir, "source.png"))
  # Not a copy: no alignment of the result matches the source as the source
  # matches itself (correlation 1).
  assert _best_alignment_correlation(source, source) > 0.999
  assert _best_alignment_correlation(result, source) < 0.8


def test_same_seed_same_texture():
  net = features.RandomFeatures()
  src = jnp.asarray(image_files.load_image("skimage:gravel", 32)[None])
  objective = synthesis.texture_objective(net, src, net.layers)
  run = lambda seed: np.asarray(synthesis.optimize(
      objective, synthesis.noise_image(jax.random.PRNGKey(seed), src.shape), 3, "adam"))
  a, b, c = run(0), run(0), run(1)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_style_transfer_keeps_content_and_moves_towards_the_style(tmp_path):
  workdir = str(tmp_path / "style")
  last = style_transfer.stylize("skimage:chelsea", "skimage:gravel", workdir, size=48,
                                steps=20, snapshot_every=10)
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert records[0]["content"] < 1e-6  # it starts from the content image
  assert last["style"] < 0.5 * records[0]["style"]
  assert {"tv", "style/scale_3"} <= set(last)
  for name in ("content.png", "style.png", "stylized.png"):
    assert os.path.exists(os.path.join(workdir, name))


def test_texture_analysis_beats_pixel_statistics(tmp_path):
  r = texture_analysis.analyze(str(tmp_path / "analysis"), patch=64)
  assert r["classes"] == ["brick", "grass", "gravel"] and r["num_test"] == r["num_train"] > 100
  assert r["gram_linear_accuracy"] >= 0.95 and r["gram_nearest_mean_accuracy"] >= 0.95
  assert r["pixels_nearest_mean_accuracy"] < r["gram_nearest_mean_accuracy"]
  for name in ("analysis.json", "confusion_gram.png", "confusion_pixels.png", "pca.png"):
    assert os.path.exists(os.path.join(tmp_path, "analysis", name))
  m = np.asarray(r["gram_linear_confusion"])
  assert m.shape == (3, 3) and m.sum() == r["num_test"]


def test_region_patches_do_not_overlap_between_train_and_test():
  image = np.arange(64 * 96 * 3, dtype=np.float32).reshape(64, 96, 3)
  train, test = analysis.region_patches(image, 16, 8)
  assert set(np.unique(train[..., 0])).isdisjoint(np.unique(test[..., 0]))


def test_bad_inputs_are_clear_errors(tmp_path):
  with pytest.raises(image_files.ImageError, match="Image not found: 'missing.png'"):
    image_files.load_image("missing.png")
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"not a png")
  with pytest.raises(image_files.ImageError, match="bad.png: not a readable image"):
    image_files.load_image(str(bad))
  with pytest.raises(image_files.ImageError, match="Unknown scikit-image image 'bricks'"):
    image_files.load_image("skimage:bricks")
  with pytest.raises(ValueError, match="Unknown layer.*scale_4.*scale_3, scale_5"):
    texture.synthesize("skimage:brick", str(tmp_path / "t"), layers=["scale_4"], size=32,
                       steps=1)
  with pytest.raises(ValueError, match="Unknown --features 'resnet'"):
    features.make_features("resnet")
  with pytest.raises(ValueError, match="smaller than the largest random filter"):
    texture.synthesize("skimage:brick", str(tmp_path / "t"), size=16, steps=1)
  with pytest.raises(image_files.ImageError, match="needs at least 2"):
    (tmp_path / "one").mkdir()
    image_files.save_image(np.zeros((8, 8, 3)), str(tmp_path / "one" / "a.png"))
    texture_analysis.analyze(str(tmp_path / "a"), data=str(tmp_path / "one"))
  proc = subprocess.run([sys.executable, "-m", "experiments.texture", "--image=missing.png",
                         f"--workdir={tmp_path / 'cli'}"], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 1 and "error: Image not found: 'missing.png'" in proc.stderr
