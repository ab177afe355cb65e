"""Checkpoints with orbax: atomic saves, and a restore that never loads a bad one.

Orbax writes every checkpoint into a temporary directory and renames it when
complete, so a run killed (or interrupted with Ctrl-C) while saving leaves the
previous checkpoints intact. On top of that, one SHA-256 digest covers every
array and the metadata saved beside them (history, stop reason, run
configuration, the arrays' layout); a checkpoint that fails to restore or to
match its digest is reported, moved aside (``<epoch>.corrupt-<n>``) and the next
older one is tried, while a sound checkpoint of another run configuration is
refused, naming the difference. A lock file keeps one writer per directory.

Across processes (``jax.distributed``, :func:`jtricks.parallel.initialize`)
every process makes the same calls on a directory they share: orbax writes each
process's shards, process 0 writes the metadata, holds the lock and moves
damaged checkpoints aside, and every decision (lock taken, checkpoint sound) is
agreed on by all processes. The digests cover the arrays piece by piece: one
SHA-256 per distinct shard of every array (its index in the global array), each
piece digested by the one process that holds its first replica and the pieces'
digests gathered into the metadata, which its own digest covers. A restore
checks every shard each process holds, replicas included, against them: no
process ever reads data it does not own, and one process's damaged shard makes
every process skip the checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, cast

import jax
import numpy as np

from jtricks._optional import require

from ._digests import (_FORMAT, _canonical, _check_digests, _gather, _host_local,
                       _piece_digests, _sync)
from ._state import raw_keys, typed_like


def _layout(tree) -> list:
    """``[path, shape, dtype]`` of every array of ``tree``: what a restore needs to match."""
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        arr = leaf if hasattr(leaf, "dtype") and hasattr(leaf, "shape") else np.asarray(leaf)
        out.append([jax.tree_util.keystr(path), list(arr.shape), np.dtype(arr.dtype).name])
    return out


def _show(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def config_differences(saved: dict, current: dict, limit: int = 3) -> list[str]:
    """The keys whose values differ between two run configurations, as
    ``"key: saved -> current"`` (at most ``limit``, in key order).

    Example:
      >>> config_differences({"seed": 0, "lr": 0.1}, {"seed": 1, "lr": 0.1})
      ['seed: 0 -> 1']
    """
    saved, current = json.loads(_canonical(saved)), json.loads(_canonical(current))
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: {_show(a)} -> {_show(b)}")
    return out[:limit]


def _layout_difference(saved: list, current: list) -> str:
    saved = [tuple(map(str, x)) for x in saved]
    current = [tuple(map(str, x)) for x in current]
    for a, b in zip(saved, current):
        if a != b:
            return (f"{a[0]} {a[2]}{a[1]} in the checkpoint, {b[0]} {b[2]}{b[1]} in this run")
    return f"{len(saved)} arrays in the checkpoint, {len(current)} in this run"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_logs():
    """Orbax and TensorStore log through absl at INFO/WARNING (hundreds of lines for a
    failed restore); this class reports every problem in one line of its own."""
    loggers = [logging.getLogger(name) for name in ("absl", "orbax", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _ignore_closed_loop_callbacks() -> None:
    """After a failed read, TensorStore completes the read's other requests from its own
    threads, after orbax has closed the event loop that awaited them; each one would
    print a ``RuntimeError: Event loop is closed`` traceback (dozens per damaged
    checkpoint). This filter of ``sys.unraisablehook`` drops exactly those and hands
    everything else to the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_jtricks_closed_loop_filter", False):
        return

    def hook(unraisable):
        exc = unraisable.exc_value
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
            return
        previous(unraisable)

    hook._jtricks_closed_loop_filter = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


@contextlib.contextmanager
def _sigint_after_block():
    """Ctrl-C during the block is held until the block ends, then raised as
    ``KeyboardInterrupt``: orbax runs its writes under ``asyncio.run``, which turns a
    SIGINT into a cancellation that orbax may swallow (the run then goes on) or turn
    into a traceback; a save is short, so it completes and the run stops right after.
    Only in the main thread, and only when Python's default handler is in place."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


class CheckpointError(RuntimeError):
    """A checkpoint or its directory cannot be used: unreadable, corrupt, written by
    another run configuration, or the directory is locked by another writer."""


class _Mismatch(CheckpointError):
    """A sound checkpoint of another run (configuration or structure): never skipped."""


LOCK_NAME = ".jtricks-checkpoint.lock"
# 2: one digest of the whole arrays and the metadata (restored on one process only)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


class Checkpointer:
    """Saves and restores ``(tree, metadata)`` pairs numbered by epoch.

    Every checkpoint stores its arrays (orbax) and a JSON metadata dict; one SHA-256
    digest covers both (arrays, history, stop reason, run configuration), and the
    metadata records the layout of the arrays (paths, shapes, dtypes), so a restore
    tells a corrupt checkpoint (moved aside) from one of another run (refused).

    One writer per directory: the first :meth:`save` (or :meth:`acquire`) creates
    the lock file ``.jtricks-checkpoint.lock`` holding the writer's PID and host;
    another ``Checkpointer`` writing there gets a :class:`CheckpointError` while
    that process lives, and a lock left by a dead process on the same host is taken
    over. :meth:`close` releases it.

    Args:
      directory: where the numbered checkpoint folders live (created if needed).
      max_to_keep: how many recent checkpoints are kept (older ones are
        deleted), ``>= 1``; keep at least 2 so a damaged newest one has a fallback.
      report: called with a one-line message when a checkpoint is skipped or a
        stale lock is taken over (default: print to stderr).

    Raises:
      CheckpointError: when ``directory`` is a file, cannot be created or is not writable.
      ValueError: for ``max_to_keep < 1``.

    Example:
      >>> import tempfile
      >>> ckpt = Checkpointer(tempfile.mkdtemp())
      >>> tree = {"w": jnp.arange(3.0), "key": jax.random.key(0)}
      >>> ckpt.save(3, tree, {"note": "after epoch 3"})
      >>> epoch, restored, meta = ckpt.restore_latest(tree)
      >>> epoch, restored["w"].tolist(), meta["note"]
      (3, [0.0, 1.0, 2.0], 'after epoch 3')
      >>> Checkpointer(ckpt.directory).save(4, tree)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      jtricks.train._checkpoint.CheckpointError: checkpoint directory ... is in use by this process ...
      >>> ckpt.move_aside(3)  # doctest: +ELLIPSIS
      '.../3.corrupt-1'
      >>> ckpt.all_epochs(), ckpt.restore_latest(tree)
      ([], None)
      >>> ckpt.close()
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3,
                 report: Callable[[str], None] = _stderr):
        from jtricks._validate import check_callable, check_int

        max_to_keep = check_int("max_to_keep", max_to_keep, lo=1)
        check_callable("report", report)
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory={directory!r} must be a path, "
                            f"got {type(directory).__name__}")
        ocp = require("orbax.checkpoint", "jtricks.train.Checkpointer")

        self._ocp = ocp
        self.directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
        self.report = report
        self._locked = False
        d = self.directory
        if os.path.exists(d) and not os.path.isdir(d):
            raise CheckpointError(f"checkpoint directory {d} is a file; give a directory")
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise CheckpointError(f"cannot create checkpoint directory {d} "
                                  f"({e.strerror or e}); choose a writable directory") from None
        if not os.access(d, os.W_OK | os.X_OK):
            raise CheckpointError(f"checkpoint directory {d} is not writable; choose "
                                  "a writable directory")
        _ignore_closed_loop_callbacks()
        with _quiet_logs():
            self._manager = ocp.CheckpointManager(
                d,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
                ),
            )

    # -- the lock: one writer per directory

    @property
    def lock_path(self) -> str:
        return os.path.join(self.directory, LOCK_NAME)

    def _lock_holder(self) -> dict | None:
        try:
            with open(self.lock_path) as f:
                holder = json.load(f)
            return holder if isinstance(holder, dict) else None
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        """Takes the directory's writer lock (done by the first :meth:`save`).

        Across processes, process 0 takes it for all of them (every process calls
        this; they all raise if process 0 could not).

        Raises:
          CheckpointError: when another live process (or another ``Checkpointer``
            of this process) holds it, naming its PID and host.
        """
        if self._locked:
            return
        error = None
        if jax.process_index() == 0:
            try:
                self._take_lock()
            except CheckpointError as e:
                error = str(e)
        error = _gather(error)[0]
        if error is not None:
            raise CheckpointError(error)
        self._locked = True

    def _report(self, message: str) -> None:
        if jax.process_index() == 0:  # one report per run, not one per process
            self.report(message)

    def _take_lock(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        for _ in range(5):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._lock_holder()
                if holder is None:  # being written, or garbage: stale once it is old
                    try:
                        age = time.time() - os.path.getmtime(self.lock_path)
                    except OSError:
                        continue
                    if age < 10:
                        time.sleep(0.1)
                        continue
                    self._report(f"taking over the unreadable lock {self.lock_path}")
                elif (holder.get("host") == host and isinstance(holder.get("pid"), int)
                      and holder["pid"] != pid and not _pid_alive(holder["pid"])):
                    self._report(f"taking over the lock {self.lock_path} of process "
                                f"{holder['pid']} (no longer running)")
                else:
                    who = ("this process" if holder.get("pid") == pid and holder.get("host")
                           == host else f"process {holder.get('pid')} on {holder.get('host')}")
                    raise CheckpointError(
                        f"checkpoint directory {self.directory} is in use by {who} (lock "
                        f"{self.lock_path}); wait for that run to end, or delete the lock "
                        "file if it is gone")
                try:
                    os.remove(self.lock_path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": pid, "host": host, "time": time.time()}, f)
            return
        raise CheckpointError(f"could not take the lock {self.lock_path}; another run is "
                              "starting in the same directory")

    def release(self) -> None:
        """Releases the writer lock (done by :meth:`close`)."""
        if not self._locked:
            return
        self._locked = False
        holder = self._lock_holder()
        if holder is not None and holder.get("pid") == os.getpid():
            try:
                os.remove(self.lock_path)
            except FileNotFoundError:
                pass

    # -- listing and moving aside

    def all_epochs(self) -> list[int]:
        """The epochs of the complete checkpoints, oldest first."""
        with _quiet_logs():
            self._manager.reload()
            return sorted(self._manager.all_steps())

    def _entries(self) -> list[str]:
        """Everything in the directory but the lock and the archives."""
        return sorted(name for name in os.listdir(self.directory)
                      if name != LOCK_NAME and not name.startswith("archived-"))

    def has_checkpoints(self) -> bool:
        """Whether the directory holds checkpoints: complete, incomplete or set aside."""
        return bool(self._entries())

    def _free(self, stem: str) -> str:
        n = 1
        while os.path.exists(os.path.join(self.directory, f"{stem}-{n}")):
            n += 1
        return os.path.join(self.directory, f"{stem}-{n}")

    def move_aside(self, epoch: int, why: str = "corrupt") -> str:
        """Renames checkpoint ``epoch`` to ``<directory>/<epoch>.<why>-<n>`` (kept for
        inspection, invisible to restores, and the epoch can be saved again).

        Returns:
          The new path.
        """
        self.acquire()
        target = self._free(f"{int(epoch)}.{why}")
        if jax.process_index() == 0:
            os.rename(os.path.join(self.directory, str(int(epoch))), target)
        _sync("move_aside")
        with _quiet_logs():
            self._manager.reload()
        return target

    def archive(self) -> str | None:
        """Moves every checkpoint (complete, incomplete, set aside) into a new folder
        ``<directory>/archived-<n>``, so that a run can start over in the directory.

        Returns:
          The folder, or ``None`` when there was nothing to move.
        """
        self.acquire()
        entries = self._entries()
        if not entries:
            return None
        folder = self._free("archived")
        if jax.process_index() == 0:
            os.makedirs(folder)
            for name in entries:
                os.rename(os.path.join(self.directory, name), os.path.join(folder, name))
        _sync("archive")
        with _quiet_logs():
            self._manager.reload()
        return folder

    # -- save and restore

    def save(self, epoch: int, tree: Any, meta: dict | None = None) -> None:
        """Saves ``tree`` (any pytree of arrays) and JSON ``meta`` as checkpoint ``epoch``.

        The call returns when the checkpoint is complete on disk. Ctrl-C during the
        write (in the main thread) is held until the checkpoint is complete, then
        raised as ``KeyboardInterrupt``; an interrupted write (any other exception,
        a kill) leaves an incomplete folder that restores move aside.

        Raises:
          CheckpointError: when another process holds the directory's lock.
        """
        self.acquire()
        ocp = self._ocp
        tree = _host_local(raw_keys(tree))
        digests: dict[str, str] = {}
        for part in _gather(_piece_digests(tree, replicas=False)):
            digests.update(part)
        meta = cast(dict, json.loads(_canonical(dict(meta or {}, format=_FORMAT,
                                                     layout=_layout(tree),
                                                     digests=digests))))
        meta = dict(meta, meta_digest=hashlib.sha256(_canonical(meta)).hexdigest())
        with _sigint_after_block(), _quiet_logs():
            self._manager.save(
                int(epoch),
                args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                        meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            self._manager.wait_until_finished()

    def _path(self, epoch: int) -> str:
        return os.path.join(self.directory, str(epoch))

    def read_meta(self, epoch: int) -> dict:
        """The metadata of checkpoint ``epoch`` (without its digests), checked
        against its digest.

        Raises:
          CheckpointError: if it cannot be read or does not match its digest.
        """
        ocp = self._ocp
        path = self._path(epoch)
        failure = None
        with _quiet_logs():
            try:
                meta = self._manager.restore(
                    int(epoch), args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
            except Exception as e:  # orbax raises many kinds; any of them means unusable
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                failure = f"{type(e).__name__}: {first[:200]}"
            if failure is not None:
                gc.collect()
        if failure is not None:
            raise CheckpointError(f"checkpoint {path} is unreadable ({failure})")
        if not isinstance(meta, dict):
            raise CheckpointError(f"checkpoint {path} is corrupt (its metadata is not a dict)")
        body = {k: v for k, v in meta.items() if k not in ("digest", "meta_digest")}
        if meta.get("format") in (2, _FORMAT) and (
                meta.get("meta_digest") != hashlib.sha256(_canonical(body)).hexdigest()):
            raise CheckpointError(f"checkpoint {path} is corrupt (its metadata — history, "
                                  "stop reason, run configuration — does not match its digest)")
        return dict(body, digest=meta.get("digest"))

    def restore(self, epoch: int, target: Any, run_config: dict | None = None
                ) -> tuple[Any, dict]:
        """Restores checkpoint ``epoch`` into the structure of ``target``.

        Typed PRNG keys in ``target`` come back typed, with their implementation.

        Args:
          epoch: the checkpoint.
          target: a pytree with the structure, shapes and dtypes to restore.
          run_config: when given, the checkpoint's recorded run configuration must
            equal it (checkpoints that record none are not checked).

        Raises:
          CheckpointError: if it cannot be read, does not match its digest, or
            belongs to another run (another configuration, or arrays of other
            shapes); the message names the first differences.
        """
        ocp = self._ocp
        typed_target, local_target = target, raw_keys(target)
        target = _host_local(local_target)
        path = self._path(epoch)
        meta = self.read_meta(epoch)
        saved_config = meta.get("run_config")
        if run_config is not None and saved_config is not None:
            diff = config_differences(saved_config, run_config)
            if diff:
                raise _Mismatch(f"checkpoint {path} was written by another run "
                                f"configuration (checkpoint -> this run: {'; '.join(diff)})")
        if "layout" in meta:
            layout = json.loads(_canonical(_layout(target)))
            if meta["layout"] != layout:
                raise _Mismatch(f"checkpoint {path} holds another model or optimizer "
                                f"({_layout_difference(meta['layout'], layout)})")
        failure = None
        with _quiet_logs():
            try:
                tree = self._manager.restore(
                    int(epoch), args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
                ).state
            except Exception as e:  # orbax raises many kinds; any of them means unusable
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                failure = ["unreadable", f"{type(e).__name__}: {first[:200]}"]
            if failure is not None:  # a failed read's futures log their error when collected
                gc.collect()
        body = {k: v for k, v in meta.items() if k != "digest"}
        if failure is None:
            failure = _check_digests(tree, body, meta.get("digest"))
        verdicts = _gather(failure)  # every process takes the same decision
        failed = [p for p, f in enumerate(verdicts) if f]
        if failed:
            kind, why = verdicts[failed[0]]
            where = f" in process {failed[0]}" if len(verdicts) > 1 else ""
            if kind == "split":
                raise _Mismatch(f"checkpoint {path} was saved split otherwise{where} ({why}); "
                                "restore it onto the mesh layout it was saved from")
            if kind == "unreadable":
                raise CheckpointError(f"checkpoint {path} is unreadable{where} ({why})")
            raise CheckpointError(f"checkpoint {path} is corrupt{where} ({why})")
        if jax.tree.structure(tree) != jax.tree.structure(target):  # type: ignore[operator]
            raise _Mismatch(f"checkpoint {path} holds a different structure than "
                            "this run (another model or optimizer?)")
        if target is not local_target:  # back onto this process's (uncommitted) device
            tree = jax.tree.map(lambda x, like: jax.numpy.asarray(x)
                                if isinstance(like, jax.Array) else x, tree, local_target)
        return typed_like(tree, typed_target), body

    def restore_latest(self, target: Any, run_config: dict | None = None
                       ) -> tuple[int, Any, dict] | None:
        """Restores the newest checkpoint that restores cleanly.

        Incomplete checkpoints (an interrupted save) and corrupt ones are reported
        with ``report`` and moved aside (``<epoch>.incomplete-<n>``,
        ``<epoch>.corrupt-<n>``), so the run can save those epochs again.

        Args:
          target: as for :meth:`restore`.
          run_config: as for :meth:`restore`.

        Returns:
          ``(epoch, tree, meta)``, or ``None`` when there is no usable checkpoint.

        Raises:
          CheckpointError: when the newest sound checkpoint belongs to another run
            (nothing is moved then), or another process holds the lock.
        """
        for name in self._entries():
            if ".orbax-checkpoint-tmp" in name:
                self.acquire()
                stem = name.split(".orbax-checkpoint-tmp")[0]
                moved = self._free(f"{stem}.incomplete")
                if jax.process_index() == 0:
                    os.rename(os.path.join(self.directory, name), moved)
                self._report(f"skipping incomplete checkpoint {os.path.join(self.directory, name)}"
                            f" (interrupted save); moved to {moved}")
        _sync("incomplete")
        for epoch in reversed(self.all_epochs()):
            try:
                tree, meta = self.restore(epoch, target, run_config)
            except _Mismatch:
                raise
            except CheckpointError as e:
                moved = self.move_aside(epoch)
                self._report(f"skipping {e}; moved to {moved}")
                continue
            return epoch, tree, meta
        return None

    def close(self) -> None:
        """Closes orbax's manager and releases the lock."""
        try:
            with _quiet_logs():
                self._manager.close()
        finally:
            self.release()
