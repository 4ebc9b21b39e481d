"""Run `cdcctl` as a user would: a subprocess of this interpreter, output captured."""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # runs our own CLI with a fixed argv
import sys
from typing import Any


def cdcctl(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # nosec B603  # fixed argv
        [sys.executable, "-m", "controlplane", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def cdcctl_json(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> Any:
    """``cdcctl ARGS -o json``: exit 0 asserted (stderr in the message), stdout parsed."""
    out = cdcctl(*args, "-o", "json", timeout=timeout, env=env)
    assert out.returncode == 0, f"cdcctl {' '.join(args)}: exit {out.returncode}: {out.stderr}"
    return json.loads(out.stdout)
