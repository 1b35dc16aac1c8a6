"""Downloads and prepares a TFDS dataset, for use later on a machine without network.

  python -m jaxgan.data.prepare mnist --data_dir ~/tensorflow_datasets

Written in the array_record format by default, which the indexed and
streamed pipelines read without TensorFlow (the streamed one by random
access); the tf.data pipeline needs `--file_format tfrecord`. Preparing needs TensorFlow.
Copy the resulting directory to the offline machine and pass
`--config.data_dir=DIR` (or set TFDS_DATA_DIR).
"""

import argparse
import sys


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("names", nargs="+", help="TFDS dataset names, e.g. mnist cifar10")
  parser.add_argument("--data_dir", default=None, help="where to write (TFDS's default if unset)")
  parser.add_argument("--file_format", default="array_record", choices=("array_record", "tfrecord"),
                      help="array_record: read without TensorFlow (indexed, streamed); "
                           "tfrecord: for data_pipeline=tfdata")
  args = parser.parse_args(argv)
  try:
    import jaxgan.data.tf  # noqa: F401  (TF with GPUs hidden)
  except ImportError as e:
    print(f"error: preparing TFDS datasets needs TensorFlow. {e}", file=sys.stderr)
    return 1
  import tensorflow_datasets as tfds
  for name in args.names:
    try:
      builder = tfds.builder(name, data_dir=args.data_dir, file_format=args.file_format)
    except tfds.core.registered.DatasetNotFoundError:
      print(f"error: {name!r} is not a TFDS catalog dataset "
            "(https://www.tensorflow.org/datasets/catalog/overview).", file=sys.stderr)
      return 1
    try:
      builder.download_and_prepare()
    except Exception as e:  # Network, disk or TFDS errors: say which dataset and where.
      print(f"error: could not download and prepare {name!r} into {builder.data_dir}: "
            f"{type(e).__name__}: {e}\nThis command needs network access to the dataset's "
            "download site.", file=sys.stderr)
      return 1
    print(f"{name}: prepared in {builder.data_path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
