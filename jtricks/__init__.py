"""jtricks: the deep-learning training tricks as pure JAX functions.

Each area lives in its own submodule and is imported on first use, so
``import jtricks`` stays cheap and the optional extras (plots, checkpoints,
the embedded dataset) are only needed by the parts that use them::

    import jtricks
    tx = jtricks.optim.adam(1e-3)
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "optim",
    "init",
    "nn",
    "data",
    "losses",
    "regularize",
    "train",
    "diagnose",
    "parallel",
    "sweep",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'jtricks' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
