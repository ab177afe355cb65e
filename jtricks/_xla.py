"""XLA compiler options jtricks passes to ``jax.jit`` (one place for them).

On XLA:CPU a program's compile time grows with the backend (LLVM)
optimisation level, and random-number code is the most expensive to compile
(every ``jax.random`` draw is a threefry hash of its shape: about 2 s to
compile one ``jax.random.uniform`` at the default level on a shared 2-core
machine, 0.4 s at level 0). A program that runs once, or for microseconds,
gains nothing from the optimisation, and a training program little: the
options :data:`LEVEL_1` compile it at level 1.
Level 1 still contracts multiply-adds as the default level does, so the
results are the same bit for bit (``tests/test_train_compiles.py`` checks the
initial parameters); level 0 does not, and a layer's initial weights then
differ in the last bit from ``jax.jit(model.init)``'s.

Measured on ``jtricks.nn.cnn``'s ``init`` (four layers, one compiled program):
9.1 s to compile at the default level, 2.6 s at level 1, 1.8 s at level 0
(2 CPU cores, load 8).

``fit``'s epoch (a ``lax.scan`` of training steps, run every epoch) is compiled
at level 1 too: on the digits MLP and CNN of ``jtricks train`` it compiles in
15-17% less CPU time (MLP 2.5 s against 3.0 s, CNN 3.7 s against 4.3 s), an
epoch takes the same time (ratio of medians over 40 / 15 interleaved epochs:
1.00 and 0.86, within the noise of a loaded machine), and 12 epochs end with the
same parameters bit for bit (measured for issue 16, table 3;
``tests/test_train_loop.py`` checks ``fit``'s parameters against ``make_run``'s,
compiled at the default level, bit for bit). So are the sweep's training programs
(``jtricks/sweep/_rounds.py`` has the figures) and the models' ``init``
(``jtricks.nn``).
"""

from __future__ import annotations

import os
import re


def _level_1() -> dict:
    """Level 1, unless ``XLA_FLAGS`` already asks for a lower level (which then holds)."""
    asked = re.findall(r"--xla_backend_optimization_level=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return {} if asked and int(asked[-1]) <= 1 else {"xla_backend_optimization_level": 1}


def _run_once() -> dict:
    """:data:`LEVEL_1` and XLA:CPU's fusion emitters off, unless ``XLA_FLAGS`` sets them."""
    flags = os.environ.get("XLA_FLAGS", "")
    emitters = ({} if "--xla_cpu_use_fusion_emitters" in flags
                else {"xla_cpu_use_fusion_emitters": False})
    return {**_level_1(), **emitters}


LEVEL_1 = _level_1()

#: The options of the random-number programs that run once, or for microseconds, per
#: training run: a model's ``init`` (and ``init_state``'s), the epoch's batch order, the
#: data split's permutation. :data:`LEVEL_1` plus XLA:CPU's fusion emitters off (they
#: generate faster loops, which these programs do not need, and compile threefry's
#: longer; other backends ignore the option). The results are the same bit for bit
#: (``tests/test_train_compiles.py``). Measured on 2 cores, one process per row (issue
#: 16), CPU seconds to compile at LEVEL_1 and with RUN_ONCE: ``init`` of the digits MLP
#: 1.32 -> 0.92, of ``jtricks.nn.cnn`` 1.71 -> 1.28, of a ResNet of 2 stages x 1 block
#: 2.67 -> 1.76, of 3 stages x 2 / 4 blocks (77 / 137 leaves) 5.3-5.7 -> 3.7-4.8 and
#: 7.4-7.6 -> 7.0-8.2 (two runs each: no difference at 137 leaves); the epoch's order
#: (1258 examples) 0.64 -> 0.35, running as fast (0.5 ms). Not for programs of
#: many small kernels without random numbers: the finiteness check of 1024 leaves
#: compiles in 46 CPU-s instead of 8, and a 256-leaf Adam step in 33 instead of 3.5. Nor
#: for training: the digits MLP's epoch compiles in 1.8 CPU-s instead of 2.9 but runs
#: 1.6x slower (21.5 ms against 13.6), so training programs keep LEVEL_1.
RUN_ONCE = _run_once()
