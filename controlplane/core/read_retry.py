"""Reading token ranges from a Cassandra cluster (verify): the consistency level, which read
errors a retry may cure, the backoff between attempts, and which replica to ask next. Pure: no
driver, no clock, no randomness of its own (callers pass them in). Decision 0102.

- A read at a consistency level the live replicas cannot meet (Unavailable), one they did not
  answer in time (ReadTimeout, OperationTimedOut), one that failed on a replica (ReadFailure),
  no host reachable (NoHostAvailable) or a connection lost mid-page are *temporary*: the range
  is read again, from its start, on the next replica, after a backoff. A query Cassandra refuses
  (InvalidRequest, Unauthorized, a syntax error) is not: retrying cannot cure it.
- A range whose reads still fail after ``retries`` attempts is *not verified*: its rows are
  neither valid nor missing; the range is FAIL in Redis and ``--resume`` does it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controlplane.core.errors import UsageError

#: Consistency levels a range read may use (each tried on Cassandra 5.0 with a token-range
#: SELECT). ANY: Cassandra refuses it for reads ("only supported for writes"). SERIAL and
#: LOCAL_SERIAL: Cassandra 5.0 accepts them, but they are the linearizable reads of lightweight
#: transactions (a Paxos round per read), not a scan level: refused here.
CONSISTENCY_LEVELS = (
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "LOCAL_ONE",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "ALL",
)

#: The one default: consistent with writes at LOCAL_QUORUM, and one node of three may be down.
DEFAULT_CONSISTENCY = "LOCAL_QUORUM"

#: Read error kinds (what the Cassandra adapter maps the driver's exceptions to) and whether a
#: retry, possibly on another replica, may cure them.
READ_ERROR_KINDS: dict[str, bool] = {
    "unavailable": True,  # too few live replicas for the CL (a node down, or not yet seen up)
    "read_timeout": True,  # replicas did not answer the coordinator in time
    "read_failure": True,  # a replica failed the read (e.g. tombstone overwhelm, a disk error)
    "no_host": True,  # no host of the query plan could be asked (NoHostAvailable)
    "timeout": True,  # the client gave up waiting (OperationTimedOut)
    "connection": True,  # the connection closed or broke (a node killed mid-page)
    "overloaded": True,  # the coordinator is overloaded / bootstrapping / truncating
    "invalid": False,  # InvalidRequest, syntax error, a table that does not exist
    "unauthorized": False,  # authentication or authorization
    "other": False,  # anything else: reported, never retried blindly
}


def parse_consistency(value: str | None) -> str:
    """A consistency level name in upper case (``local_quorum`` -> ``LOCAL_QUORUM``); None or
    empty gives `DEFAULT_CONSISTENCY`. An unknown name is a `UsageError` (exit 2)."""
    if value is None or not value.strip():
        return DEFAULT_CONSISTENCY
    name = value.strip().upper().replace("-", "_")
    if name not in CONSISTENCY_LEVELS:
        raise UsageError(
            f"{value!r} is not a consistency level a token-range read can use",
            hint="use one of "
            + ", ".join(CONSISTENCY_LEVELS)
            + f" (default {DEFAULT_CONSISTENCY})",
        )
    return name


def is_retryable(kind: str) -> bool:
    return READ_ERROR_KINDS.get(kind, False)


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``retries`` attempts after the first; before attempt n+1 wait between half and
    all of ``min(cap_s, base_s * 2**(n-1))`` (jitter, so workers do not retry in step)."""

    retries: int = 4
    base_s: float = 0.5
    cap_s: float = 8.0

    def delay(self, failures: int, rand: float) -> float:
        """The wait after the ``failures``-th failed attempt; ``rand`` in [0, 1)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))
        return ceiling * (0.5 + 0.5 * min(max(rand, 0.0), 1.0))

    def worst_case_s(self) -> float:
        """The longest a range can spend waiting between its attempts."""
        return sum(
            (min(self.cap_s, self.base_s * 2.0 ** (n - 1)) for n in range(1, self.retries + 1)),
            0.0,
        )


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_s: float
    reason: str


def decide(policy: RetryPolicy, kind: str, failures: int, rand: float) -> RetryDecision:
    """After ``failures`` failed attempts (>= 1) of one range, the last one of ``kind``: read
    it again (after ``delay_s``) or give up and report the range not verified."""
    if not is_retryable(kind):
        return RetryDecision(False, 0.0, f"{kind}: a retry cannot cure it")
    if failures > policy.retries:
        return RetryDecision(False, 0.0, f"{failures} attempts failed (the last: {kind})")
    return RetryDecision(
        True,
        policy.delay(failures, rand),
        f"{kind}: attempt {failures + 1} of {policy.retries + 1}",
    )


@dataclass(frozen=True)
class Replica:
    """A replica of a token range as the driver's metadata sees it."""

    address: str
    datacenter: str = ""
    up: bool | None = True  # None: not known yet (the driver has not tried it)


def replica_order(replicas: Sequence[Replica], local_dc: str | None, salt: int) -> list[str]:
    """The addresses to ask for one range, in order: replicas in the local data centre before
    others (a LOCAL_* read must be coordinated there), up before unknown before down, and
    within each group rotated by ``salt`` (the range's index) so consecutive ranges go to
    different replicas and the scan spreads over the cluster. Duplicates are dropped."""
    first: dict[str, Replica] = {}
    for r in replicas:
        first.setdefault(r.address, r)
    unique = list(first.values())

    def group(r: Replica) -> tuple[int, int]:
        remote = int(bool(local_dc) and r.datacenter != local_dc)
        health = 0 if r.up is True else 1 if r.up is None else 2
        return (remote, health)

    out: list[str] = []
    for key in sorted({group(r) for r in unique}):
        members = sorted((r.address for r in unique if group(r) == key), key=_addr_key)
        if members:
            k = salt % len(members)
            out += members[k:] + members[:k]
    return out


def _addr_key(address: str) -> tuple[int, tuple[int, ...], str]:
    """IPv4 addresses in numeric order (127.0.0.2 before 127.0.0.10), then the others."""
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return (0, tuple(int(p) for p in parts), "")
    return (1, (), address)


def replica_for_attempt(order: Sequence[str], attempt: int) -> str | None:
    """The replica for attempt ``attempt`` (0 = the first): the next one after each failure,
    round the list again when every replica failed once. None: let the driver choose."""
    return order[attempt % len(order)] if order else None
