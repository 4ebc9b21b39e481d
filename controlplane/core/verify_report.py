"""What a verify run reports (docs/verify.md): the counters of a range, a range's status, the
run's summary (counted over the ranges' records), the exit decision (``check``) and the lines of
the JSONL differences file. Pure: the records are passed in; services.verify reads them from
Redis and writes the lines."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.core.errors import DifferencesFoundError, NotVerifiedError
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
