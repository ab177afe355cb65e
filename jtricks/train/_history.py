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
    with writer_class(tmp) as writer:
        for row in rows:
            writer.write_row(row)
    os.replace(tmp, path)


def write_jsonl(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """Writes ``rows`` as JSON Lines, one object per line, replacing the file atomically.

    Args:
      rows: dicts of scalars (Python or 0-d arrays).
      path: the output file.
    """
    _write_atomically(JsonlWriter, rows, path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Reads a JSON Lines file written by :func:`write_jsonl` or a :class:`JsonlWriter`."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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
