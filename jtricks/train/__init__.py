"""Training: the ``TrainState`` pytree, step builders, loops and the tricks
around them (early stopping, model averaging)."""

from ._state import TrainState as TrainState
from ._state import train_step as train_step

__all__ = ["TrainState", "train_step"]
