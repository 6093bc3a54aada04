"""CPU time per query of the processes a bench round keeps busy.

On a small machine DAL, the database servers and the load generator share the same cores, so a
throughput ratio alone does not say who spent the time. `CpuMeter` reads the CPU time (user +
system, from /proc) of the processes listening on DAL's port, on the database servers' ports
and on the port of every other target measured (the TCP hop, compared DALs), and of the
bench's own finished children (the load generator), before and after a round;
`per_query` turns the differences into microseconds per query. On a system without /proc the
meter finds no processes and the report leaves the line out.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

from tools.proc_net import LISTEN, tcp_sockets

GROUPS = ("dal", "servers", "client")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def listening_pids(ports: set[int]) -> set[int]:
    """The processes holding a listening TCP socket on one of ``ports`` (any address)."""
    inodes = {f"socket:[{inode}]" for local, state, inode in tcp_sockets()
              if state == LISTEN and local in ports}
    pids = set()
    if not inodes:
        return pids
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    pids.add(int(entry.name))
                    break
            except OSError:
                continue
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """The processes of each group (a name per port set: "dal", "hop", a compared DAL's label,
    "servers"); `sample` reads their CPU seconds so far."""

    groups: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def find(cls, ports: dict[str, set[int]]) -> CpuMeter:
        """The meter of the processes listening on each group's ports."""
        return cls({name: listening_pids(group) for name, group in ports.items()})

    @property
    def usable(self) -> bool:
        return any(self.groups.values())

    def sample(self) -> dict[str, float]:
        """CPU seconds so far per group found (a group whose processes could not be found, say
        servers of another user, is left out rather than shown as 0); `client`: the bench's
        finished child processes."""
        seconds = {name: sum(map(cpu_seconds, pids)) for name, pids in self.groups.items()
                   if pids}
        return {**seconds, "client": _children_seconds()}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per group between two samples."""
    return {name: round(max(0.0, after[name] - before[name]), 3) for name in before}


def per_query(seconds: dict[str, float], queries: int) -> dict[str, float]:
    """Microseconds of CPU per query per group (empty when nothing was measured)."""
    if not seconds or queries <= 0:
        return {}
    return {name: round(value * 1e6 / queries, 1) for name, value in seconds.items()}


def describe(us: dict[str, float]) -> str:
    """'dal 40 us, servers 45 us, client 22 us': GROUPS first, then the other groups (the hop,
    compared DALs) in the order measured."""
    names = [n for n in GROUPS if n in us] + [n for n in us if n not in GROUPS]
    return ", ".join(f"{name} {us[name]:.0f} us" for name in names)


def machine_sample() -> dict[str, float]:
    """The machine's CPU tick counters so far (/proc/stat: all, idle, steal) and its load
    average; {} without /proc."""
    try:
        cells = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        load = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    ticks = [int(c) for c in cells]
    # user nice system idle iowait irq softirq steal (guest ticks are inside user already)
    return {"total": sum(ticks[:8]), "idle": ticks[3] + ticks[4], "steal": ticks[7] if len(
        ticks) > 7 else 0, "load": load}


def machine_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Steal and busy percent of all CPUs between two samples, and the load averages at both
    ends: how loaded the shared machine was while the figures were taken."""
    if not before or not after or after["total"] <= before["total"]:
        return {}
    total = after["total"] - before["total"]
    return {"cpus": os.cpu_count() or 0,
            "steal_percent": round(100 * (after["steal"] - before["steal"]) / total, 1),
            "busy_percent": round(100 * (1 - (after["idle"] - before["idle"]) / total), 1),
            "load_start": before["load"], "load_end": after["load"]}


def describe_machine(summary: dict[str, float]) -> str:
    """'2 CPUs, 93 % busy, steal 0.0 %, load 3.1 -> 14.7'."""
    if not summary:
        return "machine load unknown (no /proc)"
    return (f"{summary['cpus']:.0f} CPUs, {summary['busy_percent']:.0f} % busy, steal "
            f"{summary['steal_percent']:.1f} %, load average {summary['load_start']:.1f} -> "
            f"{summary['load_end']:.1f}")
