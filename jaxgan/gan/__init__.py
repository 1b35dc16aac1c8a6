"""The GAN family's parts, each chosen by name from the config: objectives
(`objectives.py`), gradient penalties (`penalties.py`) and differentiable
augmentation (`diffaugment.py`). The train state and step that combine them
are in `jaxgan/tasks/gan.py`; the networks in `jaxgan/models/dcgan.py`."""
