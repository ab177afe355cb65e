"""What a checkpoint's integrity rests on, on one process or many: SHA-256 digests
of its arrays (whole, or piece by piece across processes) and of its metadata, and
the collectives that let every process agree (see :mod:`jtricks.train._checkpoint`)."""

from __future__ import annotations

import hashlib
import json

import jax
import numpy as np

_FORMAT = 3  # 3: a digest per piece of every array, in the metadata its digest covers


def _canonical(meta: dict | list) -> bytes:
    """``meta`` as the JSON bytes the digests cover (key order fixed)."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str).encode()


def _digest(tree, meta: dict | None = None) -> str:
    """SHA-256 of every array of ``tree`` (dtype, shape, bytes) and of ``meta``."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        _hash_array(h, leaf)
    if meta is not None:
        h.update(b"meta")
        h.update(_canonical(meta))
    return h.hexdigest()


def _hash_array(h, value):
    """Feeds one array (dtype, shape, bytes) to the hash ``h``; returns ``h``."""
    arr = np.ascontiguousarray(np.asarray(value))
    h.update(str((arr.dtype.str, arr.shape)).encode())
    h.update(arr.tobytes())
    return h


def _piece_index(shard, shape) -> str:
    """A shard's place in its global array, ``"0:4,0:16"`` (start:stop per dimension)."""
    return ",".join(f"{sl.start or 0}:{dim if sl.stop is None else sl.stop}"
                    for sl, dim in zip(shard.index, shape))


def _piece_digests(tree, *, replicas: bool) -> dict[str, str]:
    """SHA-256 (dtype, shape, bytes) of the pieces of ``tree``'s arrays that this
    process holds, keyed ``"<leaf number>@<index>"``. ``replicas=False``: only the
    first replica of each piece (every piece of the tree is then digested by
    exactly one process); ``True``: every shard held here (what a restore checks).
    Host values (NumPy arrays, numbers) are one piece each, held by process 0."""
    out = {}
    for i, leaf in enumerate(jax.tree.leaves(tree)):
        if isinstance(leaf, jax.Array):
            pieces = [(_piece_index(sh, leaf.shape), sh.data) for sh in leaf.addressable_shards
                      if replicas or sh.replica_id == 0]
        else:
            arr = np.asarray(leaf)
            whole = ",".join(f"0:{d}" for d in arr.shape)
            pieces = [(whole, arr)] if replicas or jax.process_index() == 0 else []
        for index, data in pieces:
            out[f"{i}@{index}"] = _hash_array(hashlib.sha256(), data).hexdigest()
    return out


def _gather(value) -> list:
    """``value`` (JSON-able) of every process, in process order (``[value]`` on one)."""
    if jax.process_count() == 1:
        return [value]
    from jax.experimental import multihost_utils

    data = np.frombuffer(_canonical(value), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32)))
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(bytes(row[:n])) for row, n in zip(rows, sizes.ravel())]


def _sync(name: str) -> None:
    """Waits until every process reaches this point (nothing on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"jtricks.checkpoint.{name}")


def _host_local(tree):
    """Across processes, the arrays that live on one process's devices alone (e.g. an
    early-stopping counter computed eagerly: every process holds the same value) as
    NumPy arrays, which orbax saves from process 0; the tree itself on one process."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array)
                        and x.is_fully_addressable else x, tree)


def _check_digests(tree, body: dict, whole: str | None) -> list | None:
    """``None`` when this process's pieces of ``tree`` match the digests saved in
    ``body``, else ``[kind, why]`` (kind ``"corrupt"``, or ``"split"`` for a piece the
    checkpoint has no digest of: it was saved with another sharding)."""
    if body.get("format") != _FORMAT:  # format 2 and older: one digest of the whole
        expected = _digest(tree, body) if body.get("format") == 2 else _digest(tree)
        return None if whole == expected else [
            "corrupt", "its arrays and metadata do not match the digest saved with them"]
    saved = body.get("digests") or {}
    got = _piece_digests(tree, replicas=True)
    unknown = sorted(k for k in got if k not in saved)
    if unknown:
        return ["split", f"no digest of piece {unknown[0]} (array number @ index)"]
    bad = sorted(k for k, v in got.items() if saved[k] != v)
    if bad:
        return ["corrupt", f"{len(bad)} piece(s) of its arrays, first {bad[0]}, do not match "
                           "the digests saved with them"]
    return None
