"""The lesson's notebooks (notebooks/*.ipynb) run top to bottom, at reduced sizes.

Each notebook reads ``JTRICKS_NOTEBOOK_SMOKE=1`` in its first code cell and shrinks its
data, epochs and seeds so that it runs in seconds; a cell that raises fails the test
with the notebook's name and the cell's error. The notebooks are stored without outputs.

The notebooks of one test process run one after the other in one kernel (a kernel's
start and its imports of jax, matplotlib and scikit-learn cost about 4 CPU-s, a quarter
of a smoke run); ``%reset -f`` empties its namespace before each, so a notebook that used
a name it does not define itself would fail as in a fresh kernel.
"""

import glob
import os

import pytest
from _multiprocess import fast_compile_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
# The lesson's chapters, one notebook each.
CHAPTERS = ("values_and_initialisation", "normalisation", "dropout_and_overfitting",
            "optimizers_clipping_schedules", "imbalance_and_augmentation")


def test_one_notebook_per_chapter_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (test extra)")
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert [n[3:-6] for n in names] == list(CHAPTERS), names
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path
        assert "JTRICKS_NOTEBOOK_SMOKE" in code[0].source, path
        # the public API only: no private module of jtricks
        assert not any("jtricks._" in c.source or "from jtricks._" in c.source for c in code)


@pytest.fixture(scope="module")
def kernel():
    """One running IPython kernel for the notebooks of this module (restarted if a
    notebook killed it)."""
    pytest.importorskip("nbclient", reason="nbclient is not installed (test extra)")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (test extra)")
    from jupyter_client import KernelManager

    # The kernel's environment: reduced sizes, this checkout's jtricks, CPU.
    env = dict(os.environ, JTRICKS_NOTEBOOK_SMOKE="1", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="module://matplotlib_inline.backend_inline",
               # The smoke programs run for milliseconds and compile for seconds: compile
               # them without XLA's optimisations (what jtricks demo does for small programs).
               XLA_FLAGS=fast_compile_flags())
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=os.path.dirname(NOTEBOOKS[0]), env=env)
    yield manager
    manager.shutdown_kernel(now=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: os.path.basename(p)[:-6])
def test_notebook_runs(path, kernel):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (test extra)")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (test extra)")
    manager = kernel
    if not manager.is_alive():  # a previous notebook took the kernel down
        manager.restart_kernel(now=True)
    nb = nbformat.read(path, as_version=4)
    # an empty namespace, as in a fresh kernel (the imported modules stay loaded)
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    client = nbclient.NotebookClient(nb, km=manager, timeout=300,
                                     resources={"metadata": {"path": os.path.dirname(path)}})
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs)
    assert images >= 1, f"{os.path.basename(path)} shows no plot"
