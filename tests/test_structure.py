"""The code's structure, checked: the import layers (pyproject.toml's
[tool.importlinter] contracts), no jaxgan import hidden inside a function,
and one registry per kind whose names every listing comes from."""

import ast
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
# Imported lazily on purpose: the only modules that import TensorFlow, which
# is optional (the `tf` extra).
LAZY_ALLOWED = {"jaxgan.data.tf", "jaxgan.data.tfdata"}


def test_import_layers_hold():
  """lint-imports (import-linter) against pyproject.toml's contracts: any
  import that points up the layers, or between two tasks, fails here."""
  from importlinter.cli import lint_imports
  cwd = os.getcwd()
  os.chdir(REPO)
  try:
    assert lint_imports(no_cache=True) == 0, "an import breaks a contract: run `lint-imports`"
  finally:
    os.chdir(cwd)


def _function_level_imports(path: pathlib.Path, root: pathlib.Path = REPO):
  tree = ast.parse(path.read_text())
  for fn in ast.walk(tree):
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
      continue
    for node in ast.walk(fn):
      if isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module if node.module in LAZY_ALLOWED else f"{node.module}.{a.name}"
                 for a in node.names]
      elif isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      else:
        continue
      for name in names:
        if name.split(".")[0] in ("jaxgan", "experiments") and name not in LAZY_ALLOWED:
          yield f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}"


def test_no_jaxgan_import_is_hidden_in_a_function():
  """Imports of the project's own modules sit at the top of jaxgan's
  modules, where the layer check sees them (TensorFlow's lazy modules
  aside)."""
  found = [line for p in sorted((REPO / "jaxgan").rglob("*.py"))
           for line in _function_level_imports(p)]
  assert not found, "\n".join(found)


def test_the_check_catches_a_hidden_import(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def f():\n  from jaxgan.tasks import gan\n  return gan\n")
  assert list(_function_level_imports(bad, tmp_path)) == ["bad.py:2: from jaxgan.tasks import gan"]


def test_every_config_names_a_registered_kind():
  from experiments.configs import classifier, gan, superres, vae
  from jaxgan import runs
  kinds = {m.get_config().task for m in (classifier, superres, vae)}
  kinds |= {gan.get_config(p).task for p in gan.PRESETS}
  assert kinds == set(runs.KINDS) == {"gan", "classifier", "vae", "superres"}


def test_runs_saved_before_the_task_field_are_inferred():
  from experiments.configs import classifier, gan, superres, vae
  from jaxgan import provenance
  added = {"task", "preset", "label_smoothing", "eval_flip_tta", "discriminator",
           "augment_cutout", "eval_shift_tta"}
  added_to_kind = {"vae": {"schedule"}}
  for module in (classifier, gan, superres, vae):
    config = module.get_config()
    saved = provenance.config_dict(config)
    gone = added | added_to_kind.get(config.task, set())
    saved = {k: v for k, v in saved.items()
             if k not in gone or (k == "preset" and config.task == "gan")}
    assert provenance.infer_task(saved) == config.task
    assert provenance.config_differences(saved, config) == []  # they still resume


def test_every_data_source_form_is_documented_and_listed_in_errors():
  from jaxgan.data import SOURCES, DataError, get_source
  table = (REPO / "docs" / "data.md").read_text()
  for form in SOURCES.values():
    assert f"`{form.usage}`" in table, f"docs/data.md's table lacks {form.usage}"
  try:
    get_source("")
  except DataError as e:
    message = str(e)
  assert all(form.usage in message for form in SOURCES.values()), message


def test_every_task_is_in_the_independence_contract():
  import tomllib
  contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
  (independent,) = [c for c in contracts["contracts"] if c["type"] == "independence"]
  tasks = {f"jaxgan.tasks.{p.stem}" for p in (REPO / "jaxgan" / "tasks").glob("*.py")
           if p.stem not in ("__init__", "base")}
  assert set(independent["modules"]) == tasks


def test_the_gan_task_and_models_follow_their_written_contracts():
  from experiments.configs import gan
  from jaxgan.gan.sampler import Sampler
  from jaxgan.models import registry
  from jaxgan.tasks.gan import GANTask
  config = gan.get_config("dcgan")
  task = GANTask(config, (28, 28, 1))
  assert isinstance(task, Sampler)
  for name, make in registry.GAN_ARCHITECTURES.items():
    size = 32
    g, d = make(size, 3, ngf=8, ndf=8, d_normalization=None, spectral_norm=name == "sngan",
                num_classes=0, conditional="", dtype="float32")
    assert d.normalization in ("batch", "layer", "none", "minibatch_std"), name


def test_moved_names_say_their_new_spelling():
  import pytest
  from jaxgan import evaluation
  with pytest.raises(AttributeError, match="moved: use jaxgan.runs.extractor"):
    evaluation.make_extractor("inception")
  with pytest.raises(TypeError, match=r"pass jaxgan.runs.restore\('runs/gan'\)"):
    evaluation.evaluate_generator("runs/gan", None)
  with pytest.raises(ImportError, match="experiments.configs.common.base_config"):
    import experiments.configs.data  # noqa: F401


def test_every_config_field_is_documented_in_its_config_file():
  """Field documentation lives in one place, the config files (printed by
  `python -m experiments.fields`): every field carries a comment."""
  from experiments.configs import classifier, gan, superres, vae
  from experiments.fields import field_comments
  common = REPO / "experiments" / "configs" / "common.py"
  for name, module in (("classifier", classifier), ("gan", gan), ("superres", superres),
                       ("vae", vae)):
    comments = field_comments([REPO / "experiments" / "configs" / f"{name}.py", common])
    missing = [f for f in module.get_config() if f not in comments]
    assert not missing, f"experiments/configs/{name}.py: no comment for {missing}"
