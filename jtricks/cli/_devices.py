"""``--devices N``: data-parallel training over N devices, for the subcommands that train."""

from __future__ import annotations

from ._common import CliError, check, integer


def add_devices_argument(group) -> None:
    """Adds ``--devices N`` to an argparse group."""
    group.add_argument(
        "--devices", type=integer, default=1, metavar="N",
        help="train data-parallel over N devices: the state is replicated on a device mesh "
             "and every batch is split across it (jtricks.parallel.shard_loss); on CPU, N "
             "devices are simulated; --batch-size must divide by N (default 1)")


def check_devices(n) -> None:
    """``--devices`` is an integer >= 1 (the library's ``check_int``).

    Raises:
      CliError: ``--devices 0: devices=0 must be >= 1``.
    """
    from jtricks._validate import check_int

    check("--devices", n, check_int, "devices", lo=1)


def request_devices(n: int) -> None:
    """On CPU, asks JAX for ``n`` simulated devices; call before any JAX computation.

    Raises:
      CliError: if ``n`` is not an integer >= 1 or fewer than ``n`` devices are available.
    """
    import jax

    check_devices(n)

    if n > 1:
        try:  # accelerators ignore this; on CPU it only works before the backend starts
            jax.config.update("jax_num_cpu_devices", n)
        except RuntimeError:
            pass  # the backend already runs (e.g. main() called in a test): use what is there
    if n > jax.device_count():
        raise CliError(f"--devices {n}: only {jax.device_count()} "
                       f"{jax.default_backend()} devices are available")


def data_parallel(n: int, batch_size: int, state, loss_fn):
    """The state replicated on an ``n``-device mesh and the loss splitting its batch there.

    Raises:
      CliError: if ``batch_size`` does not divide by ``n``.
    """
    if n == 1:
        return state, loss_fn
    if batch_size % n:
        raise CliError(f"--batch-size {batch_size} does not divide by --devices {n}; use a "
                       f"multiple of {n}, e.g. {batch_size + n - batch_size % n}")
    from jtricks import parallel

    mesh = parallel.data_mesh(n)
    return parallel.replicate_on_mesh(state, mesh), parallel.shard_loss(loss_fn, mesh)
