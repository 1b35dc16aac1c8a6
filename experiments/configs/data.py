"""The data fields every experiment's config starts from (one place for
their defaults)."""

import ml_collections


def data_config(image_size: int = 28) -> ml_collections.ConfigDict:
  """A config holding the data fields, MNIST by default.

  `dataset`: a TFDS name (mnist, fashion_mnist, cifar10, celeb_a, ...),
  idx:DIR (MNIST-format files), folder:DIR (images, a subfolder per class)
  or digits (scikit-learn's bundled digits, offline); splits use TFDS syntax.
  """
  config = ml_collections.ConfigDict()
  config.dataset = "mnist"
  config.data_dir = ml_collections.config_dict.placeholder(str)  # None: TFDS's default
  config.train_split = "train"
  config.eval_split = "test"
  config.image_size = image_size
  # "indexed": the split in memory, batches by a seeded permutation (no
  # TensorFlow); "tfdata": streamed through tf.data (splits too large for
  # memory; runs made before the indexed pipeline). jaxgan/data/pipeline.py.
  config.data_pipeline = "indexed"
  # indexed: "auto" (on the devices when the split fits in 1 GiB), True or False.
  config.data_on_device = ml_collections.FieldReference("auto", field_type=object)
  config.shuffle_buffer = 10_000  # tfdata
  config.cache_data = True  # tfdata: keep decoded examples in memory after the first epoch
  # Train steps per jitted call (unrolled); bitwise the same results, may
  # change on a resume. >1 pays where a step is short (README, "Speed").
  config.steps_per_call = 1
  return config
