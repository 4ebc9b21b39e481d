"""The chaos suite's knobs (environment variables), read once."""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


ROUNDS = _int("CDC_CHAOS_ROUNDS", 1)
"""Rounds per fault (docs/reliability.md wants >= 3)."""
RF = _int("CDC_CHAOS_RF", 1)
"""Replication factor of the workload's keyspace: 1 on the single-node stack, 3 on a cluster."""
DEFAULT_CONSISTENCY = "ONE" if RF == 1 else "QUORUM"
CONSISTENCY = os.environ.get("CDC_CHAOS_CL", DEFAULT_CONSISTENCY).upper()
"""Consistency level of the workload's writes (reads for the comparison are always ALL)."""
THREADS = _int("CDC_CHAOS_THREADS", 3)
RATE = _float("CDC_CHAOS_RATE", 50.0)
"""Operations per second per client thread (3 x 50 = 150/s: modest on 2 shared cores)."""
PARTITIONS = _int("CDC_CHAOS_PARTITIONS", 40)
ROWS = _int("CDC_CHAOS_ROWS", 8)
PG_OUTAGE_S = _float("CDC_CHAOS_PG_OUTAGE_S", 130.0)
"""How long PostgreSQL stays down (the sink must ride through >= 2 minutes by itself)."""
WARMUP_S = _float("CDC_CHAOS_WARMUP_S", 10.0)
NONE_S = _float("CDC_CHAOS_NONE_S", 30.0)
"""How long the ``none`` fault (no fault) keeps the load running between warm-up and tail."""
TAIL_S = _float("CDC_CHAOS_TAIL_S", 5.0)
"""Load kept running after the sink consumes again, before it stops."""
RECOVER_DEADLINE_S = _float("CDC_CHAOS_RECOVER_DEADLINE_S", 300.0)
CONVERGE_DEADLINE_S = _float("CDC_CHAOS_CONVERGE_DEADLINE_S", 600.0)
FAULTS = [f for f in os.environ.get("CDC_CHAOS_FAULTS", "postgres,connect,kafka").split(",") if f]
SEED = _int("CDC_CHAOS_SEED", 20261204)
