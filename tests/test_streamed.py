"""The streamed pipeline (jaxgan/data/streamed.py): bitwise the batches of the
indexed one, with worker processes or without; never the whole split in
memory; every example once per epoch over the processes; a resume (also
after SIGKILL) bitwise; "auto" choosing by size and saying so; bad examples
named; a TFDS array_record dataset read by random access."""

import os
import shutil
import signal

import jax
import numpy as np
import pytest

from conftest import TINY_DCGAN, requires_tf, signal_dcgan_run, write_folder
from experiments import classifier, dcgan
from experiments.configs.classifier import get_config as classifier_config
from experiments.configs.dcgan import get_config as dcgan_config
from jaxgan import provenance, sharding
from jaxgan.checkpoint import Checkpointer
from jaxgan.data import Data, DataError, indexed, pipeline, streamed
from jaxgan.data.arrays import load_digits
from jaxgan.data.folder import FolderSource
from jaxgan.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(dataset, **overrides):
  c = classifier_config()
  c.update(dict(dataset=dataset, train_split="train[:80]", eval_split="train[80:]",
                image_size=8, batch_size=16, num_train_steps=7, log_every_steps=2,
                eval_every_steps=7, checkpoint_every_steps=3, learning_rate=3e-3,
                augment_crop_padding=1, augment_flip=True, augment_cutout=3,
                data_on_device=False))
  c.update(overrides)
  return c


def host(batch) -> dict:
  return {k: np.asarray(v) for k, v in batch.items()}


def read_all(data, mesh, start: int, n: int = 7):
  feed = data.train_feed(mesh, start)
  try:
    it = feed.inputs()
    train = [host(next(it)) for _ in range(n)]
  finally:
    feed.close()
  batches, count = data.eval_batches(8, mesh)
  return train, [host(b) for b in batches], count


def assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      assert x[k].dtype == y[k].dtype and x[k].tobytes() == y[k].tobytes(), k


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_are_the_indexed_batches_bitwise(tmp_path, workers):
  dataset = write_folder(tmp_path / "folder")
  mesh = sharding.make_mesh()
  ref = Data(config(dataset, data_pipeline="indexed"))
  got = Data(config(dataset, data_pipeline="streamed", data_workers=workers))
  assert got.pipeline == "streamed" and "streamed pipeline" in got.describe()
  # From batch 3 on, across the epoch boundary (5 batches an epoch).
  train_ref, eval_ref, n_ref = read_all(ref, mesh, 3)
  train_got, eval_got, n_got = read_all(got, mesh, 3)
  assert_same(train_ref, train_got)
  assert n_ref == n_got == 2 and eval_got[-1]["mask"].sum() == 8
  assert_same(eval_ref, eval_got)
  for split in ("train[80:]", "train[:5]"):
    a, la = ref.first_images(split, 9, with_labels=True)
    b, lb = got.first_images(split, 9, with_labels=True)
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb)
  # In-memory sources (here digits) stream from threads: the same batches too.
  mem = [read_all(Data(config("digits", data_pipeline=p, image_size=12)), mesh, 0, 3)[0]
         for p in ("indexed", "streamed")]
  assert_same(*mem)


def test_every_example_is_read_once_an_epoch_over_the_processes(tmp_path):
  """Two processes' row blocks of each global batch (as `IndexedFeed` gives
  each process), read through a reader that counts: over one epoch each
  example is read exactly once in total, and each batch's rows are split."""
  reader = load_digits().reader("train[:96]")
  counts = np.zeros(len(reader), int)

  class Counting:
    where, in_memory = reader.where, True

    def __len__(self):
      return len(reader)

    def read(self, i):
      counts[i] += 1
      return reader.read(i)

    def name_of(self, i):
      return reader.name_of(i)

  order = indexed.Order(7, len(reader), 32)
  halves = [streamed._TrainBatch(Counting(), order, slice(p * 16, (p + 1) * 16), 8)
            for p in range(2)]
  for b in range(order.batches_per_epoch):
    parts = [h(b) for h in halves]
    assert all(len(p["label"]) == 16 for p in parts)
  assert (counts == 1).all()


def test_training_streamed_never_materialises_a_split_and_resumes_bitwise(tmp_path,
                                                                           monkeypatch):
  dataset = write_folder(tmp_path / "folder")
  indexed_run = classifier.train_and_evaluate(config(dataset, data_pipeline="indexed"),
                                              str(tmp_path / "indexed"))

  def refuse(*args, **kwargs):
    raise AssertionError("the streamed pipeline read a whole split")

  monkeypatch.setattr(FolderSource, "fitted", refuse)
  monkeypatch.setattr(Data, "split", refuse)
  stream = config(dataset, data_pipeline="streamed", data_workers=1)
  straight = classifier.train_and_evaluate(stream, str(tmp_path / "streamed"))
  leaves = lambda s: [np.asarray(x).tobytes() for x in jax.tree.leaves(jax.device_get(s))]
  assert leaves(straight.state) == leaves(indexed_run.state)
  last = read_metrics(str(tmp_path / "streamed"))[-1]
  assert last["eval_accuracy"] == read_metrics(str(tmp_path / "indexed"))[-1]["eval_accuracy"]
  # A run of the indexed pipeline, cut at step 3 (the learning rate follows
  # num_train_steps, so the copy keeps it), resumes streamed: the same batches.
  part = str(tmp_path / "part")
  shutil.copytree(str(tmp_path / "indexed"), part)
  for step in Checkpointer(part).all_steps():
    if step > 3:
      shutil.rmtree(os.path.join(part, "checkpoints", str(step)))
  resumed = classifier.train_and_evaluate(stream, part)
  assert (resumed.start_step, resumed.step) == (3, 7)
  assert leaves(resumed.state) == leaves(straight.state)


def test_a_streamed_run_killed_with_sigkill_resumes_bitwise(tmp_path):
  dataset = write_folder(tmp_path / "folder")
  fields = dict(dataset=dataset, batch_size=16, log_every_steps=1, checkpoint_every_steps=2,
                sample_every_steps=1000, eval_every_steps=0, train_split="train[:80]",
                eval_split="train[80:]",
                data_pipeline="streamed", data_workers=1, **TINY_DCGAN)
  workdir = str(tmp_path / "killed")
  _, err = signal_dcgan_run(workdir, fields, signal.SIGKILL, after_records=5)  # checkpoints at 2, 4
  assert "Input: streamed pipeline, 1 worker process" in err
  step = Checkpointer(workdir).latest_step()
  assert step >= 2  # (the save at 4 may not have finished)
  c = dcgan_config()
  c.update(dict(fields, num_train_steps=step + 3))
  resumed = dcgan.train_and_evaluate(c, workdir)
  assert resumed.start_step == step
  c.update(dict(data_pipeline="indexed"))
  straight = dcgan.train_and_evaluate(c, str(tmp_path / "straight"))
  for a, b in zip(jax.tree.leaves(jax.device_get(straight.state)),
                  jax.tree.leaves(jax.device_get(resumed.state)), strict=True):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_auto_chooses_by_size_and_says_so(tmp_path, monkeypatch):
  dataset = write_folder(tmp_path / "folder", n=40)
  splits = dict(train_split="train[:32]", eval_split="train[32:]")
  data = Data(config(dataset, **splits))
  assert data.requested == "auto" and data.pipeline == "indexed"
  assert "indexed pipeline, the train split in host memory" in data.describe()
  assert "within the" in data.describe()
  assert data.fitted_bytes() == 40 * 8 * 8 * 3
  monkeypatch.setattr(pipeline, "HOST_FRACTION", 0.0)
  data = Data(config(dataset, **splits, data_workers=3))
  assert data.pipeline == "streamed"
  assert "streamed pipeline, 3 worker processes" in data.describe()
  assert "over the 0.0 GiB host budget" in data.describe()
  # auto, indexed and streamed are one run's pipeline; tfdata is not.
  saved = provenance.config_dict(config(dataset, data_pipeline="indexed"))
  for value in ("auto", "streamed", "indexed"):
    assert provenance.config_differences(saved, config(dataset, data_pipeline=value)) == []
  assert provenance.config_differences(saved, config(dataset, data_pipeline="tfdata")) == [
      "data_pipeline"]
  with pytest.raises(ValueError, match="data_workers must be 'auto' or an integer >= 0"):
    Data(config(dataset, **splits, data_workers=-1))
  with pytest.raises(ValueError, match="data_on_device=True needs the split in memory"):
    Data(config(dataset, **splits, data_pipeline="streamed", data_on_device=True))


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_example_is_named_with_its_number_and_file(tmp_path, workers):
  dataset = write_folder(tmp_path / "folder", n=32)
  data = Data(config(dataset, train_split="train", eval_split="", data_pipeline="streamed",
                     data_workers=workers))
  # Damaged after the folder was checked (e.g. on a network disk mid-run).
  reader = data.source.reader("train")
  victim = reader.name_of(5)
  with open(victim, "r+b") as f:
    f.truncate(40)
  feed = data.train_feed(sharding.make_mesh(), 0)
  try:
    with pytest.raises(DataError) as e:
      it = feed.inputs()
      for _ in range(4):  # two epochs: example 5 is in one of them
        next(it)
  finally:
    feed.close()
  message = str(e.value)
  assert f"example 5 ({victim}) cannot be read" in message and "\n" not in message
  assert "folder:" in message and "Replace or remove it" in message


@requires_tf
def test_a_tfds_array_record_dataset_streams_like_it_loads(tmp_path):
  import tensorflow_datasets as tfds

  rng = np.random.default_rng(0)
  pictures = rng.integers(0, 256, (30, 10, 14, 3), dtype=np.uint8)

  class JaxganStreamedProbe(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(10, 14, 3)),
          "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i, x in enumerate(pictures):
        yield i, {"image": x, "label": i % 3}

  data_dir = str(tmp_path / "tfds")
  JaxganStreamedProbe(data_dir=data_dir, file_format="array_record").download_and_prepare()
  fields = dict(dataset="jaxgan_streamed_probe", data_dir=data_dir, train_split="train[:24]",
                eval_split="train[24:]", batch_size=8)
  mesh = sharding.make_mesh()
  ref = Data(config(**fields, data_pipeline="indexed"))
  got = Data(config(**fields, data_pipeline="streamed", data_workers=1))
  train_ref, eval_ref, _ = read_all(ref, mesh, 1, 4)
  train_got, eval_got, _ = read_all(got, mesh, 1, 4)
  assert_same(train_ref, train_got)
  assert_same(eval_ref, eval_got)
  reader = got.source.reader("train[2:5]")
  image, label = reader.read(1)
  (which,) = [i for i, x in enumerate(pictures) if np.array_equal(x, image)]  # (TFDS shuffles)
  assert label == which % 3
  assert "record 1 of" in reader.name_of(1)


def test_a_run_is_restored_and_sampled_without_its_data(tmp_path):
  """data.json records what the generator needs (image shape, classes), so a
  trained run restores and samples with its dataset gone; a run without it
  (made before data.json) reads its data, and says which when it is gone."""
  from jaxgan import runs
  from jaxgan.evaluation.generators import generate
  folder = tmp_path / "folder"
  c = dcgan_config()
  c.update(dict(TINY_DCGAN, dataset=write_folder(folder), train_split="train[:80]",
                eval_split="train[80:]", batch_size=16, num_train_steps=2, log_every_steps=1,
                checkpoint_every_steps=2, sample_every_steps=2, eval_every_steps=0,
                data_pipeline="streamed", data_workers=0))
  workdir = str(tmp_path / "run")
  dcgan.train_and_evaluate(c, workdir)
  info = pipeline.load_info(workdir)
  assert info.image_shape == (16, 16, 3) and info.num_classes == 2
  assert info.num_train_examples == 80 and info.class_names == ("even", "odd")
  before = generate(runs.restore(workdir, expect="gan").task,
                    runs.restore(workdir).state, 8, seed=3)
  shutil.rmtree(folder)
  run = runs.restore(workdir, expect="gan")
  assert run.step == 2 and run.data.info == info
  after = generate(run.task, run.state, 8, seed=3)
  assert np.asarray(after).tobytes() == np.asarray(before).tobytes()
  with pytest.raises(DataError, match="does not exist"):
    run.data.first_images("train[80:]")  # the examples themselves: only when asked
  os.remove(os.path.join(workdir, pipeline.INFO_FILE))
  with pytest.raises(DataError, match=f"directory '{folder}' does not exist"):
    runs.restore(workdir)


@pytest.mark.parametrize("kind", ["cluster_projection", "vae"])
def test_tasks_that_take_examples_at_build_restore_without_their_data(tmp_path, kind):
  """What a task's build takes from the data (a self-conditioned GAN's
  k-means clusters, a VAE's fixed figure inputs) is saved beside data.json
  (`Data.remember`), so these runs restore with their dataset gone too."""
  from experiments.configs.gan import get_config as gan_config
  from experiments.configs.vae import get_config as vae_config
  from jaxgan import runs
  folder = tmp_path / "folder"
  fields = dict(dataset=write_folder(folder), train_split="train[:80]", eval_split="train[80:]",
                image_size=16, batch_size=16, num_train_steps=2, log_every_steps=1,
                checkpoint_every_steps=2, sample_every_steps=2, eval_every_steps=0)
  if kind == "vae":
    c = vae_config()
    c.update(dict(fields, latent_dim=4, base_features=8))
  else:
    c = gan_config(kind)
    c.update(dict(fields, ngf=8, ndf=8, cluster_conditioning=3))
  workdir = str(tmp_path / "run")
  runs.train(c, workdir)
  before = runs.restore(workdir)
  shutil.rmtree(folder)
  after = runs.restore(workdir)
  if kind == "vae":
    np.testing.assert_array_equal(after.task.examples, before.task.examples)
    assert after.task.examples.shape == (16, 16, 16, 3)  # the 16 eval images
  else:
    jax.tree.map(np.testing.assert_array_equal, after.task.clusters, before.task.clusters)
    jax.tree.map(np.testing.assert_array_equal, after.state.clusters, before.state.clusters)
