"""The printed report of `dal bench`: a table per measurement (a rich table on a terminal, plain
aligned text otherwise), then its ratio and CPU lines. The figures themselves are built in
tools/bench.py; this module only formats them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tools import bench_cpu

COLUMNS = ("target", "address", "rounds", "queries", "qps", "x direct", "avg ms", "p50 ms",
           "p99 ms", "errors")


def num(value: float | None, fmt: str) -> str:
    """``value`` formatted, or '-' when missing."""
    return "-" if value is None else format(value, fmt)


def print_table(title: str, columns: Sequence[str], rows: list[list[str]],
                lines: Sequence[str] = (), errors: Sequence[str] = ()) -> None:
    """A table (the first two columns left-aligned), then ``lines``, then ``errors``."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for i, name in enumerate(columns):
            table.add_column(name, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        console = Console()
        console.print(table)
        for i, line in enumerate(lines):
            console.print(line, style="bold" if i == 0 else None, markup=False)
        for line in errors:
            console.print(line, style="red", markup=False)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(title)
    print(fmt(columns))
    for row in rows:
        print(fmt(row))
    for line in [*lines, *errors]:
        print(line)


def _rows(result: dict[str, Any]) -> list[list[str]]:
    ratios = result.get("ratios", {})
    rows = []
    for name, s in result["targets"].items():
        to_direct = ratios.get(name, {}).get("qps") if name != "direct" else 1.0
        rows.append([s["target"], s["address"], str(s["rounds"]), str(s["queries"]),
                     num(s["qps"], ".0f"), num(to_direct, ".2f"), num(s["avg_ms"], ".3f"),
                     num(s["p50_ms"], ".3f"), num(s["p99_ms"], ".3f"), str(s["errors"])])
    return rows


def ratio_lines(result: dict[str, Any]) -> list[str]:
    """One line per target other than direct: its qps, median-of-rounds and p99 ratios."""
    def r(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    ratios = result.get("ratios", {})
    lines = [f"ratio {name}/direct: qps {r(f['qps'])} (median of rounds {r(f['qps_median'])}), "
             f"p99 {r(f['p99'])}" for name, f in ratios.items()]
    spread = ratios.get("spread", {}).get("qps")
    if spread:  # --spread: each proxy against the floor of the sharded layout itself
        to_spread = ", ".join(f"{name} {r(f['qps'] / spread if f['qps'] else None)}"
                              for name, f in ratios.items() if name != "spread")
        lines.append(f"ratio to spread (the rows in as many tables as shards, no proxy): "
                     f"{to_spread}")
    return lines


def cpu_lines(result: dict[str, Any]) -> list[str]:
    """Per target, the CPU per query of every group in its rounds; then each proxy's own CPU per
    query in its own rounds, and its ratio to the hop's when the hop was measured."""
    lines = [f"cpu per query, {s['target']} rounds: {bench_cpu.describe(s['cpu_us'])}"
             for s in result["targets"].values() if s.get("cpu_us")]
    own = result.get("cpu_own_us") or {}
    if own:
        to_hop = result.get("cpu_ratio_to_hop") or {}
        parts = [f"{name} {us:.0f} us" + (f" ({to_hop[name]:.2f}x the hop's)"
                                          if name in to_hop and name != "hop" else "")
                 for name, us in own.items()]
        lines.append("own cpu per query (each proxy in its own rounds): " + ", ".join(parts))
    return lines


def load_text(result: dict[str, Any]) -> str:
    """What generated the load, e.g. 'sysbench oltp_point_select, 32 threads, ps-mode disable'."""
    params = result["params"]
    if result["mode"] == "sysbench":
        return (f"sysbench {params.get('workload', 'oltp_point_select')}, {params['threads']} "
                f"threads, ps-mode {params['ps_mode']}"
                + (f", offered load fixed at {params['rate']}/s" if params.get("rate") else "")
                + (", with BEGIN/COMMIT" if params.get("transactions") else ""))
    kind = "asyncio" if result["mode"] == "asyncio" else "built-in"
    return f"{kind}, {params['clients']} clients over {params['procs']} process(es)"


def report(result: dict[str, Any]) -> None:
    """Print the point-select figures of one ps-mode (or one client count)."""
    params = result["params"]
    title = (f"{result['query']}  ({load_text(result)}; {params['rounds']} x "
             f"{params['duration']:g} s per target, {params['table_size']} rows)\n"
             f"{result.get('layout_text', '')}")
    errors = [f"{s['target']}: {m}" for s in result["targets"].values() for m in s["error_samples"]]
    print_table(title, COLUMNS, _rows(result), [*ratio_lines(result), *cpu_lines(result)],
                errors)


def clients_summary(by_clients: dict[str, dict[str, Any]]) -> None:
    """--clients-set: one row per client count, each target's qps ratio to direct and errors."""
    names: list[str] = []
    for figures in by_clients.values():
        names += [n for n in figures.get("targets", {}) if n not in names]
    columns = ["clients", "generator", *[f"{n} qps" for n in names],
               *[f"{n}/direct" for n in names if n != "direct"], "errors"]
    rows = []
    failed = []
    for count, figures in by_clients.items():
        if "failed" in figures:
            failed.append(f"{count} clients: {figures['failed']}")
        targets = figures.get("targets", {})
        ratios = figures.get("ratios", {})
        rows.append([count, figures["generator"],
                     *[num(targets[n]["qps"], ".0f") if n in targets else "-" for n in names],
                     *[num(ratios.get(n, {}).get("qps"), ".2f") for n in names if n != "direct"],
                     str(sum(t["errors"] for t in targets.values()))
                     if targets else "failed"])
    print_table("client counts (the same run; each count alternates all targets)", columns,
                rows, errors=failed)
