"""VGG16/VGG19: both weight formats (names, layouts, shapes), preprocessing,
outputs equal to an independent PyTorch VGG on random weights (where torch
is installed), and `experiments.recognize`."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import vgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = {16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
            512, 512, 512, "M"],
       19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
            512, 512, 512, 512, "M"]}


def torchvision_state_dict(depth: int, seed: int | None = 0) -> dict:
  """Random weights in torchvision's VGG layout (He-scaled, so activations
  keep their scale through the layers); seed None: zeros (cheap, for the
  layout and error tests)."""
  draw = np.zeros if seed is None else np.random.default_rng(seed).standard_normal
  sd, index, cin = {}, 0, 3
  for v in CFG[depth]:
    if v == "M":
      index += 1
      continue
    sd[f"features.{index}.weight"] = (draw((v, cin, 3, 3)) *
                                      np.sqrt(2 / (9 * cin))).astype(np.float32)
    sd[f"features.{index}.bias"] = (0.1 * draw(v)).astype(np.float32)
    index, cin = index + 2, v
  for key, (out, inp) in (("classifier.0", (4096, 25088)), ("classifier.3", (4096, 4096)),
                          ("classifier.6", (1000, 4096))):
    sd[f"{key}.weight"] = (draw((out, inp)) * np.sqrt(2 / inp)).astype(np.float32)
    sd[f"{key}.bias"] = (0.1 * draw(out)).astype(np.float32)
  return sd


def write_keras_h5(sd: dict, depth: int, path: str, drop: str | None = None,
                   reshape: str | None = None) -> str:
  """The state dict in the layout of Keras's VGG .h5 files: layer groups
  block<b>_conv<i>, fc1, fc2, predictions with `layer_names` and
  `weight_names` attributes; HWIO kernels; fc1's rows in (h, w, c) order."""
  import h5py
  names, convs, index = [], [], 0
  for b, n in enumerate(vgg.BLOCKS[depth], start=1):
    for i in range(1, n + 1):
      convs.append((f"block{b}_conv{i}", f"features.{index}"))
      index += 2
    index += 1
  with h5py.File(path, "w") as f:
    def layer(name, kernel, bias):
      if name == drop:
        return
      if name == reshape:
        kernel = kernel[..., :-1]
      g = f.create_group(name)
      wn = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
      g.attrs["weight_names"] = wn
      g.create_dataset(wn[0].decode(), data=kernel)
      g.create_dataset(wn[1].decode(), data=bias)
      names.append(name.encode())

    f.create_group("input_1").attrs["weight_names"] = []
    names.append(b"input_1")
    for name, key in convs:
      layer(name, sd[f"{key}.weight"].transpose(2, 3, 1, 0), sd[f"{key}.bias"])
    w = sd["classifier.0.weight"].reshape(4096, 512, 7, 7).transpose(2, 3, 1, 0)
    layer("fc1", w.reshape(25088, 4096), sd["classifier.0.bias"])
    layer("fc2", sd["classifier.3.weight"].T, sd["classifier.3.bias"])
    layer("predictions", sd["classifier.6.weight"].T, sd["classifier.6.bias"])
    f.attrs["layer_names"] = names
  return path


@pytest.fixture(scope="module")
def vgg16_h5(tmp_path_factory):
  sd = torchvision_state_dict(16)
  return sd, write_keras_h5(sd, 16, str(tmp_path_factory.mktemp("vgg") / "vgg16.h5"))


def test_keras_h5_loads_every_layer_in_flax_layout(vgg16_h5):
  sd, path = vgg16_h5
  variables, source, resolved = vgg.load_vgg(16, path)
  assert (source, resolved) == ("keras", path)
  p = variables["params"]
  assert set(p) == {*(n for n in vgg.layer_names(16) if n.startswith("conv")), "fc6", "fc7",
                    "fc8"}
  np.testing.assert_array_equal(p["conv1_1"]["kernel"],
                                sd["features.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p["conv5_3"]["bias"], sd["features.28.bias"])
  # fc6 consumes the NHWC flattening: row (h, w, c) is torch's column (c, h, w).
  h, w, c = 3, 5, 17
  np.testing.assert_array_equal(p["fc6"]["kernel"][(h * 7 + w) * 512 + c],
                                sd["classifier.0.weight"][:, c * 49 + h * 7 + w])
  np.testing.assert_array_equal(p["fc8"]["kernel"], sd["classifier.6.weight"].T)


def test_preprocessing_of_each_source():
  rgb = jnp.asarray([[[[0.2, 0.5, 1.0]]]])
  np.testing.assert_allclose(vgg.preprocess(rgb, "keras")[0, 0, 0],
                             [255 - 103.939, 127.5 - 116.779, 51 - 123.68], rtol=1e-5)
  np.testing.assert_allclose(vgg.preprocess(rgb, "torchvision")[0, 0, 0],
                             [(0.2 - 0.485) / 0.229, (0.5 - 0.456) / 0.224,
                              (1.0 - 0.406) / 0.225], rtol=1e-5)


def test_bad_weights_are_clear_errors(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"VGG19 ImageNet weights not found\. Download "
                     r"vgg19-dcbb9e9d.pth from https://download.pytorch.org/models/"
                     r"vgg19-dcbb9e9d.pth .* or vgg19_weights_tf_dim_ordering_tf_kernels.h5 "
                     r"from https://github.com/fchollet"):
    vgg.load_vgg(19)
  sd = torchvision_state_dict(16, seed=None)
  bad = write_keras_h5(sd, 16, str(tmp_path / "bad.h5"), reshape="block3_conv2")
  with pytest.raises(ValueError, match=r"conv3_2 kernel has shape \(3, 3, 256, 255\), expected "
                     r"\(3, 3, 256, 256\)"):
    vgg.load_vgg(16, bad)
  missing = write_keras_h5(sd, 16, str(tmp_path / "missing.h5"), drop="fc2")
  with pytest.raises(ValueError, match="no weights for VGG16 layer fc7"):
    vgg.load_vgg(16, missing)
  with pytest.raises(ValueError, match="unexpected layer 'block3_conv4'; not Keras's VGG16"):
    vgg.load_vgg(16, write_keras_h5(torchvision_state_dict(19, seed=None), 19,
                                    str(tmp_path / "19.h5")))
  (tmp_path / "weights.bin").write_bytes(b"x")
  with pytest.raises(ValueError, match=r"torchvision's \.pth or Keras's \.h5"):
    vgg.load_vgg(16, str(tmp_path / "weights.bin"))


def test_recognize_prints_top_classes(vgg16_h5, tmp_path):
  from experiments import recognize
  from jaxgan.texture import image_files
  _, path = vgg16_h5
  photo = image_files.save_image(image_files.load_image("skimage:chelsea"), str(tmp_path / "cat.png"))
  (result,) = recognize.recognize([photo], "vgg16", path, top=5)
  assert result[0] == photo and len(result[1]) == 5
  probs = [p for _, p in result[1]]
  assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
  assert all(name in vgg.imagenet_classes() for name, _ in result[1])
  names = vgg.imagenet_classes()
  assert len(names) == 1000 and names[281] == "tabby" and names[999] == "toilet_tissue"
  broken = tmp_path / "broken.jpg"
  broken.write_bytes(b"\xff\xd8 not really a jpeg")
  with pytest.raises(image_files.ImageError, match="broken.jpg: not a readable image"):
    recognize.recognize([photo, str(broken)], "vgg16", path)


def test_recognize_without_weights_says_where_to_get_them(tmp_path):
  from jaxgan.texture import image_files
  photo = image_files.save_image(np.zeros((8, 8, 3)), str(tmp_path / "x.png"))
  proc = subprocess.run([sys.executable, "-m", "experiments.recognize", photo],
                        cwd=REPO, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, HOME=str(tmp_path)))
  assert proc.returncode == 1
  assert "VGG16 ImageNet weights not found" in proc.stderr
  assert "https://download.pytorch.org/models/vgg16-397923af.pth" in proc.stderr
  proc = subprocess.run([sys.executable, "-m", "experiments.recognize",
                         str(tmp_path / "none.jpg"), f"--weights={tmp_path / 'none.h5'}"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and "not found" in proc.stderr


def test_vgg_texture_features(vgg16_h5):
  from jaxgan.texture import features
  net = features.make_features(f"vgg16:{vgg16_h5[1]}")
  assert net.default_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
  assert net.content_layer == "conv4_2"
  out = net(jnp.zeros((1, 64, 64, 3)))
  assert out["conv1_1"].shape == (1, 64, 64, 64) and out["pool5"].shape == (1, 2, 2, 512)


# -- against an independent PyTorch VGG ------------------------------------------

def _torch_vgg(depth: int, sd: dict):
  torch = pytest.importorskip("torch")
  nn = torch.nn
  layers, cin = [], 3
  for v in CFG[depth]:
    if v == "M":
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
      cin = v

  class TorchVGG(nn.Module):
    def __init__(self):
      super().__init__()
      self.features = nn.Sequential(*layers)
      self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
      self.classifier = nn.Sequential(nn.Linear(25088, 4096), nn.ReLU(), nn.Dropout(),
                                      nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
                                      nn.Linear(4096, 1000))

    def forward(self, x):
      acts = {}
      for i, m in enumerate(self.features):
        x = m(x)
        acts[i] = x
      x = self.classifier(torch.flatten(self.avgpool(x), 1))
      return acts, x

  model = TorchVGG().eval()
  model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
  return torch, model


@pytest.mark.parametrize("depth, size", [(16, 224), (19, 64)])
def test_vgg_equals_pytorch_on_random_weights(depth, size, tmp_path):
  sd = torchvision_state_dict(depth, seed=depth)
  torch, model = _torch_vgg(depth, sd)
  path = str(tmp_path / f"vgg{depth}.pth")
  torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
  variables, source, _ = vgg.load_vgg(depth, path)
  assert source == "torchvision"
  x = np.random.default_rng(1).standard_normal((2, size, size, 3)).astype(np.float32)
  with torch.no_grad():
    acts, logits = model(torch.from_numpy(x.transpose(0, 3, 1, 2)))
  with jax.default_matmul_precision("highest"):
    ours = jax.jit(lambda v, x: vgg.VGG(depth).apply(v, x))(variables, x)
  # torch's Sequential indices of the named layers.
  named = {}
  index, block, conv = 0, 1, 0
  for v in CFG[depth]:
    if v == "M":
      named[f"pool{block}"] = index
      index, block, conv = index + 1, block + 1, 0
    else:
      conv += 1
      named[f"conv{block}_{conv}"] = index + 1  # after the ReLU
      index += 2
  for name in ("conv1_1", "conv2_2", "pool3", f"conv5_{3 if depth == 16 else 4}", "pool5"):
    expected = acts[named[name]].numpy().transpose(0, 2, 3, 1)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(ours[name], expected, rtol=0, atol=1e-4 * scale, err_msg=name)
  scale = float(np.abs(logits.numpy()).max())
  np.testing.assert_allclose(ours["logits"], logits.numpy(), rtol=0, atol=1e-4 * scale)
