"""``jtricks train`` as two processes x two CPU devices on 127.0.0.1, with checkpoints:
killed (SIGKILL of both processes), its newest checkpoint damaged, resumed, it ends
bit-identical to an uninterrupted two-process run.

The uninterrupted run is the two-process recipe of ``docs/scaling.md``, run as the page
gives it (its commands are read from the page). The killed run follows it and is killed
once its checkpoint of epoch 2 is complete; it and the resumed run load the programs
the first one compiled from a persistent compilation cache. Bit-identical is checked on the final checkpoints: their per-piece
SHA-256 digests (every array of the state, optimizer state and keys) must be equal,
and so must the histories (timings aside) and the test metrics.
"""

import json
import os
import re
import resource
import shlex
import time
from pathlib import Path

import pytest
from _multiprocess import ROOT, fast_compile_flags, run_processes

DOC = ROOT / "docs" / "scaling.md"
TIMEOUT_S = 300


def _doc_command() -> list[str]:
    """The process-0 command of the page's two-process recipe, as arguments of ``python
    -m jtricks``, with ``{coordinator}`` and ``{rank}`` for the launcher to fill in."""
    section = DOC.read_text().split("### Two processes", 1)[1]
    found = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert found, f"no bash block after '### Two processes' in {DOC}"
    block = found.group(1)
    lines = [line.rstrip(" &") for line in block.splitlines() if line.startswith("jtricks ")]
    assert len(lines) == 2 and "--process-id 0" in lines[0] and "--process-id 1" in lines[1]
    args = shlex.split(lines[0])[1:]
    args[args.index("--process-id") + 1] = "{rank}"
    args[args.index("--coordinator") + 1] = "{coordinator}"
    return ["-m", "jtricks", *args]


def _with(args: list[str], **flags) -> list[str]:
    """``args`` with the value of each ``--flag`` replaced (a flag's ``_`` as ``-``)."""
    args = list(args)
    for name, value in flags.items():
        args[args.index("--" + name.replace("_", "-")) + 1] = str(value)
    return args


def _final(run: Path, out: Path) -> dict:
    """What must be bit-identical: the last checkpoint's digests, history and summary."""
    epochs = sorted(int(name) for name in os.listdir(run) if name.isdigit())
    meta = json.loads((run / str(epochs[-1]) / "meta" / "metadata").read_text())
    history = [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "steps_per_s")}
               for line in (out / "history.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return {"epoch": epochs[-1], "digests": meta["digests"], "history": history,
            "test": [summary["test_loss"], summary["test_accuracy"]]}


class _Clock:
    """Prints the wall and CPU seconds (of the processes) of each phase (``-s`` shows them)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __call__(self, what):
        wall, cpu = time.perf_counter(), self._cpu()
        print(f"{what}: {wall - self.wall:.1f} s, {cpu - self.cpu:.1f} s CPU")
        self.wall, self.cpu = wall, cpu


def _flip_bytes(step_dir: Path) -> int:
    """Damages every array data file of a checkpoint (orbax's OCDBT ``d/`` folders)."""
    files = [Path(root) / name for root, _, names in os.walk(step_dir / "state")
             if os.path.basename(root) == "d" for name in names]
    for path in files:
        data = bytearray(path.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 8):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    return len(files)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_killed_two_process_run_resumes_bit_identical(tmp_path):
    command = _doc_command()
    epochs = int(command[command.index("--epochs") + 1])
    whole_args = _with(command, checkpoint_dir=tmp_path / "whole", out=tmp_path / "whole-out")
    killed_args = _with(command, checkpoint_dir=tmp_path / "killed",
                        out=tmp_path / "killed-out")
    # the three runs compile alike (they are compared with each other only), without XLA's
    # optimisations: about 30% less compile time
    env = {"JTRICKS_COMPILE_CACHE": str(tmp_path / "xla"), "XLA_FLAGS": fast_compile_flags()}
    marker = tmp_path / "killed" / "2"  # complete once orbax has renamed it into place

    clock = _Clock()
    run_processes(whole_args, env=env, timeout=TIMEOUT_S)  # compiles, fills the cache
    clock("uninterrupted run")
    results = run_processes(killed_args, env=env, timeout=TIMEOUT_S, kill_when=marker.is_dir)
    clock("killed run")
    assert all(r.returncode == -9 for r in results), "the run ended before it was killed"
    saved = sorted(int(name) for name in os.listdir(tmp_path / "killed") if name.isdigit())
    assert 2 <= saved[-1] < epochs, saved
    assert _flip_bytes(tmp_path / "killed" / str(saved[-1]))

    talking = [a for a in killed_args if a != "--quiet"]  # fit says where it resumes from
    resumed = run_processes([*talking, "--resume"], env=env, timeout=TIMEOUT_S)
    clock("resumed run")
    log = resumed[0].log
    newest = tmp_path / "killed" / str(saved[-1])
    assert f"skipping checkpoint {newest} is " in log, log[-3000:]
    assert f"moved to {newest}.corrupt-1" in log
    assert f"resuming from {tmp_path / 'killed'}/{saved[-2]} " in log
    assert "skipping" not in resumed[1].log  # process 0 reports for both

    expected = _final(tmp_path / "whole", tmp_path / "whole-out")
    got = _final(tmp_path / "killed", tmp_path / "killed-out")
    assert expected["epoch"] == epochs and len(expected["digests"]) > 10
    assert got == expected
    assert not (tmp_path / "killed-out" / "summary.json").with_name("1").exists()


@pytest.mark.parametrize("argv, message", [
    (["--num-processes", "2"], "--num-processes 2: needs --coordinator HOST:PORT"),
    (["--process-id", "1"], "--process-id 1: needs --coordinator HOST:PORT"),
    (["--coordinator", "127.0.0.1:1"], "--coordinator 127.0.0.1:1: needs --num-processes P"),
    (["--coordinator", "127.0.0.1:1", "--num-processes", "0"],
     "--num-processes 0: num_processes=0 must be >= 1"),
    (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--devices", "3"],
     "--devices 3: counts the devices of all --num-processes 2 processes, so it must divide "
     "by 2"),
    (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2",
      "--devices", "4"], "--process-id 2: process_id=2 must be < num_processes=2"),
])
def test_bad_process_flags_are_refused_before_joining(argv, message, capsys, monkeypatch):
    from jtricks.cli import main

    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
    assert main(["train", "--epochs", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert f"jtricks train: error: {message}" in err, err
