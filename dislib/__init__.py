"""dislib: disentangling a label-relevant code from everything else, three papers reproduced."""

from dislib import data, losses, models, settings
from dislib.train import fit, load_model, train_or_load

__version__ = "0.1.0"
__all__ = ["data", "fit", "load_model", "losses", "models", "settings", "train_or_load", "__version__"]
