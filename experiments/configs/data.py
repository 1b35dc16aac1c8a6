"""Moved: the shared fields are `experiments.configs.common.base_config(task)`."""

raise ImportError("experiments.configs.data moved: start a config from "
                  "experiments.configs.common.base_config(TASK) (TASK: gan, classifier, vae or "
                  "superres), which holds the data fields and the run kind.")
