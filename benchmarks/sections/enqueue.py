"""4. Enqueue: one bulk `enqueue --file`, and one `queuectl enqueue` (or `add`) process per job.

The single-job figures are compared with a bare `python -c pass` of the same
interpreter, interleaved with it in the same run, so the difference is what
queuectl itself costs a caller (imports, parsing, the database, the fsync).
Bytecode is cached for these processes as an installed queuectl has it, even
where PYTHONDONTWRITEBYTECODE is set (an editable install would otherwise
compile every module it imports at each run).
"""

from __future__ import annotations

import sys

from _backends import QUEUECTL, Backend, Database
from _util import Plan, Row, med, number, progress, summary, write_jobs


def single_enqueues(db: Database, count: int) -> tuple[float, float, float]:
    """Median ms of `queuectl enqueue JSON`, `queuectl add -- true` and `python -c pass`,
    interleaved."""
    enqueue, add, bare = [], [], []
    for _ in range(count):
        enqueue.append(db.process_seconds([QUEUECTL, "enqueue", '{"command":"true"}']))
        add.append(db.process_seconds([QUEUECTL, "add", "--", "true"]))
        bare.append(db.process_seconds([sys.executable, "-c", "pass"]))
    return 1000 * med(enqueue), 1000 * med(add), 1000 * med(bare)


def measure(plan: Plan, backend: Backend) -> list[Row]:
    bulk, single, added, bare = [], [], [], []
    for run in range(plan.runs):
        progress(f"4. enqueue {backend.name} run {run + 1}/{plan.runs}")
        with backend.fresh() as db:
            path = write_jobs(db.home / "jobs.jsonl", plan.bulk_jobs)
            bulk.append(
                plan.bulk_jobs / db.process_seconds([QUEUECTL, "enqueue", "--file", str(path)])
            )
            one, one_added, nothing = single_enqueues(db, plan.single_enqueues)
            single.append(one)
            added.append(one_added)
            bare.append(nothing)
    per = f"median of {plan.single_enqueues}"
    return [
        Row(
            "4",
            f"4. enqueue --file, {number(plan.bulk_jobs)} jobs",
            summary(bulk, "jobs/s"),
            ">= 50,000 jobs/s",
        ),
        Row("4", f"4. one `queuectl enqueue` process, {per}", summary(single, "ms", 1)),
        Row("4", f"4. bare `python -c pass`, {per}", summary(bare, "ms", 1)),
        Row(
            "4",
            "4. enqueue process minus bare python",
            summary([a - b for a, b in zip(single, bare, strict=True)], "ms", 1),
            "<= 20 ms",
        ),
        Row("4", f"4. one `queuectl add -- true` process, {per}", summary(added, "ms", 1)),
        Row(
            "4",
            "4. add process minus bare python",
            summary([a - b for a, b in zip(added, bare, strict=True)], "ms", 1),
            "<= 20 ms",
        ),
    ]
