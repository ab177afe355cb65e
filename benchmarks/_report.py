"""``BENCHMARKS.md``: the tables, each with its method, machine and command, and its targets
marked met or not from the figures (never assumed); the figures themselves are stored in a
JSON comment at the end, so that ``--only TABLE`` can rerun one table and keep the others."""

from __future__ import annotations

import json
import os
import statistics

_DATA = "<!-- jtricks-bench-data"

STEP_NAMES = {
    "optax_tree": "optax, tree", "jtricks_tree": "jtricks, tree",
    "optax_ravel": "optax on `ravel` buffers", "jtricks_flat": "jtricks flat (`ravel`)",
    "optax_flatten": "optax `flatten`", "jtricks_flatten": "jtricks `flatten`",
    "torch_foreach": "torch Adam foreach",
    "torch_fused": "torch Adam fused",
}
MODEL_NAMES = {"grad": "gradient only (flax, no optimizer)", "flax": "flax + optax",
               "jtricks": "jtricks (`jtricks.nn` + `train_step`)", "torch": "PyTorch, eager"}
COLD_NAMES = {"flax": "flax + optax loop", "torch": "PyTorch loop", "fit": "jtricks `fit`",
              "cli": "`jtricks train`", "cli_warm": "`jtricks train`, warm cache (reported)"}
SWEEP_NAMES = {"sweep": "`jtricks.sweep.train`", "flax_seq": "sequential flax + optax runs",
               "torch_seq": "sequential PyTorch runs",
               "sweep_keys": "`jtricks.sweep.train`, a key per member",
               "shared": "sequential jtricks runs sharing one compile",
               "optax_vmap_val": "hand-written optax + `vmap` sweep, validated every epoch",
               "optax_vmap_val_keys": "hand-written optax + `vmap` sweep, validated every "
                                      "epoch, a key per member",
               "optax_vmap": "hand-written optax + `vmap` sweep, no validation"}


def read_data(path: str) -> dict:
    """The figures stored in an existing report (``{}`` if there is none)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        text = f.read()
    start = text.find(_DATA)
    if start < 0:
        return {}
    body = text[start + len(_DATA):text.index("-->", start)]
    return json.loads(body)


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _iqr(median, spread, spec=".2f") -> str:
    lo, hi = spread
    return f"{median:{spec}} ({lo:{spec}}-{hi:{spec}})"


def _meta(meta: dict, rounds: int) -> list[str]:
    quick = " (a `--quick` smoke run: tiny sizes, not figures to quote)" if meta["quick"] else ""
    return [f"Made by `{meta['command']}` at commit {meta['commit']}, {meta['date']}{quick}; "
            f"{rounds} rounds; load average {meta['load'][0]} at the start, "
            f"{meta['load'][1]} at the end; the table took {meta['wall_s']:.0f} s.", ""]


def _optimizer(t: dict) -> list[str]:
    rows = t["rows"]
    cols = [c for c in STEP_NAMES if any(c in r["ms"] or c in r.get("compile_limit_s", {})
                                         for r in rows)]
    head = "| tree | " + " | ".join(STEP_NAMES[c] for c in cols) + " |"
    rule = "|---|" + "---:|" * len(cols)
    lines = [
        "## 1. Optimizer step", "",
        "`chain(clip_by_global_norm(1), adam(1e-3))` + apply, float32, parameters and state "
        "donated; the gradients are fixed. Columns: optax and jtricks on the parameter tree "
        "(what users write), both on the buffers of `jtricks.optim.ravel` (one flat buffer), "
        "`optax.flatten(tx)` and `jtricks.optim.flatten(tx)` on the tree, and PyTorch's `clip_grad_norm_` + "
        "`torch.optim.Adam(foreach=True)` / `(fused=True)` on the same CPU, one tensor per leaf. "
        "Each row runs in its own process; its programs are compiled, then timed in turn round "
        "after round (one untimed call, then 3 timed ones). Each program whose compile time grows "
        "with the leaves (the tree and `flatten` paths) has the same time limit, `--timeout` "
        "seconds; one that did not compile within it is shown as `> T s`.", "", *_meta(t["meta"], t["rounds"]),
        "Step time, ms, median (interquartile range):", "", head, rule]
    for r in rows:
        cells = [_iqr(r["ms"][c], r["spread"][c]) if c in r["ms"] else "—" for c in cols]
        lines.append(f"| {r['shape']} | " + " | ".join(cells) + " |")
    lines += ["", "Step time / optax's tree step (< 1 is faster):", "", head, rule]
    for r in rows:
        base = r["ms"].get("optax_tree")
        cells = [f"{r['ms'][c] / base:.2f}" if base and c in r["ms"] else "—" for c in cols]
        lines.append(f"| {r['shape']} | " + " | ".join(cells) + " |")
    jax_cols = [c for c in cols if not c.startswith("torch")]
    lines += ["", "Compile time, s (trace + lower + XLA compile of a fresh `jit`):", "",
              "| tree | " + " | ".join(STEP_NAMES[c] for c in jax_cols) + " |",
              "|---|" + "---:|" * len(jax_cols)]
    for r in rows:
        cells = [f"{r['compile_s'][c]:.2f}" if c in r["compile_s"]
                 else f"> {r['compile_limit_s'][c]:.0f}" if c in r.get("compile_limit_s", {})
                 else "—" for c in jax_cols]
        lines.append(f"| {r['shape']} | " + " | ".join(cells) + " |")
    return lines + ["", "Targets:", "", *optimizer_targets(rows), ""]


def optimizer_targets(rows) -> list[str]:
    """Never slower than optax on any tree and path; >= 2x on leaves of >= 1M elements;
    compile at 4096 leaves <= 10 s."""
    out = []
    pairs = (("jtricks_tree", "optax_tree"), ("jtricks_flat", "optax_ravel"),
             ("jtricks_flatten", "optax_flatten"))
    ratios = [(r["ms"][a] / r["ms"][b], f"{STEP_NAMES[a]} on {r['shape']}") for r in rows
              for a, b in pairs if a in r["ms"] and b in r["ms"]]
    missing = [f"{STEP_NAMES[a]} on {r['shape']}" for r in rows for a, b in pairs
               if not (a in r["ms"] and b in r["ms"])]
    note = f"; not measured: {', '.join(missing)}" if missing else ""
    if ratios:
        worst = max(ratios)
        out.append(f"- never slower than optax on any tree and path (tree vs tree, flat vs optax "
                   f"on the same buffers, `flatten` vs `optax.flatten`): {_mark(worst[0] <= 1.0 and not missing)}"
                   f" (worst {worst[0]:.2f}x, {worst[1]}{note})")
    big = [r for r in rows if r["size"] >= 1 << 20 and "jtricks_tree" in r["ms"]
           and "optax_tree" in r["ms"]]
    if big:
        least = min(r["ms"]["optax_tree"] / r["ms"]["jtricks_tree"] for r in big)
        out.append(f"- at least 2x faster than optax on leaves of >= 1M elements (tree path): "
                   f"{_mark(least >= 2)} ({least:.2f}x)")
    many = [r for r in rows if r["leaves"] >= 4096]
    for r in many:
        c = r["compile_s"].get("jtricks_tree")
        limit = r.get("compile_limit_s", {}).get("jtricks_tree")
        figure = f"{c:.1f} s" if c is not None else f"> {limit:.0f} s"
        out.append(f"- compile at {r['shape']} (jtricks, tree) <= 10 s: "
                   f"{_mark(c is not None and c <= 10)} ({figure})")
    return out


def _models(t: dict) -> list[str]:
    lines = [
        "## 2. Training step of real models", "",
        "One step: forward, backward, `clip_by_global_norm(1)`, Adam(1e-3), apply; state "
        "donated; a fixed synthetic batch. Each model is written idiomatically in flax.linen + "
        "optax (blocks unrolled by a Python loop), with jtricks' own layers and engine "
        "(`jtricks.nn.resnet(scan_blocks=True)`, or a block of `jtricks.nn.dense` / "
        "`layer_norm` with a hand-written attention repeated by `jtricks.nn.stack`: the "
        "identical blocks' parameters stacked on a leading axis and applied by one `lax.scan`, "
        "hence fewer leaves; `jtricks.train.train_step`, `jtricks.optim`), and in PyTorch "
        "(eager; `torch.compile` was not tried: its CPU compile needs minutes on 2 cores). "
        "Each model runs in its own process; the steps are timed in turn, round after round.", "", *_meta(t["meta"], t["rounds"])]
    targets = []
    for r in t["rows"]:
        lines += [f"**{r['description']}**: {r['params']} parameters in {r['leaves']} leaves "
                  f"(jtricks, identical blocks stacked; flax {r['flax_leaves']}, "
                  f"PyTorch {r.get('torch_leaves') or '—'}).",
                  "", "| | step ms, median (IQR) | / flax + optax | compile s |",
                  "|---|---:|---:|---:|"]
        flax_ms = r["ms"].get("flax")
        for k in ("grad", "flax", "jtricks", "torch"):
            if k not in r["ms"] and k not in r["compile_s"]:
                continue
            ms = _iqr(r["ms"][k], r["spread"][k]) if k in r["ms"] else "not timed"
            ratio = f"{r['ms'][k] / flax_ms:.2f}" if flax_ms and k in r["ms"] else "—"
            comp = f"{r['compile_s'][k]:.1f}" if k in r["compile_s"] else "—"
            lines.append(f"| {MODEL_NAMES[k]} | {ms} | {ratio} | {comp} |")
        lines.append("")
        targets += model_targets(r)
    return lines + ["Targets (jtricks against flax + optax):", "", *targets, ""]


def model_targets(r: dict) -> list[str]:
    out = []
    if "jtricks" in r["ms"] and "flax" in r["ms"]:
        x = r["ms"]["jtricks"] / r["ms"]["flax"]
        out.append(f"- {r['model']}: step <= 1.0x: {_mark(x <= 1.0)} ({x:.2f}x)")
    else:
        out.append(f"- {r['model']}: step <= 1.0x: **not measured**")
    c = r["compile_s"]
    if "jtricks" in c and "flax" in c:
        x = c["jtricks"] / c["flax"]
        out.append(f"- {r['model']}: compile <= 0.5x: {_mark(x <= 0.5)} ({x:.2f}x)")
    return out


def _median_s(runs) -> float | None:
    reached = [r["seconds"] for r in runs if "seconds" in r]
    return statistics.median(reached) if reached and len(reached) == len(runs) else None


def _cold(t: dict) -> list[str]:
    target = t["target"]
    lines = [
        "## 3. Time to target accuracy from a cold start", "",
        f"The embedded digits (8x8, 1,258 train / 359 validation, scaled to [-1, 1]), validation "
        f"accuracy >= {target:.0%}; an MLP 256-128 and a CNN (conv 16, conv 32, dense 64, as "
        "`jtricks.nn.cnn`), dropout 0.1, Adam(1e-3), batch 32 (the defaults of `jtricks "
        "train`). Every run is a fresh Python process, timed from its start to the end of the "
        "epoch that reached the target: imports, data loading, compilation and training all "
        "count; `JTRICKS_COMPILE_CACHE=off` and no JAX cache directory, so every compile is "
        "cold. `jtricks train --model M` is stopped when its `history.jsonl` first shows the "
        f"target; the others stop themselves. At most {t['max_epochs']} epochs. The warm-cache "
        "row is the same command run again with its persistent compilation cache (on by "
        "default) filled by an untimed run before: what a second run of one configuration "
        "costs, not a cold start, so no target applies to it.", "",
        *_meta(t["meta"], t["rounds"]),
        "| model | contestant | seconds to target, median (min-max) | epochs | / flax + optax "
        "| / PyTorch |", "|---|---|---:|---:|---:|---:|"]
    targets = []
    for m, libs in t["runs"].items():
        med = {lib: _median_s(runs) for lib, runs in libs.items() if runs}
        for lib, runs in libs.items():
            if not runs:
                continue
            reached = [r["seconds"] for r in runs if "seconds" in r]
            cell = (f"{med[lib]:.1f} ({min(reached):.1f}-{max(reached):.1f})" if med[lib]
                    else f"not reached in {len(runs) - len(reached)} of {len(runs)} runs")
            epochs = "/".join(str(r["epoch"]) for r in runs)
            mine = med[lib]
            rel = [f"{mine / base:.2f}" if mine and (base := med.get(o)) else "—"
                   for o in ("flax", "torch")]
            lines.append(f"| {m} | {COLD_NAMES[lib]} | {cell} | {epochs} | {rel[0]} | {rel[1]} |")
        for lib in ("fit", "cli"):
            for other in ("flax", "torch"):
                if lib in med and other in med:
                    mine, base = med[lib], med[other]
                    ok = mine is not None and base is not None and mine <= base
                    fig = (f"{mine:.1f} s vs {base:.1f} s"
                           if mine is not None and base is not None else "not reached")
                    targets.append(f"- {m}: {COLD_NAMES[lib]} no slower than the "
                                   f"{COLD_NAMES[other]}: {_mark(ok)} ({fig})")
    lines += ["", "Training throughput once compiled (one epoch of 39 batches of 32; examples/s, "
              "median (IQR); the flax loop calls its jitted step per batch, jtricks runs the "
              "compiled epoch of `fit`, `jtricks.train.make_epoch`), timed in turn in one "
              "process:", "", "| model | contestant | examples/s | / flax + optax |",
              "|---|---|---:|---:|"]
    for m, speeds in t["throughput"].items():
        for lib, (med, spread) in speeds.items():
            lines.append(f"| {m} | {COLD_NAMES[lib]} | {_iqr(med, spread, '.0f')} | "
                         f"{med / speeds['flax'][0]:.2f} |")
    if "mlp" in t["throughput"]:
        s = t["throughput"]["mlp"]
        x = s["fit"][0] / s["flax"][0]
        targets.append(f"- mlp: compiled throughput >= 1.5x the flax + optax loop: "
                       f"{_mark(x >= 1.5)} ({x:.2f}x)")
    return lines + ["", "Targets:", "", *targets, ""]


def _spread_rows(values: dict, base: float, spec: str, unit: str) -> list[str]:
    """``| name | median (min-max) | median / base |`` rows of the sweep table."""
    rows = []
    for name, vs in values.items():
        med = statistics.median(vs)
        rows.append(f"| {SWEEP_NAMES[name]} | {med:{spec}} ({min(vs):{spec}}-{max(vs):{spec}}) | "
                    f"{med / base:.2f}{unit} |")
    return rows


def _sweep(t: dict) -> list[str]:
    k, whole, speed = t["k"], t["whole_s"], t["steps_per_s"]
    lines = [
        f"## 4. Sweep of K = {k} configurations", "",
        f"K = {k} Adam learning rates (log-spaced 1e-4 to 1e-2) x the digits MLP "
        f"{'-'.join(map(str, t['features'][:-1]))} (dropout 0.1), {t['epochs']} epochs of batch "
        f"{t['batch']}, {t['member_steps']} member-steps in all; one process. Whole jobs "
        "include every compilation (`jax.clear_caches()` before each) and are timed in turn; "
        "member-steps per second are measured once compiled.", "", *_meta(t["meta"], t["rounds"]),
        "| whole job, compilation included | seconds, median (min-max) | speed-up of the sweep |",
        "|---|---:|---:|"]
    sweep_s = statistics.median(whole["sweep"])
    lines += _spread_rows(whole, sweep_s, ".1f", "x")
    if "whole_cpu_s" in t:  # process CPU time: steadier than wall time on a shared machine
        cpu = t["whole_cpu_s"]
        lines += ["", "| whole job, compilation included | process CPU-s, median (min-max) | "
                  "/ `jtricks.sweep.train` |", "|---|---:|---:|"]
        lines += _spread_rows(cpu, statistics.median(cpu["sweep"]), ".1f", "x")
    by_k = t.get("steps_per_s_by_k", {str(k): speed})
    lines += ["", "Once compiled (" + (f"{t['steady_rounds']} rounds; " if "steady_rounds" in t
                                       else "") +
              "the sweeps and the validated hand-written sweeps give every epoch the training "
              "loss, accuracy and gradient norm averaged over its steps and the validation "
              "loss and accuracy, and keep each member's best parameters; the sequential runs "
              "and the other hand-written sweep only train. The sweeps share one key among "
              "their members, as `jtricks.sweep.train(..., key=jax.random.key(0))` does (one "
              "initialisation, data order and set of dropout masks), except those marked 'a "
              "key per member', whose members each draw their own: on a CPU a member's own "
              "data order makes the first layer K small products instead of one):", "",
              "| K | once compiled | member-steps/s, median (min-max) | / `jtricks.sweep.train` |",
              "|---:|---|---:|---:|"]
    for kk, values in sorted(by_k.items(), key=lambda item: int(item[0])):
        base = statistics.median(values["sweep"])
        lines += [f"| {kk} " + row for row in _spread_rows(values, base, ".0f", "")]
    targets = []
    for other in ("flax_seq", "torch_seq"):
        if other in whole:
            x = statistics.median(whole[other]) / sweep_s
            targets.append(f"- at least 4x faster than {k} {SWEEP_NAMES[other]} (compile "
                           f"included): {_mark(x >= 4)} ({x:.2f}x)")
    for kk, values in sorted(by_k.items(), key=lambda item: int(item[0])):
        targets += _sweep_targets(kk, values)
    return lines + ["", "Targets:", "", *targets, ""]


def _sweep_targets(k: str, values: dict) -> list[str]:
    """The member-step targets at one K: each sweep against sequential runs sharing one
    compile and against the hand-written sweep doing its work, and what a key per member
    costs."""
    med = {name: statistics.median(v) for name, v in values.items()}
    same_work = "a hand-written optax + `vmap` sweep doing the same work"
    pairs = [("sweep", "shared", "sequential runs sharing one compile"),
             ("sweep", "optax_vmap_val", same_work),
             ("sweep_keys", "shared", "sequential runs sharing one compile"),
             ("sweep_keys", "optax_vmap_val_keys", same_work)]
    lines = []
    for mine, other, need in pairs:
        if mine in med and other in med:
            x = med[mine] / med[other]
            keys = ", a key per member" if mine == "sweep_keys" else ""
            lines.append(f"- K = {k}{keys}: member-step throughput >= 1.0x {need}: "
                         f"{_mark(x >= 1.0)} ({x:.2f}x)")
    if "sweep_keys" in med:
        cost = med["sweep"] / med["sweep_keys"] - 1
        lines.append(f"- K = {k}: a key per member costs <= 10% of a step (`jtricks.sweep.train`"
                     f" with one key against a key each): {_mark(cost <= 0.10)} "
                     f"({100 * cost:+.0f}%)")
    if "optax_vmap" in med:
        x = med["sweep"] / med["optax_vmap"]
        lines.append(f"- K = {k}: against {SWEEP_NAMES['optax_vmap']} (less work, reported): "
                     f"{x:.2f}x")
    return lines


SECTIONS = (("optimizer", _optimizer), ("models", _models), ("cold", _cold), ("sweep", _sweep))


def format_report(data: dict) -> str:
    """The Markdown report of the stored figures ``data`` (``{table: figures, "machine": ...}``)."""
    lines = [
        "# jtricks benchmarks", "",
        "Regenerated by one command, `jtricks bench --out BENCHMARKS.md` (one table: `--only "
        "optimizer|models|cold|sweep`); every figure below comes from it, and each table "
        "says how and when it was made. The machine is shared: timings are medians of "
        "interleaved repeats, and the ratios between programs timed in turn are more "
        "trustworthy than the absolute times, which move with the load (given per table).", "",
        "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in data["machine"].items()]
    lines.append("")
    for name, section in SECTIONS:
        if name in data:
            lines += section(data[name])
        else:
            lines += [f"## {name}: not run (`jtricks bench --only {name}`)", ""]
    gpu = [d for d in data["machine"]["devices"].split(", ") if not d.startswith("cpu")]
    lines += ["## GPU", "",
              ("The machine has no GPU, so there is no GPU table." if not gpu else
               f"Devices {', '.join(gpu)} are present, but the harness times the CPU only."), ""]
    lines += [_DATA, json.dumps(data, indent=None, sort_keys=True), "-->", ""]
    return "\n".join(lines)
