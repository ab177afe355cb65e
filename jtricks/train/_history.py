"""The metrics history of a run: one row (a flat dict) per epoch, as JSONL and CSV,
written by the metric writers of :mod:`jtricks.train._metrics`."""

from __future__ import annotations

import json
import os
from typing import Iterable, Mapping

from ._metrics import CsvWriter, JsonlWriter, MultiWriter


def _write_atomically(writer_class, rows: Iterable[Mapping], path) -> None:
    """Writes ``rows`` with ``writer_class`` to ``<path>.tmp``, then replaces ``path``."""
    tmp = f"{os.fspath(path)}.tmp"
    try:
        with writer_class(tmp) as writer:
            for i, row in enumerate(rows):
                if not isinstance(row, Mapping):
                    raise TypeError(f"rows[{i}] is a {type(row).__name__}, not a dict of "
                                    "scalars")
                writer.write_row(row)
    except BaseException:
        if os.path.exists(tmp):  # nothing half-written is left beside the file
            os.remove(tmp)
        raise
    os.replace(tmp, path)


def write_jsonl(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """Writes ``rows`` as JSON Lines, one object per line, replacing the file atomically.

    Args:
      rows: dicts of scalars (Python or 0-d arrays).
      path: the output file.
    """
    _write_atomically(JsonlWriter, rows, path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Reads a JSON Lines file written by :func:`write_jsonl` or a :class:`JsonlWriter`.

    Raises:
      ValueError: naming the file and line, for a line that is not a JSON object
        (a truncated last line of a killed run, for instance).
    """
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{os.fspath(path)}, line {number}: not JSON ({e.msg}): "
                                 f"{line.strip()[:80]!r}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{os.fspath(path)}, line {number}: a JSON "
                                 f"{type(row).__name__}, not an object")
            rows.append(row)
    return rows


def write_csv(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """Writes ``rows`` as CSV with the union of their keys as header (first-seen order),
    replacing the file atomically.

    Args:
      rows: dicts of scalars; a key missing from a row is written as an empty cell.
      path: the output file.
    """
    _write_atomically(CsvWriter, rows, path)


def history_writer(directory: str | os.PathLike, name: str = "history") -> MultiWriter:
    """A writer of ``<directory>/<name>.jsonl`` and ``<directory>/<name>.csv`` (both
    replaced), one row per ``write_scalars``."""
    os.makedirs(directory, exist_ok=True)
    return MultiWriter([JsonlWriter(os.path.join(directory, f"{name}.jsonl")),
                        CsvWriter(os.path.join(directory, f"{name}.csv"))])


def write_history(rows: Iterable[Mapping], directory: str | os.PathLike,
                  name: str = "history") -> tuple[str, str]:
    """Writes ``<directory>/<name>.jsonl`` and ``<directory>/<name>.csv``.

    Returns:
      The two paths.
    """
    os.makedirs(directory, exist_ok=True)
    rows = list(rows)
    jsonl = os.path.join(directory, f"{name}.jsonl")
    csv_path = os.path.join(directory, f"{name}.csv")
    write_jsonl(rows, jsonl)
    write_csv(rows, csv_path)
    return jsonl, csv_path
