#!/usr/bin/env python3
"""Audit the installed Python dependencies for known vulnerabilities (docs/security.md,
"Dependency audit"); CI runs it as `./dev audit` after the lint step.

What is audited: the environment this interpreter runs in (`.venv`, built by `./dev` from
pyproject.toml's dependencies and dev extras), i.e. exactly the versions the tests ran with; the
project itself (installed editable) is skipped. The tool is pip-audit, asking the package
index's JSON API for each installed version's vulnerability records.

Exit status:
  0  no known vulnerability, or the audit could not run here (no answer from the vulnerability
     service, or not one dependency could be looked up): then it says so on a line starting with
     ``dependency audit SKIPPED:`` and why. CDC_AUDIT_STRICT=1 turns a skip into exit 1 (for a
     machine that must audit).
  1  a vulnerability that is not in the ignore list (each printed with its fix versions).
  2  the ignore list is malformed, or pip-audit is not installed.

Ignore list: `scripts/audit-ignore.txt`, one vulnerability id per line followed by its reason
(``PYSEC-2024-1  not reachable: we never call X; until 2026-06-01``); ``#`` starts a comment.
An id without a reason is refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess  # nosec B404  # runs pip-audit with a fixed argv
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IGNORE_FILE = ROOT / "scripts" / "audit-ignore.txt"
_ENTRY = re.compile(r"(?P<id>[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9-:.]+)\s+(?P<reason>\S.*)")
TIMEOUT_S = 600


def read_ignores(path: Path = IGNORE_FILE) -> dict[str, str]:
    """{vulnerability id: reason}; raises ValueError naming the line that has no reason."""
    ignores: dict[str, str] = {}
    if not path.exists():
        return ignores
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _ENTRY.fullmatch(line)
        if m is None:
            raise ValueError(f"{path}:{n}: expected `ID  reason`, got {raw!r}")
        ignores[m["id"]] = m["reason"]
    return ignores


def judge(report: dict[str, Any], ignores: dict[str, str]) -> tuple[int, list[str]]:
    """(exit status, lines to print) for pip-audit's JSON report; pure."""
    # the project itself, installed editable, is not a dependency
    deps = [d for d in report.get("dependencies", []) if "editable" not in d.get("skip_reason", "")]
    audited = [d for d in deps if "skip_reason" not in d]
    skipped = [d for d in deps if "skip_reason" in d]
    found = [(d, v) for d in audited for v in d.get("vulns", []) if v["id"] not in ignores]
    ignored = [(d, v) for d in audited for v in d.get("vulns", []) if v["id"] in ignores]
    lines = []
    for d, v in found:
        fixes = ", ".join(v.get("fix_versions") or []) or "none yet"
        aliases = f" ({', '.join(v['aliases'])})" if v.get("aliases") else ""
        lines.append(f"VULNERABLE {d['name']} {d['version']}: {v['id']}{aliases}; fixed in {fixes}")
    for d, v in ignored:
        lines.append(f"ignored {d['name']} {d['version']}: {v['id']} ({ignores[v['id']]})")
    if not audited:
        reasons = sorted({d["skip_reason"].split(":")[0] for d in skipped}) or ["no dependencies"]
        lines.append(
            f"dependency audit SKIPPED: none of the {len(deps)} installed dependencies could be "
            f"looked up ({'; '.join(reasons)}): the package index this machine reaches does not "
            "serve per-version vulnerability records; run it where it does (docs/security.md)"
        )
        return (1 if _strict() else 0), lines
    if skipped:
        names = ", ".join(f"{d['name']} {d['version']}" for d in skipped)
        lines.append(f"not audited ({len(skipped)}): {names}")
    lines.append(
        f"dependency audit: {len(audited)} dependencies audited, {len(found)} vulnerabilities"
        + (f", {len(ignored)} ignored (scripts/audit-ignore.txt)" if ignored else "")
    )
    return (1 if found else 0), lines


def _strict() -> bool:
    return os.environ.get("CDC_AUDIT_STRICT", "") not in ("", "0")


def main() -> int:
    try:
        ignores = read_ignores()
    except ValueError as exc:
        print(f"dependency audit: {exc}", file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "pip_audit", "--local", "--skip-editable", "--format", "json"]
    argv += ["--progress-spinner", "off", "--timeout", "30"]  # ignores applied in `judge`
    try:
        run = subprocess.run(  # nosec B603  # fixed argv, our own interpreter
            argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"dependency audit SKIPPED: pip-audit gave no answer in {TIMEOUT_S} s")
        return 1 if _strict() else 0
    if "No module named pip_audit" in run.stderr:
        print("pip-audit is not installed; run: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        print(
            f"dependency audit SKIPPED: pip-audit could not get vulnerability data "
            f"(exit {run.returncode}): {last}"
        )
        return 1 if _strict() else 0
    status, lines = judge(report, ignores)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
