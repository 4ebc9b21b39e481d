"""Cassandra's ``nodetool``, run from the cassandra-all classpath the stack already resolved
(``org.apache.cassandra.tools.NodeTool``; the stack installs no tarball, so there is no script).

The command line is built by core (`stack_model.nodetool_command`); this runs it and turns its
failures into `CassandraError`. What ``status`` says — every node up and normal — is the local
cluster's readiness probe: a node that answers CQL may still be joining, or not yet seen by
gossip on the others.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404  # argv built by the project, no shell
from collections.abc import Sequence

from controlplane.core.errors import CassandraError
from controlplane.core.stack_model import parse_nodetool_status


def run(argv: Sequence[str], *, timeout: float = 60.0) -> str:
    """nodetool's standard output; CassandraError when it cannot run or fails."""
    try:
        out = subprocess.run(  # argv built by the project, no shell
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "JAVA_TOOL_OPTIONS": ""},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CassandraError(
            f"nodetool could not run: {exc}",
            hint="is Java 17 installed and the node's JMX port open? `cdcctl stack status`",
        ) from exc
    if out.returncode != 0:
        raise CassandraError(
            f"nodetool failed (exit {out.returncode}): {(out.stderr or out.stdout)[-600:].strip()}",
            hint="read the node's log with `cdcctl stack logs cassandra`",
        )
    return out.stdout


def status(argv: Sequence[str], *, timeout: float = 60.0) -> dict[str, str]:
    """{address: state} of ``nodetool status`` (``UN`` up/normal, ``UJ`` joining, ``DN`` down)."""
    return parse_nodetool_status(run(argv, timeout=timeout))
