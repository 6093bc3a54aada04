"""A process that leases a gene worker id, issues a burst of ids as fast as it can and writes them
to a file, then exits either cleanly (giving the id back) or as a crash would (``os._exit``).

    python -m tests.gene_burst CONFIG WORKER_ID COUNT OUT_FILE {crash,clean}
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from config.loader import load_config
    from dal.worker_lease import LeasedGenes, WorkerLease

    config_path, worker, count, out, ending = argv
    config = load_config(config_path)
    first = next(iter(config.databases.values()))
    genes = LeasedGenes(WorkerLease(config.instances[first.default_instance]), int(worker))
    genes.start()
    if not genes.held:
        raise SystemExit(f"no lease: {genes.problem}")
    next_id = genes.generator.next_id
    ids = [next_id(42, 77) for _ in range(int(count))]
    Path(out).write_text("\n".join(map(str, ids)))
    if ending == "crash":
        os._exit(0)
    asyncio.run(genes.stop())


if __name__ == "__main__":
    main(sys.argv[1:])
