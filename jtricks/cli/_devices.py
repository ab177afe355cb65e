"""``--devices N``: data-parallel training over N devices, for the subcommands that train."""

from __future__ import annotations

from ._common import CliError, check, integer, library_errors


def add_devices_argument(group) -> None:
    """Adds ``--devices N`` to an argparse group."""
    group.add_argument(
        "--devices", type=integer, default=1, metavar="N",
        help="train data-parallel over N devices: the state is replicated on a device mesh "
             "and every batch is split across it (jtricks.parallel.shard_loss); on CPU, N "
             "devices are simulated; --batch-size must divide by N (default 1)")


def add_process_arguments(group) -> None:
    """Adds ``--coordinator``, ``--num-processes`` and ``--process-id`` (one run as
    several processes: ``jtricks.parallel.initialize``)."""
    group.add_argument(
        "--coordinator", default=None, metavar="HOST:PORT",
        help="run as one of several processes (hosts): the address of process 0's "
             "coordinator (default: $JAX_COORDINATOR_ADDRESS when set); every process runs "
             "the same command with its own --process-id, --devices counts the devices of "
             "all processes, and each process feeds its share of every batch")
    group.add_argument("--num-processes", type=integer, default=None, metavar="P",
                       help="with --coordinator: the number of processes "
                            "(default: $JAX_NUM_PROCESSES)")
    group.add_argument("--process-id", type=integer, default=None, metavar="R",
                       help="with --coordinator: this process's rank, 0 <= R < P "
                            "(default: $JAX_PROCESS_ID)")


def start_processes(args) -> bool:
    """Joins the other processes of a multi-process run (``--coordinator`` or
    ``$JAX_COORDINATOR_ADDRESS``) before any JAX computation, each process with
    ``--devices / P`` devices (simulated on CPU); returns whether it did.

    Raises:
      CliError: for a bad or missing process count or rank, or ``--devices`` that
        does not divide by the process count.
    """
    import os

    from jtricks._validate import check_int

    coordinator = args.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if coordinator is None:
        for flag, value in (("--num-processes", args.num_processes),
                            ("--process-id", args.process_id)):
            if value is not None:
                raise CliError(f"{flag} {value}: needs --coordinator HOST:PORT (or "
                               "$JAX_COORDINATOR_ADDRESS)")
        return False
    count = args.num_processes
    if count is None and os.environ.get("JAX_NUM_PROCESSES"):
        check("$JAX_NUM_PROCESSES", os.environ["JAX_NUM_PROCESSES"], lambda _, v: int(v),
              "num_processes")
        count = int(os.environ["JAX_NUM_PROCESSES"])
    if count is None:
        raise CliError(f"--coordinator {coordinator}: needs --num-processes P (or "
                       "$JAX_NUM_PROCESSES)")
    check("--num-processes", count, check_int, "num_processes", lo=1)
    check_devices(args.devices)
    if args.devices % count:
        raise CliError(f"--devices {args.devices}: counts the devices of all --num-processes "
                       f"{count} processes, so it must divide by {count}")
    from jtricks import parallel

    with library_errors({"process_id": ("--process-id", args.process_id),
                         "num_processes": ("--num-processes", count),
                         "coordinator_address": ("--coordinator", coordinator)}):
        parallel.initialize(coordinator, count, args.process_id,
                            local_device_count=args.devices // count)
    return True


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
      CliError: if ``batch_size`` does not divide by ``n``, or ``n`` leaves out
        devices of other processes.
    """
    import jax

    if jax.process_count() > 1 and n != jax.device_count():
        raise CliError(f"--devices {n}: a run of {jax.process_count()} processes trains on "
                       f"all their devices, {jax.device_count()}")
    if n == 1:
        return state, loss_fn
    if batch_size % n:
        raise CliError(f"--batch-size {batch_size} does not divide by --devices {n}; use a "
                       f"multiple of {n}, e.g. {batch_size + n - batch_size % n}")
    from jtricks import parallel

    mesh = parallel.data_mesh(n)
    return parallel.replicate_on_mesh(state, mesh), parallel.shard_loss(loss_fn, mesh)
