"""Gradient transformations, optimizers and schedules, written optax-style.

Every name here is a pure factory returning a :class:`GradientTransformation`.
"""

from ._base import EmptyState as EmptyState
from ._base import GradientTransformation as GradientTransformation
from ._base import apply_updates as apply_updates
from ._base import chain as chain
from ._base import identity as identity

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "apply_updates",
    "chain",
    "identity",
]
