"""Checkpoints with orbax: atomic saves, and a restore that never loads a bad one.

Orbax writes every checkpoint into a temporary directory and renames it when
complete, so a run killed while saving leaves the previous checkpoints intact.
On top of that, each checkpoint stores a SHA-256 digest of every array; a
checkpoint that fails to restore, or whose arrays do not match their digest,
is reported and skipped, and the next older one is tried.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any, Callable

import jax
import numpy as np

from jtricks._optional import require

from ._state import raw_keys, typed_like


def _digest(tree) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        arr = np.asarray(leaf)
        h.update(str((arr.dtype.str, arr.shape)).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used."""


class Checkpointer:
    """Saves and restores ``(tree, metadata)`` pairs numbered by epoch.

    Args:
      directory: where the numbered checkpoint folders live (created if needed).
      max_to_keep: how many recent checkpoints are kept (older ones are
        deleted); keep at least 2 so a damaged newest one has a fallback.
      report: called with a one-line message when a checkpoint is skipped
        (default: print to stderr).

    Example:
      >>> import tempfile
      >>> ckpt = Checkpointer(tempfile.mkdtemp())
      >>> tree = {"w": jnp.arange(3.0), "key": jax.random.key(0)}
      >>> ckpt.save(3, tree, {"note": "after epoch 3"})
      >>> epoch, restored, meta = ckpt.restore_latest(tree)
      >>> epoch, restored["w"].tolist(), meta["note"]
      (3, [0.0, 1.0, 2.0], 'after epoch 3')
      >>> ckpt.close()
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3,
                 report: Callable[[str], None] = _stderr):
        ocp = require("orbax.checkpoint", "jtricks.train.Checkpointer")

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        self.report = report
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def all_epochs(self) -> list[int]:
        """The epochs of the complete checkpoints, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def save(self, epoch: int, tree: Any, meta: dict | None = None) -> None:
        """Saves ``tree`` (any pytree of arrays) and JSON ``meta`` as checkpoint ``epoch``.

        The call returns when the checkpoint is complete on disk.
        """
        ocp = self._ocp
        tree = raw_keys(tree)
        meta = dict(meta or {}, digest=_digest(tree))
        self._manager.save(
            int(epoch),
            args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                    meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore(self, epoch: int, target: Any) -> tuple[Any, dict]:
        """Restores checkpoint ``epoch`` into the structure of ``target``.

        Typed PRNG keys in ``target`` come back typed, with their implementation.

        Raises:
          CheckpointError: if it cannot be read or its arrays do not match their digest.
        """
        ocp = self._ocp
        typed_target, target = target, raw_keys(target)
        path = os.path.join(self.directory, str(epoch))
        try:
            restored = self._manager.restore(
                int(epoch),
                args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                        meta=ocp.args.JsonRestore()),
            )
            tree, meta = restored.state, restored.meta
        except Exception as e:  # orbax raises many kinds; any of them means unusable
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise CheckpointError(f"checkpoint {path} is unreadable "
                                  f"({type(e).__name__}: {first[:200]})") from e
        if not isinstance(meta, dict) or meta.get("digest") != _digest(tree):
            raise CheckpointError(f"checkpoint {path} is corrupt (its arrays do not match "
                                  "the digest saved with them)")
        if jax.tree.structure(tree) != jax.tree.structure(target):
            raise CheckpointError(f"checkpoint {path} holds a different structure than "
                                  "this run (another model or optimizer?)")
        return typed_like(tree, typed_target), meta

    def restore_latest(self, target: Any) -> tuple[int, Any, dict] | None:
        """Restores the newest checkpoint that restores cleanly.

        Incomplete checkpoints (a save that was interrupted) and corrupt ones
        are reported with ``report`` and skipped.

        Returns:
          ``(epoch, tree, meta)``, or ``None`` when there is no usable checkpoint.
        """
        if os.path.isdir(self.directory):
            for name in sorted(os.listdir(self.directory)):
                if "tmp" in name:
                    self.report(f"skipping incomplete checkpoint "
                                f"{os.path.join(self.directory, name)} (interrupted save)")
        for epoch in reversed(self.all_epochs()):
            try:
                tree, meta = self.restore(epoch, target)
            except CheckpointError as e:
                self.report(f"skipping {e}")
                continue
            return epoch, tree, meta
        return None

    def close(self) -> None:
        self._manager.close()
