"""Metric writers: where :func:`jtricks.train.fit` (and anyone else) sends scalars.

A writer is anything with ``write_scalars(step, scalars)``, ``flush()`` and
``close()`` — the methods of ``clu.metric_writers.MetricWriter``, so a CLU
writer can be passed wherever a jtricks one is. The backends:

* :class:`JsonlWriter` — one JSON object per ``write_scalars`` call;
* :class:`CsvWriter` — one CSV row per call, the header the union of the keys;
* :class:`TensorBoardWriter` — TensorBoard event files through ``tensorboardX``
  (the ``tensorboard`` extra);
* :class:`MultiWriter` — several of them as one.

``history.jsonl`` / ``history.csv`` of ``fit`` are written by the first two.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import jax
import jax.numpy as jnp


@runtime_checkable
class MetricWriter(Protocol):
    """What :func:`jtricks.train.fit` calls on a writer (CLU's method names)."""

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Records ``scalars`` (``{name: number}``) at training step ``step``."""

    def flush(self) -> None:
        """Makes everything written so far visible to readers."""

    def close(self) -> None:
        """Flushes and releases the writer's files."""


def plain(value):
    """A Python scalar for JSON / CSV / TensorBoard (0-d arrays and NumPy scalars
    unwrapped; NaN stays a float)."""
    return value.item() if hasattr(value, "item") else value


def _row(step: int, scalars: Mapping[str, Any]) -> dict:
    """``{"step": step, **scalars}`` (``scalars`` may hold ``"step"`` itself, equal to
    ``step``: then its key order is kept)."""
    row = {k: plain(v) for k, v in scalars.items()}
    if "step" in row and row["step"] != step:
        raise ValueError(f"write_scalars got step={step} and scalars['step']={row['step']}; "
                         "they must agree")
    return row if "step" in row else {"step": int(step), **row}


class _Writer:
    """Context-manager support: ``with Writer(...) as w:`` closes ``w`` at the end."""

    def close(self) -> None:  # pragma: no cover - every writer has its own
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _FileWriter(_Writer):
    """A writer of rows to one file: ``write_scalars`` is ``write_row`` of
    ``{"step": step, **scalars}``."""

    _file: Any

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        self.write_row(_row(step, scalars))

    def write_row(self, row: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class JsonlWriter(_FileWriter):
    """Writes each ``write_scalars(step, scalars)`` as one JSON line ``{"step": step, ...}``.

    Args:
      path: the file; created (with its directory) or, unless ``append``, replaced.
      append: continue an existing file.

    Example:
      >>> import os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "m.jsonl")
      >>> with JsonlWriter(path) as w:
      ...     w.write_scalars(10, {"loss": jnp.float32(0.5)})
      >>> open(path).read()
      '{"step": 10, "loss": 0.5}\\n'
    """

    def __init__(self, path: str | os.PathLike, *, append: bool = False):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._file = open(self.path, "a" if append else "w")

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Writes ``row`` as it is (no ``step`` added)."""
        self._file.write(json.dumps({k: plain(v) for k, v in row.items()}) + "\n")


class CsvWriter(_FileWriter):
    """Writes each ``write_scalars(step, scalars)`` as one CSV row.

    The header is the union of the keys in first-seen order; a key missing from a
    row is an empty cell. A row with a key not seen before rewrites the file once
    with the wider header (rows are otherwise appended).

    Args:
      path: the file; created (with its directory) or replaced.

    Example:
      >>> import os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "m.csv")
      >>> with CsvWriter(path) as w:
      ...     w.write_scalars(1, {"loss": 0.5})
      ...     w.write_scalars(2, {"loss": 0.25, "lr": 0.1})
      >>> print(open(path).read().replace("\\r", ""), end="")
      step,loss,lr
      1,0.5,
      2,0.25,0.1
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._fields: list[str] = []
        self._file = open(self.path, "w", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self._fields)

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Writes ``row`` as it is (no ``step`` added)."""
        new = [k for k in row if k not in self._fields]
        if new:
            self._widen(new)
        self._csv.writerow({k: plain(v) for k, v in row.items()})

    def _widen(self, new: list[str]) -> None:
        """Rewrites the file with ``new`` appended to the header (atomically)."""
        self._file.close()
        with open(self.path, newline="") as f:
            old = list(csv.DictReader(f)) if self._fields else []
        self._fields += new
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields)
            writer.writeheader()
            writer.writerows(old)
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self._fields)


class TensorBoardWriter(_Writer):
    """Writes scalars as TensorBoard events (``tensorboardX.SummaryWriter``).

    Every numeric entry of ``write_scalars(step, scalars)`` becomes the scalar
    ``name`` at ``step`` (``None`` and strings are left out); names with a
    ``/`` are grouped by TensorBoard (``batch/loss``).

    Args:
      logdir: the directory of the event files (``tensorboard --logdir DIR``).

    Raises:
      ImportError: ``... needs tensorboardX: pip install 'jtricks[tensorboard]'``.
    """

    def __init__(self, logdir: str | os.PathLike):
        from jtricks._optional import require

        tensorboardx = require("tensorboardX", "jtricks.train.TensorBoardWriter")
        self.logdir = os.fspath(logdir)
        self._writer = tensorboardx.SummaryWriter(self.logdir)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        for name, value in scalars.items():
            value = plain(value)
            if isinstance(value, (bool, int, float)):
                self._writer.add_scalar(name, float(value), global_step=int(step))

    def flush(self) -> None:
        """Flushes what tensorboardX's background thread has taken from its queue;
        events still queued reach the file later, or at :meth:`close`."""
        self._writer.flush()

    def close(self) -> None:
        """Writes every pending event and closes the file."""
        self._writer.close()


class MultiWriter(_Writer):
    """Several writers as one: every call goes to each, in order.

    Example:
      >>> import os, tempfile
      >>> folder = tempfile.mkdtemp()
      >>> with MultiWriter([JsonlWriter(os.path.join(folder, "m.jsonl")),
      ...                   CsvWriter(os.path.join(folder, "m.csv"))]) as w:
      ...     w.write_scalars(1, {"loss": 0.5})
      >>> sorted(os.listdir(folder))
      ['m.csv', 'm.jsonl']
    """

    def __init__(self, writers: Iterable[MetricWriter]):
        self.writers = list(writers)
        for i, writer in enumerate(self.writers):
            check_writer(writer, f"writers[{i}]")

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        for writer in self.writers:
            writer.write_scalars(step, scalars)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def check_writer(writer, name: str = "writer"):
    """Refuses an object without ``write_scalars``, ``flush`` and ``close``."""
    if not isinstance(writer, MetricWriter):
        raise TypeError(f"{name}={writer!r} is not a metric writer: it needs "
                        "write_scalars(step, scalars), flush() and close() (e.g. "
                        "jtricks.train.JsonlWriter(path))")
    return writer


def as_writer(writers) -> MetricWriter | None:
    """``None``, one writer, or a :class:`MultiWriter` of a sequence of them."""
    if writers is None:
        return None
    if isinstance(writers, (list, tuple)):
        return MultiWriter(writers) if writers else None
    return check_writer(writers, "writers")


# ----------------------------------------------------------------------------- learning rate


def _is_injected(node) -> bool:
    """An ``inject_hyperparams`` state (jtricks' or optax's) holding a learning rate."""
    return isinstance(getattr(node, "hyperparams", None), dict) and \
        "learning_rate" in node.hyperparams


def _is_plateau(node) -> bool:
    """A reduce-on-plateau state (jtricks' or ``optax.contrib``'s)."""
    fields = getattr(node, "_fields", ())
    return "scale" in fields and "plateau_count" in fields


def learning_rate_of(opt_state, schedule=None, step=None) -> jax.Array | None:
    """The learning rate an optimizer used for its last step, from its state.

    The base rate is the ``learning_rate`` of the outermost ``inject_hyperparams``
    state in ``opt_state`` (jtricks' or optax's: the value its last step used);
    without one, ``schedule(step)`` for a schedule or ``schedule`` itself for a
    number. It is multiplied by the ``scale`` of every reduce-on-plateau state
    (jtricks' or ``optax.contrib``'s) in ``opt_state``. Traceable (use it inside
    ``jit``).

    Args:
      opt_state: the optimizer state after the step.
      schedule: the learning rate or schedule the optimizer was built with (not
        needed with ``inject_hyperparams``).
      step: the 0-based index of the step, for a schedule.

    Returns:
      A float32 scalar, or ``None`` when the state holds no injected rate and no
      ``schedule`` is given.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.chain(jo.sgd(0.1), jo.reduce_on_plateau(0.5, 1))
      >>> state = tx.init(jnp.zeros(1))
      >>> for loss in [1.0, 1.0]:
      ...     _, state = tx.update(jnp.ones(1), state, value=jnp.float32(loss))
      >>> float(learning_rate_of(state, 0.1)), learning_rate_of(state) is None
      (0.05, True)
    """
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda x: _is_injected(x) or _is_plateau(x))
    injected = [n for n in nodes if _is_injected(n)]
    if injected:
        base = injected[0].hyperparams["learning_rate"]
    elif callable(schedule):
        if step is None:
            raise ValueError("learning_rate_of got a schedule but no step to evaluate it at")
        base = schedule(step)
    elif schedule is not None:
        base = schedule
    else:
        return None
    rate = jnp.asarray(base, jnp.float32)
    for node in nodes:
        if _is_plateau(node):
            rate = rate * jnp.asarray(node.scale, jnp.float32)
    return rate
