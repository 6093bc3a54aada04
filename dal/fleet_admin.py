"""SHOW DAL for a DAL of several workers: the answering worker merges every worker's rows.

Which rows are summed and which stay per worker:

- POOLS, BREAKERS, LIMITS: one row per worker and instance (or rule), the ``worker`` column
  saying whose: each worker has its own pools (its share of pool.max_size), its own breakers
  and its own token buckets;
- STATEMENTS: summed per fingerprint (count, errors, total_ms; avg_ms recomputed; max_ms the
  largest);
- COUNTERS: summed per counter and label (plan cache size: entries over all workers' caches),
  and a ``workers / answered`` row;
- RULES: the ``refused`` counts summed (the rules themselves are the same in every worker);
- GENES: the control table as the answering worker reads it; the ``worker`` column names the
  worker of this DAL holding each lease, whose ``ahead_ms``, ``borrowed_ms`` and ``problem``
  come from that worker;
- SHARDS and anything else: answered by the answering worker alone (read from the config and
  files every worker shares).

Each merge takes the answers ordered by worker index.
"""

from __future__ import annotations

from collections.abc import Callable

Rows = tuple[list[str], list[list[object]]]


def per_worker(answers: list[Rows]) -> Rows:
    """Every worker's rows one after the other (each row names its worker)."""
    return answers[0][0], [row for _, rows in answers for row in rows]


def summed(keys: int) -> Callable[[list[Rows]], Rows]:
    """Rows keyed by their first ``keys`` columns, the integer columns after them summed."""

    def merge(answers: list[Rows]) -> Rows:
        merged: dict[tuple[object, ...], list[object]] = {}
        for _, rows in answers:
            for row in rows:
                key = tuple(row[:keys])
                old = merged.get(key)
                if old is None:
                    merged[key] = list(row)
                    continue
                for i in range(keys, len(row)):
                    if isinstance(row[i], int) and isinstance(old[i], int):
                        old[i] += row[i]
        return answers[0][0], list(merged.values())

    return merge


def counters(answers: list[Rows]) -> Rows:
    header, rows = summed(2)(answers)
    return header, [*rows, ["workers", "answered", len(answers)]]


def statements(answers: list[Rows]) -> Rows:
    """Digests summed per fingerprint, the most total time first (as one worker's)."""
    merged: dict[object, list[float]] = {}
    for _, rows in answers:
        for fingerprint, count, errors, total_ms, _avg, max_ms in rows:
            old = merged.setdefault(fingerprint, [0, 0, 0.0, 0.0])
            old[0] += int(count)  # type: ignore[call-overload]
            old[1] += int(errors)  # type: ignore[call-overload]
            old[2] += float(total_ms)  # type: ignore[arg-type]
            old[3] = max(old[3], float(max_ms))  # type: ignore[arg-type]
    ranked = sorted(merged.items(), key=lambda item: item[1][2], reverse=True)
    return answers[0][0], [
        [key, int(count), int(errors), f"{total:.3f}", f"{total / count:.3f}" if count else "0",
         f"{largest:.3f}"] for key, (count, errors, total, largest) in ranked]


def genes(answers: list[Rows]) -> Rows:
    """The first answer's table, each lease of a worker of this DAL completed by that worker."""
    header, rows = answers[0][0], [list(r) for r in answers[0][1]]
    column = {name: i for i, name in enumerate(header)}
    by_id = {row[column["worker_id"]]: row for row in rows}
    for _, peer_rows in answers[1:]:
        for own in (r for r in peer_rows if r[column["this_process"]] == "yes"):
            row = by_id.get(own[column["worker_id"]])
            if row is None:
                row = by_id[own[column["worker_id"]]] = list(own)
                rows.append(row)
            for name in ("worker", "ahead_ms", "borrowed_ms", "problem"):
                row[column[name]] = own[column[name]]
            row[column["this_process"]] = "no"
    return header, rows


MERGES: dict[str, Callable[[list[Rows]], Rows]] = {
    "POOLS": per_worker,
    "BREAKERS": per_worker,
    "LIMITS": per_worker,
    "STATEMENTS": statements,
    "COUNTERS": counters,
    "RULES": summed(2),
    "GENES": genes,
}
