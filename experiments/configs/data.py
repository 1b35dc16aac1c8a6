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
  config.shuffle_buffer = 10_000
  config.cache_data = True  # Keep decoded examples in memory after the first epoch.
  return config
