"""The FID InceptionV3: weight loading (with and without torch) and, where
torch is installed, equality with an independent PyTorch implementation."""

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import torchfile
from jaxgan.models import inception


@pytest.fixture(scope="module")
def shapes():
  return jax.eval_shape(lambda: inception.FIDInceptionV3().init(
      jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3))))


def random_state_dict(shapes, seed=0):
  """A state dict in pytorch-fid's names and layouts, with random weights
  scaled so activations stay O(1) through the network."""
  rng = np.random.default_rng(seed)
  sd = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(shapes["params"])[0]:
    names = [str(k.key) for k in path]
    module, name = ".".join(names[:-1]), names[-1]
    if name == "kernel" and names[-2] == "conv":
      kh, kw, cin, cout = leaf.shape
      w = rng.normal(0, np.sqrt(2 / (kh * kw * cin)), leaf.shape).astype(np.float32)
      sd[module + ".weight"] = np.transpose(w, (3, 2, 0, 1))
    elif name == "kernel":  # fc
      sd[module + ".weight"] = rng.normal(0, 0.02, leaf.shape[::-1]).astype(np.float32)
    elif name == "scale":
      sd[module + ".weight"] = rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    else:
      sd[module + ".bias"] = rng.normal(0, 0.1, leaf.shape).astype(np.float32)
  for path, leaf in jax.tree_util.tree_flatten_with_path(shapes["batch_stats"])[0]:
    names = [str(k.key) for k in path]
    module = ".".join(names[:-1])
    if names[-1] == "mean":
      sd[module + ".running_mean"] = rng.normal(0, 0.5, leaf.shape).astype(np.float32)
    else:
      sd[module + ".running_var"] = rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
      sd[module + ".num_batches_tracked"] = np.array(7, np.int64)
  return sd


def test_architecture(shapes):
  params = jax.tree_util.tree_leaves(shapes["params"])
  # torchvision's inception_v3 has 27,161,264 parameters; less its auxiliary
  # head (3,326,696), plus 8 more classes (8 * 2049) for the FID network.
  assert sum(int(np.prod(p.shape)) for p in params) == 27_161_264 - 3_326_696 + 8 * 2049
  out = jax.eval_shape(lambda v, x: inception.FIDInceptionV3().apply(v, x), shapes,
                       jax.ShapeDtypeStruct((3, 28, 28, 1), jnp.float32))
  assert out[0].shape == (3, 2048) and out[1].shape == (3, 1008)


def test_npz_weights_load_and_are_checked(shapes, tmp_path):
  sd = random_state_dict(shapes)
  path = str(tmp_path / "w.npz")
  np.savez(path, **sd)
  variables, resolved = inception.load_fid_variables(path)
  assert resolved == path
  np.testing.assert_array_equal(
      variables["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"],
      np.transpose(sd["Mixed_6b.branch7x7_2.conv.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], sd["fc.weight"].T)
  np.testing.assert_array_equal(variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"],
                                sd["Mixed_7c.branch_pool.bn.running_var"])

  missing = dict(sd)
  del missing["Mixed_5b.branch1x1.bn.running_mean"]
  with pytest.raises(ValueError, match="lacks 1 .*Mixed_5b/branch1x1/bn/mean"):
    inception.variables_from_state_dict(missing)
  wrong = dict(sd, **{"fc.weight": np.zeros((1000, 2048), np.float32)})
  with pytest.raises(ValueError, match="fc.weight.*shape"):
    inception.variables_from_state_dict(wrong)
  extra = dict(sd, **{"AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)})
  with pytest.raises(ValueError, match="AuxLogits"):
    inception.variables_from_state_dict(extra)


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
  with pytest.raises(FileNotFoundError) as e:
    inception.load_fid_variables()
  message = str(e.value)
  assert str(tmp_path / "nowhere.pth") in message
  assert inception.WEIGHTS_URL in message and "experiments.classifier" in message


def test_torchfile_refuses_code_and_garbage(tmp_path):
  evil = tmp_path / "evil.pth"
  evil.write_bytes(pickle.dumps(os.system))
  with pytest.raises(torchfile.TorchFileError, match="refusing to load"):
    torchfile.load_state_dict(str(evil))
  junk = tmp_path / "junk.pth"
  junk.write_bytes(b"\x00" * 100)
  with pytest.raises(torchfile.TorchFileError):
    torchfile.load_state_dict(str(junk))


# --- Against PyTorch (runs where torch is installed: pip install -e ".[bench]") ---

def _torch_inception(sd, x):
  """pytorch-fid's FID InceptionV3, written directly with torch.nn.functional."""
  import torch
  import torch.nn.functional as F
  w = {k: torch.from_numpy(v) for k, v in sd.items()}

  def conv(name, x, stride=1, padding=0):
    x = F.conv2d(x, w[name + ".conv.weight"], stride=stride, padding=padding)
    x = F.batch_norm(x, w[name + ".bn.running_mean"], w[name + ".bn.running_var"],
                     w[name + ".bn.weight"], w[name + ".bn.bias"], False, 0.0, 1e-3)
    return F.relu(x)

  def avg(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

  def block_a(n, x):
    b1 = conv(n + ".branch1x1", x)
    b5 = conv(n + ".branch5x5_2", conv(n + ".branch5x5_1", x), padding=2)
    b3 = conv(n + ".branch3x3dbl_1", x)
    b3 = conv(n + ".branch3x3dbl_3", conv(n + ".branch3x3dbl_2", b3, padding=1), padding=1)
    return torch.cat([b1, b5, b3, conv(n + ".branch_pool", avg(x))], 1)

  def block_b(n, x):
    b3 = conv(n + ".branch3x3", x, stride=2)
    bd = conv(n + ".branch3x3dbl_2", conv(n + ".branch3x3dbl_1", x), padding=1)
    bd = conv(n + ".branch3x3dbl_3", bd, stride=2)
    return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)

  def block_c(n, x):
    b1 = conv(n + ".branch1x1", x)
    b7 = conv(n + ".branch7x7_1", x)
    b7 = conv(n + ".branch7x7_3", conv(n + ".branch7x7_2", b7, padding=(0, 3)), padding=(3, 0))
    bd = conv(n + ".branch7x7dbl_1", x)
    for i, p in ((2, (3, 0)), (3, (0, 3)), (4, (3, 0)), (5, (0, 3))):
      bd = conv(f"{n}.branch7x7dbl_{i}", bd, padding=p)
    return torch.cat([b1, b7, bd, conv(n + ".branch_pool", avg(x))], 1)

  def block_d(n, x):
    b3 = conv(n + ".branch3x3_2", conv(n + ".branch3x3_1", x), stride=2)
    b7 = conv(n + ".branch7x7x3_1", x)
    b7 = conv(n + ".branch7x7x3_2", b7, padding=(0, 3))
    b7 = conv(n + ".branch7x7x3_3", b7, padding=(3, 0))
    b7 = conv(n + ".branch7x7x3_4", b7, stride=2)
    return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)

  def block_e(n, x, max_pool):
    b1 = conv(n + ".branch1x1", x)
    b3 = conv(n + ".branch3x3_1", x)
    b3 = torch.cat([conv(n + ".branch3x3_2a", b3, padding=(0, 1)),
                    conv(n + ".branch3x3_2b", b3, padding=(1, 0))], 1)
    bd = conv(n + ".branch3x3dbl_2", conv(n + ".branch3x3dbl_1", x), padding=1)
    bd = torch.cat([conv(n + ".branch3x3dbl_3a", bd, padding=(0, 1)),
                    conv(n + ".branch3x3dbl_3b", bd, padding=(1, 0))], 1)
    pooled = F.max_pool2d(x, 3, stride=1, padding=1) if max_pool else avg(x)
    return torch.cat([b1, b3, bd, conv(n + ".branch_pool", pooled)], 1)

  x = torch.from_numpy(np.transpose(x, (0, 3, 1, 2)).copy())
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  x = conv("Conv2d_1a_3x3", x, stride=2)
  x = conv("Conv2d_2a_3x3", x)
  x = conv("Conv2d_2b_3x3", x, padding=1)
  x = F.max_pool2d(x, 3, stride=2)
  x = conv("Conv2d_4a_3x3", conv("Conv2d_3b_1x1", x))
  x = F.max_pool2d(x, 3, stride=2)
  for n in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
    x = block_a(n, x)
  x = block_b("Mixed_6a", x)
  for n in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
    x = block_c(n, x)
  x = block_d("Mixed_7a", x)
  x = block_e("Mixed_7c", block_e("Mixed_7b", x, False), True)
  pool3 = x.mean((2, 3))
  logits = F.linear(pool3, w["fc.weight"], w["fc.bias"])
  return pool3.numpy(), logits.numpy()


def test_matches_pytorch_and_reads_torch_files(shapes, tmp_path):
  torch = pytest.importorskip("torch")
  sd = random_state_dict(shapes, seed=1)
  # torch.save in both of its formats; jaxgan reads them without torch.
  tensors = {k: torch.from_numpy(v) for k, v in sd.items()}
  for name, zipped in (("new.pth", True), ("legacy.pth", False)):
    path = str(tmp_path / name)
    torch.save(tensors, path, _use_new_zipfile_serialization=zipped)
    loaded = torchfile.load_state_dict(path)
    assert loaded.keys() == sd.keys()
    for k in sd:
      np.testing.assert_array_equal(loaded[k], sd[k])
  variables, _ = inception.load_fid_variables(str(tmp_path / "legacy.pth"))

  rng = np.random.default_rng(0)
  for shape in ((2, 32, 32, 3), (2, 28, 28, 1)):
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    pool3, logits = jax.jit(inception.FIDInceptionV3().apply)(variables, x)
    ref_pool3, ref_logits = _torch_inception(sd, x)
    scale = np.abs(ref_pool3).max()
    assert scale > 1e-2  # the random weights keep activations alive
    np.testing.assert_allclose(pool3, ref_pool3, rtol=1e-3, atol=1e-4 * scale)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-3, atol=1e-4 * np.abs(ref_logits).max())


def test_inception_extractor(shapes, tmp_path):
  import hashlib
  from jaxgan import evaluation, runs
  path = str(tmp_path / "w.npz")
  np.savez(path, **random_state_dict(shapes, seed=2))
  extractor = runs.extractor("inception:" + path)
  assert isinstance(extractor, evaluation.InceptionExtractor)
  assert extractor.protocol["extractor_checkpoint_sha256"] == hashlib.sha256(
      open(path, "rb").read()).hexdigest()
  images = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
  features, probs = extractor(images)
  assert features.shape == (3, 2048) and probs.shape == (3, 1008)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
  assert np.all(np.isfinite(features)) and np.ptp(features, axis=0).max() > 0


def test_clean_resize_matches_clean_fid():
  """jaxgan's clean-fid resize against clean-fid's own ("clean" mode: PIL
  bicubic per channel in float), on 8-bit images and on float samples."""
  resize = pytest.importorskip("cleanfid.resize")  # clean-fid imports torch
  from jaxgan.evaluation.extractors import clean_resize
  theirs = resize.build_resizer("clean")
  rng = np.random.default_rng(0)
  for shape in ((2, 28, 28, 3), (2, 32, 32, 3), (1, 600, 500, 3)):
    pixels = rng.integers(0, 256, shape).astype(np.float32)
    ours = (clean_resize(pixels / 127.5 - 1.0) + 1.0) * 127.5
    want = np.stack([theirs(p) for p in pixels])
    np.testing.assert_allclose(ours, want, atol=2e-3)


def test_clean_resize_antialiases_where_pytorch_fid_aliases(shapes, tmp_path):
  """Shrinking a one-pixel checkerboard 3x: clean-fid's bicubic filter
  averages it to grey; pytorch-fid's bilinear resize samples single pixels.
  The protocol names the resize, and the features differ."""
  from jaxgan import evaluation, runs
  from jaxgan.evaluation.extractors import clean_resize
  board = (np.indices((897, 897)).sum(0) % 2 * 2.0 - 1.0)[None, :, :, None]
  clean = clean_resize(board)
  bilinear = np.asarray(inception.resize_input(jnp.asarray(board, jnp.float32)))
  assert clean.shape == bilinear.shape == (1, 299, 299, 3)
  assert np.abs(clean[0, 5:-5, 5:-5]).max() < 0.05 and np.abs(bilinear).min() > 0.9
  path = str(tmp_path / "w.npz")
  np.savez(path, **random_state_dict(shapes, seed=2))
  plain = runs.extractor("inception:" + path)
  cleaner = runs.extractor("inception-clean:" + path)
  assert cleaner.resize == "clean" and "clean-fid" in cleaner.protocol["resize"]
  images = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
  assert not np.allclose(plain(images)[0], cleaner(images)[0])
  with pytest.raises(ValueError, match="Unknown resize 'lanczos'"):
    evaluation.InceptionExtractor(path, resize="lanczos")
