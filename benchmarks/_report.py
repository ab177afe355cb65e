"""``BENCHMARKS.md``: the tables, the issue's targets marked met or not, and notes."""

from __future__ import annotations

import statistics

from benchmarks._measure import human


def _num(value, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _step_table(steps) -> list[str]:
    lines = [
        "| tree | optax ms | jtricks ms | ratio | jtricks (grad tree) ms | ratio | "
        "optax % copy bw | jtricks % copy bw | (grad tree) % copy bw |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in steps:
        optax_ms = _num(r.get("optax_ms"), ".2f")
        if "optax_timeout_s" in r:
            optax_ms = f"not compiled in {r['optax_timeout_s']:.0f} s"
        elif r.get("optax_failed"):
            optax_ms = "failed (see the log)"
        lines.append(
            f"| {r['shape']} | {optax_ms} | {r['flat_ms']:.2f} | {_num(r.get('ratio'), '.2f')} | "
            f"{r['tree_ms']:.2f} | {_num(r.get('tree_ratio'), '.2f')} | "
            f"{_pct(r.get('optax_bw'))} | {_pct(r['flat_bw'])} | {_pct(r['tree_bw'])} |"
        )
    return lines


def _compile_cells(optax_s, timeout, flat_s, tree_s) -> str:
    if optax_s is None and timeout is None:  # the optax part failed
        return f"failed | {flat_s:.2f} | — | {tree_s:.2f} | — |"
    if optax_s is None:  # a lower bound: optax had not finished at the time limit
        return (
            f"> {timeout:.0f} | {flat_s:.2f} | > {timeout / flat_s:.0f}x | "
            f"{tree_s:.2f} | > {timeout / tree_s:.1f}x |"
        )
    return (
        f"{optax_s:.2f} | {flat_s:.2f} | {optax_s / flat_s:.0f}x | "
        f"{tree_s:.2f} | {optax_s / tree_s:.1f}x |"
    )


def _compile_table(compiles, steps) -> list[str]:
    lines = [
        "| leaves | optax s | jtricks s | speed-up | jtricks (grad tree) s | speed-up |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in compiles:
        lines.append(
            f"| {r['leaves']} x {human(r['size'])} | "
            + _compile_cells(r.get("optax_s"), r.get("optax_timeout_s"), r["flat_s"], r["tree_s"])
        )
    for r in steps:
        lines.append(
            f"| {r['shape']} (step above) | "
            + _compile_cells(
                r.get("optax_compile_s"),
                r.get("optax_timeout_s"),
                r["flat_compile_s"],
                r["tree_compile_s"],
            )
        )
    return lines


def format_report(command: str, machine: dict, sections: list[dict], trains: list[dict]) -> str:
    """The Markdown report of one ``jtricks bench`` run.

    Args:
      command: the command line that made it.
      machine: :func:`benchmarks._measure.describe_machine`.
      sections: per device ``{"device", "copy_n", "steps", "compiles"}``.
      trains: per device, :func:`benchmarks._train.bench_train_step`'s figures
        plus ``"device"`` (empty: no training step).
    """
    lines = ["# jtricks benchmarks", "", f"Made by: `{command}`", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    for s in sections:
        device, steps = s["device"], s["steps"]
        copy_bws = [r["copy_bw"] for r in steps]
        median_bw = statistics.median(copy_bws) if copy_bws else float("nan")
        lines += [
            "",
            f"## Adam + global-norm clipping, update + apply ({device})",
            "",
            f"Copy bandwidth (jitted donated `x + 1` on {human(s['copy_n'])} floats, read + "
            f"write, timed in turn with the steps of each row): median **{median_bw / 1e9:.1f} "
            f"GB/s** (rows: {', '.join(format(b / 1e9, '.1f') for b in copy_bws)}). Effective "
            "bandwidth counts 7 x 4 bytes per parameter. `jtricks` keeps the parameters and the "
            "Adam state flat (`jtricks.optim.ravel`) and gets flat gradients, as the backward "
            "pass of `unravel` produces them; `jtricks (grad tree)` starts from a gradient tree "
            "and concatenates it inside the step. Ratio = jtricks time / optax time (< 1 is "
            "faster). Each row runs in its own process.",
            "",
            *_step_table(steps),
            "",
            f"### Compile time of that step ({device})",
            "",
            *_compile_table(s["compiles"], steps),
        ]
    if trains:
        t = trains[0]
        lines += [
            "",
            "## Full training step: digits MLP with batch norm and dropout",
            "",
            f"MLP {t['features']} (batch norm + dropout 0.1, {t['params']} parameters in "
            f"{t['leaves']} leaves), batch {t['batch']}, Adam; forward + backward + update + "
            "apply, state donated. jtricks: `jtricks.nn.mlp` and `jtricks.train.train_step`; "
            "flax + optax: the same layers in `flax.linen` and `optax.adam`, the step written "
            "as a flax user writes it.",
            "",
            "| device | jtricks, flat params ms | ratio | jtricks, tree params ms | ratio | "
            "flax + optax ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for t in trains:
            lines.append(
                f"| {t['device']} | {t['flat_ms']:.3f} | {t['flat_ms'] / t['flax_ms']:.2f} | "
                f"{t['tree_ms']:.3f} | {t['tree_ms'] / t['flax_ms']:.2f} | {t['flax_ms']:.3f} |"
            )
    lines += targets(sections, trains)
    lines += [
        "",
        "## Notes",
        "",
        "- Every step donates its parameters and optimizer state. The programs of one row "
        "are timed in turn, round after round (optax, copy, jtricks, ...), so that a change "
        "in the machine's load hits them alike; in each round every program makes one "
        "untimed call (which pays for the previous program's dirty cache and busy threads) "
        "and then 3 timed calls, the steady state of a training loop. Each figure is the "
        "median of the timed calls. On a shared machine, compare the ratios, not the "
        "absolute times.",
        "- Each row of the step and compile tables runs in its own process with a time limit "
        "(`--timeout`): the jtricks figures are taken first, so a row whose optax compile "
        "runs out of time still reports them, with optax's compile time as a lower bound.",
        "- `jtricks` is the step a user writes after `flat, unravel = jtricks.optim.ravel(params)`: "
        "`chain(clip_by_global_norm(1.0), adam(1e-3))` and `apply_updates` on one buffer per "
        "dtype, whatever the tree looks like. Its step and its compile time do not depend "
        "on the number of leaves; that cost moves into the model, which reads "
        "`unravel(flat)` (slices) and whose backward pass ends with one concatenate per dtype "
        "(the full training step above includes both).",
        "- `jtricks (grad tree)` is the same step fed a gradient tree: one concatenate more.",
        "- `jtricks.optim.flatten(tx)` (state flat, parameters and updates still trees) "
        "still splits the updates into one kernel per leaf, so its compile time grows with "
        "the leaves like optax's; it is not in these tables.",
        "",
    ]
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def targets(sections: list[dict], trains: list[dict]) -> list[str]:
    """The issue's targets, each marked met or not from the figures (never assumed)."""
    lines = ["", "## Targets", ""]
    for s in sections:
        device, steps = s["device"], s["steps"]
        timed = [r for r in steps if r.get("ratio") is not None]
        untimed = ", ".join(r["shape"] for r in steps if r.get("ratio") is None)
        missing = f"; **not measured** on {untimed} (no optax figure)" if untimed else ""
        if timed:
            worst = max(timed, key=lambda r: r["ratio"])
            lines.append(
                f"- ({device}) never slower than optax (ratio <= 1.0): "
                f"{_mark(worst['ratio'] <= 1.0)} (worst {worst['ratio']:.2f} on "
                f"{worst['shape']}){missing}"
            )
        many = [r for r in steps if r["leaves"] >= 2048]
        many_timed = [r for r in many if r.get("ratio") is not None]
        if many_timed:
            step_x = min(1 / r["ratio"] for r in many_timed)
            lines.append(
                f"- ({device}) >= 2048 leaves: >= 3x faster per step: {_mark(step_x >= 3)} "
                f"(least {step_x:.1f}x){missing}"
            )
        # A row whose optax compile hit the time limit gives a lower bound.
        bounds = [
            (r.get("optax_compile_s") or r["optax_timeout_s"]) / r["flat_compile_s"]
            for r in many
            if not r.get("optax_failed")
        ]
        if bounds:
            lines.append(
                f"- ({device}) >= 2048 leaves: >= 5x faster to compile: "
                f"{_mark(min(bounds) >= 5)} (least {min(bounds):.0f}x"
                + (", a lower bound where optax did not finish)" if untimed else ")")
            )
        if steps:
            low = min(steps, key=lambda r: r["flat_bw"])
            lines.append(
                f"- ({device}) >= 50% of the copy bandwidth on every tree: "
                f"{_mark(low['flat_bw'] >= 0.5)} (lowest {100 * low['flat_bw']:.0f}% on "
                f"{low['shape']})"
            )
    for t in trains:
        best = min(t["flat_ms"], t["tree_ms"])
        lines.append(
            f"- ({t['device']}) full training step no slower than flax + optax: "
            f"{_mark(best <= t['flax_ms'])} (flat params {t['flat_ms'] / t['flax_ms']:.2f}x, "
            f"tree params {t['tree_ms'] / t['flax_ms']:.2f}x the flax time)"
        )
    return lines
