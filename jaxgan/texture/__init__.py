"""Texture analysis and synthesis with convolutional features (the seeds'
"texture analysis" angle on CNNs).

- `features.py`: feature networks that return named activations:
  `RandomFeatures` (one layer of random multi-scale filters, Ustyuzhaninov et
  al. 2017: no download, works offline) and `ClassifierFeatures` (the
  convolutions of a classifier trained by `experiments.classifier`);
  `make_features(spec)` picks one by name.
- `gram.py`: Gram matrices, texture descriptors, the texture loss and a
  texture distance between two sets of images.
- `synthesis.py`: texture synthesis (Gatys et al. 2015) and style transfer
  (Gatys et al. 2016) by optimising the pixels with L-BFGS or Adam.
- `image_files.py`: loading and saving images (files or scikit-image's bundled ones).
- `optimization.py`: what the texture commands share: optimising pixels into a
  run directory (snapshots, result, metrics.jsonl).
"""
