"""DCGAN on MNIST (the seeds' 28x28 architecture).

Override any field on the command line, e.g.
  python -m experiments.dcgan --config.dataset=digits --config.num_train_steps=500

`image_size` picks the architecture: 28 is the seeds' MNIST DCGAN, 32 or 64
(any 4 * 2**k) the Radford et al. DCGAN. Images are resized to it.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Data. `dataset`: a TFDS name (mnist, fashion_mnist, cifar10, celeb_a, ...),
  # idx:DIR (MNIST-format files), folder:DIR (images, a subfolder per class) or
  # digits (scikit-learn's bundled digits, offline). Splits use TFDS syntax.
  config.dataset = "mnist"
  config.data_dir = ml_collections.config_dict.placeholder(str)  # None: TFDS's default
  config.train_split = "train"
  config.eval_split = "test"
  config.image_size = 28
  config.shuffle_buffer = 10_000
  config.cache_data = True  # Keep decoded examples in memory after the first epoch.

  # Model.
  config.latent_dim = 100
  config.ngf = 64  # Radford architecture widths (image_size 32/64).
  config.ndf = 64
  # "bfloat16": activations and matmuls in bf16; parameters, optimizer
  # states, BatchNorm statistics and losses in float32.
  config.compute_dtype = "float32"

  # Optimisation: Adam(2e-4, beta1=0.5) for both networks, as in DCGAN.
  config.batch_size = 128  # Global, over all devices and processes.
  config.num_train_steps = 3000
  config.learning_rate = 2e-4
  config.beta1 = 0.5
  config.beta2 = 0.999
  config.seed = 0
  # Sample grids use an exponential moving average of the generator's
  # parameters (Yazici et al. 2019); 0 disables it.
  config.ema_decay = 0.999

  # Run directory.
  config.log_every_steps = 50
  config.sample_every_steps = 250
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  config.eval_every_steps = 1000  # Discriminator on eval_split; 0 disables.
  config.num_sample_images = 64
  # FID and KID against eval_split at every evaluation, in the features of a
  # classifier run (python -m experiments.classifier on the same dataset) or
  # "inception[:WEIGHTS]" (the standard FID InceptionV3); None disables them. The checkpoint with the best `best_metric` is kept in
  # best/ (only once that metric is logged).
  config.fid_features = ml_collections.config_dict.placeholder(str)
  config.num_eval_samples = 1000
  config.best_metric = "eval_fid"
  config.best_mode = "min"

  return config
