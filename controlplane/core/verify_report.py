"""What a verify run reports (docs/verify.md): the counters of a range, a range's status and the
record it leaves in Redis (started, read to its end, or not verified), the run's summary
(counted over the ranges' records), the exit decision (``check``) and the lines of the JSONL
differences file. Pure: the records are passed in; services.verify reads them from Redis and
writes the records and lines."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from controlplane.core.errors import DifferencesFoundError, NotVerifiedError, UsageError
from controlplane.core.read_retry import DEFAULT_CONSISTENCY
from controlplane.core.verify_compare import Suspect
from controlplane.core.verify_table import Table

COUNTERS = (
    "read",
    "valid",
    "mismatch",
    "missing",
    "extra",
    "corrected_mismatch",
    "corrected_missing",
    "deleted_extra",
    "skipped",
    "error",
    "rechecked",  # rows that differed at first and matched when read again after the lag
    "retries",  # range reads done again after a temporary Cassandra failure (decision 0102)
)
#: The counter of a difference repaired, by the difference's kind
CORRECTED = {
    "missing": "corrected_missing",
    "mismatch": "corrected_mismatch",
    "extra": "deleted_extra",
}
FINAL = frozenset({"PASS", "DIFF"})
NOT_VERIFIED_LISTED = 50  # ranges listed in a summary (all are counted)


def remaining(counters: Mapping[str, int]) -> int:
    """Differences found and not corrected."""
    c = counters
    return (
        c["missing"]
        + c["mismatch"]
        + c["extra"]
        - c["corrected_missing"]
        - c["corrected_mismatch"]
        - c["deleted_extra"]
    )


def range_status(counters: Mapping[str, int]) -> str:
    """A range read to its end: DIFF while differences remain, else PASS."""
    return "DIFF" if remaining(counters) else "PASS"


def not_verified_counters(retries: int) -> dict[str, int]:
    """The counters of a range that could not be read: none of its rows counted valid or
    missing, one error."""
    counters = dict.fromkeys(COUNTERS, 0)
    counters["error"] = 1
    counters["retries"] = retries
    return counters


def count_kinds(kinds: Iterable[str]) -> dict[str, int]:
    """How many settled differences of each kind (``missing``, ``mismatch``, ``extra``)."""
    return dict(Counter(kinds))


def corrected(
    repaired: Sequence[Suspect], after: Sequence[Suspect | None]
) -> tuple[set[Any], dict[str, int]]:
    """The differences a repair wrote, read again (``after``, position by position; None: the
    sides agree now): the keys of those corrected and the counters they add (``CORRECTED``
    of their kind). A row still different after its repair stays a difference."""
    fixed = [s for s, new in zip(repaired, after, strict=True) if new is None]
    return {s.key for s in fixed}, count_kinds(CORRECTED[s.kind] for s in fixed)


# ----------------------------------------------------------------------------- range records


def range_base(table: str, start: int, end: int, *, owner: str, consistency: str) -> dict[str, Any]:
    """What every record of a range says: its table and bounds, the process working on it
    and the consistency level it is read at."""
    return {"table": table, "start": start, "end": end, "owner": owner, "consistency": consistency}


def started_record(base: Mapping[str, Any], at: float) -> dict[str, Any]:
    """The record of a range a worker has begun (``at``: wall-clock seconds)."""
    return {**base, "status": "STARTED", "started_at": at}


def failed_attempt(kind: str, error_host: str | None, host: str | None) -> str:
    """``kind@host`` of a failed read: the host the error names, else the replica the read
    was sent to, else ``?`` (the driver chose)."""
    return f"{kind}@{error_host or host or '?'}"


def done_record(
    base: Mapping[str, Any],
    counters: Mapping[str, int],
    *,
    retries: int,
    replica: str | None,
    failed_attempts: Sequence[str],
) -> dict[str, Any]:
    """The record of a range read to its end: PASS or DIFF (``range_status``), its counters
    with the ``retries`` it took, the replica that answered (None: the driver's choice) and,
    when there were any, the failed attempts before it."""
    c = {**counters, "retries": retries}
    rec = {**base, "status": range_status(c), **c, "replica": replica}
    if failed_attempts:
        rec["failed_attempts"] = list(failed_attempts)
    return rec


def error_kind(exc: BaseException) -> str:
    """How a range read failed: a Cassandra read error's ``kind``, else the error's class."""
    return str(getattr(exc, "kind", type(exc).__name__))


def not_verified_record(
    base: Mapping[str, Any],
    *,
    kind: str,
    message: str,
    retries: int,
    failed_attempts: Sequence[str],
) -> dict[str, Any]:
    """The record of a range that could not be read: FAIL, not verified — none of its rows
    counted valid or missing (``not_verified_counters``); ``--resume`` reads it again."""
    return {
        **base,
        "status": "FAIL",
        "error_kind": kind,
        "error_message": message,  # not "error": that is the counter of failed ranges
        "failed_attempts": list(failed_attempts),
        **not_verified_counters(retries),
    }


# ----------------------------------------------------------------------------- the run


@dataclass
class RunSummary:
    run_id: str
    status: str
    tables: list[str]
    ranges: int
    statuses: dict[str, int]
    counters: dict[str, int]
    diff_file: str | None
    elapsed_s: float = 0.0
    rows_per_s: float = 0.0
    consistency: str = DEFAULT_CONSISTENCY
    #: ranges not verified: FAIL (reads failed after their retries), STARTED or NOT_STARTED
    not_verified: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return remaining(self.counters)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "status": self.status,
            "tables": self.tables,
            "ranges": self.ranges,
            "range_status": self.statuses,
            "counters": self.counters,
            "remaining_differences": self.remaining,
            "diff_file": self.diff_file,
            "elapsed_s": round(self.elapsed_s, 2),
            "rows_per_s": round(self.rows_per_s, 1),
            "consistency": self.consistency,
            "not_verified_ranges": len(self.not_verified),
            "not_verified": self.not_verified[:NOT_VERIFIED_LISTED],
        }


def run_summary(
    run_id: str, meta: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]]
) -> RunSummary:
    """The summary of a run from its metadata and its ranges' records (task -> record):
    INCOMPLETE while a range is FAIL, STARTED or NOT_STARTED, else DIFF if one is, else PASS."""
    statuses: dict[str, int] = {}
    counters = dict.fromkeys(COUNTERS, 0)
    not_verified: list[dict[str, Any]] = []
    for task, rec in sorted(records.items()):
        status = rec.get("status", "NOT_STARTED")
        statuses[status] = statuses.get(status, 0) + 1
        for c in COUNTERS:
            counters[c] += int(rec.get(c, 0))
        if status not in FINAL:
            not_verified.append(
                {
                    "task": task,
                    "status": status,
                    "error_kind": rec.get("error_kind"),
                    "error_message": rec.get("error_message"),
                    "retries": int(rec.get("retries", 0)),
                }
            )
    if statuses.get("FAIL") or statuses.get("STARTED") or statuses.get("NOT_STARTED"):
        status = "INCOMPLETE"
    elif statuses.get("DIFF"):
        status = "DIFF"
    else:
        status = "PASS"
    return RunSummary(
        run_id=run_id,
        status=status,
        tables=list(meta.get("tables", [])),
        ranges=len(records),
        statuses=statuses,
        counters=counters,
        diff_file=meta.get("diff_file"),
        consistency=str(meta.get("consistency") or DEFAULT_CONSISTENCY),
        not_verified=not_verified,
    )


def known_run(run_id: str, meta: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The metadata of a run that exists; a UsageError for a run not in Redis (None)."""
    if meta is None:
        raise UsageError(f"no verify run {run_id} in Redis", hint="see `cdcctl verify runs`")
    return meta


def finished(
    summary: RunSummary, *, consistency: str, diff_file: str, elapsed_s: float
) -> RunSummary:
    """The summary a process returns at the end of its part of a run: the level it read at,
    its differences file, and its time and rate (rows read over the whole run per second of
    this process; 0 when no time passed)."""
    read = summary.counters.get("read", 0)
    return replace(
        summary,
        consistency=consistency,
        diff_file=diff_file,
        elapsed_s=elapsed_s,
        rows_per_s=read / elapsed_s if elapsed_s else 0,
    )


def all_ranges_read(summary: RunSummary) -> bool:
    """Every range of the run read to its end (PASS or DIFF): nothing left that would read
    the run's token snapshot, which may be dropped then (kept while one may be resumed)."""
    return summary.statuses.get("PASS", 0) + summary.statuses.get("DIFF", 0) == summary.ranges


def range_rows(records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ranges' records as rows for `cdcctl verify show`: in task order, named by task."""
    return [{"task": k, **v} for k, v in sorted(records.items())]


def check(summary: RunSummary) -> None:
    """Raise for a run that is not clean: failed/unfinished ranges first, then differences."""
    if summary.status == "INCOMPLETE":
        kinds = sorted({str(r["error_kind"]) for r in summary.not_verified if r["error_kind"]})
        why = f" (reads failed: {', '.join(kinds)})" if kinds else ""
        raise NotVerifiedError(
            f"verify run {summary.run_id}: {len(summary.not_verified)} of {summary.ranges} "
            f"range(s) not verified{why} at {summary.consistency}; they are not counted as "
            "differences",
            hint=f"resume it with `cdcctl verify -f MANIFEST --resume {summary.run_id}` "
            "(e.g. once the nodes are back, or with --consistency the cluster can meet)",
        )
    if summary.remaining > 0:
        raise DifferencesFoundError(
            f"verify run {summary.run_id}: {summary.remaining} difference(s) remain "
            f"(missing {summary.counters['missing']}, mismatch {summary.counters['mismatch']}, "
            f"extra {summary.counters['extra']}); details in {summary.diff_file}",
            hint="repair with --repair (and --delete-extra for extra rows), then verify again",
        )


def diff_line(
    run_id: str,
    t: Table,
    s: Suspect,
    kind: str,
    *,
    repaired: bool,
    task: str | None,
    at: float,
) -> str:
    """One line of the differences file: the row's key and differing columns in canonical form
    (``kind``: the suspect's, or ``skipped`` for a row still changing)."""
    rec = {
        "run": run_id,
        "table": t.name,
        "range": task,
        "kind": kind,
        "key": t.key_dict(s.pk),
        "columns": {
            c: {"cassandra": v.cassandra, "postgres": v.postgres, "note": v.note}
            for c, v in sorted(s.columns.items())
        },
        "repaired": repaired,
        "at": at,
    }
    return json.dumps(rec, sort_keys=True, default=str) + "\n"


def default_diff_path(run_id: str) -> Path:
    """``verify-<run id>.jsonl`` in the current directory, the run id reduced to letters,
    digits, ``.``, ``_`` and ``-`` (a run id is user input: ``--run-id ../../x`` must not
    leave the directory); a reduced id gets a hash of the original so two ids never share a
    file."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:100]
    if safe != run_id:
        safe += "-" + hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return Path(f"verify-{safe}.jsonl")
