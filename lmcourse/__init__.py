"""lmcourse: the package the course's notebooks import.

Import it before TensorFlow: it sets the environment variables that keep
TensorFlow's C++ start-up log lines out of the notebooks.
"""
from lmcourse.runtime import quiet_tensorflow_env as _quiet_tensorflow_env

_quiet_tensorflow_env()

from lmcourse.runtime import budget, device, seed_everything  # noqa: E402

__version__ = "0.1.0"
__all__ = ["budget", "device", "seed_everything", "__version__"]
