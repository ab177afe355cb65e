"""The metrics history of a run: one row (a flat dict) per epoch, as JSONL and CSV."""

from __future__ import annotations

import csv
import json
import os
from typing import Iterable, Mapping


def _plain(value):
    """A Python scalar for JSON / CSV (0-d arrays unwrapped; NaN stays a float)."""
    return value.item() if hasattr(value, "item") else value


def write_jsonl(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """Writes ``rows`` as JSON Lines, one object per line, replacing the file atomically.

    Args:
      rows: dicts of scalars (Python or 0-d arrays).
      path: the output file.
    """
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Reads a JSON Lines file written by :func:`write_jsonl`."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_csv(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """Writes ``rows`` as CSV with the union of their keys as header (first-seen order).

    Args:
      rows: dicts of scalars; a key missing from a row is written as an empty cell.
      path: the output file.
    """
    rows = [{k: _plain(v) for k, v in row.items()} for row in rows]
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


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
