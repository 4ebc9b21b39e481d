"""scripts/dependency_audit.py (`./dev audit`): what fails CI, what is a logged skip."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dependency_audit.py"
_spec = importlib.util.spec_from_file_location("dependency_audit", SCRIPT)
assert _spec is not None
assert _spec.loader is not None
audit: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)

NOT_FOUND = "Dependency not found on PyPI and could not be audited: x (1.0)"
VULN = {"id": "PYSEC-2099-1", "fix_versions": ["2.0"], "aliases": ["CVE-2099-1"]}


def report(*deps: dict[str, Any]) -> dict[str, Any]:
    self = {"name": "cass-cdc-pg", "skip_reason": "distribution marked as editable"}
    return {"dependencies": [self, *deps], "fixes": []}


def test_a_vulnerability_fails_with_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDC_AUDIT_STRICT", raising=False)
    status, lines = audit.judge(
        report({"name": "pyyaml", "version": "5.3", "vulns": [VULN]}), ignores={}
    )
    assert status == 1
    assert lines[0] == "VULNERABLE pyyaml 5.3: PYSEC-2099-1 (CVE-2099-1); fixed in 2.0"
    assert lines[-1] == "dependency audit: 1 dependencies audited, 1 vulnerabilities"


def test_an_ignored_vulnerability_passes_and_is_shown_with_its_reason() -> None:
    status, lines = audit.judge(
        report({"name": "pyyaml", "version": "5.3", "vulns": [VULN]}),
        ignores={"PYSEC-2099-1": "never loads untrusted YAML with it"},
    )
    assert status == 0
    assert "ignored pyyaml 5.3: PYSEC-2099-1 (never loads untrusted YAML with it)" in lines


def test_nothing_looked_up_is_a_logged_skip_unless_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """What this machine's package index gives: every per-version lookup unanswered."""
    skipped = report({"name": "x", "version": "1.0", "skip_reason": NOT_FOUND})
    monkeypatch.delenv("CDC_AUDIT_STRICT", raising=False)
    status, lines = audit.judge(skipped, ignores={})
    assert status == 0
    assert lines[-1].startswith("dependency audit SKIPPED: none of the 1 installed dependencies")
    monkeypatch.setenv("CDC_AUDIT_STRICT", "1")
    assert audit.judge(skipped, ignores={})[0] == 1


def test_partly_audited_lists_what_was_not(monkeypatch: pytest.MonkeyPatch) -> None:
    status, lines = audit.judge(
        report(
            {"name": "ok", "version": "1", "vulns": []},
            {"name": "x", "version": "1.0", "skip_reason": NOT_FOUND},
        ),
        ignores={},
    )
    assert status == 0
    assert lines == [
        "not audited (1): x 1.0",
        "dependency audit: 1 dependencies audited, 0 vulnerabilities",
    ]


def test_the_ignore_list_needs_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "ignore.txt"
    path.write_text("# comment\n\nGHSA-aaaa-bbbb-cccc  not reachable; until 2026-06-01\n")
    assert audit.read_ignores(path) == {"GHSA-aaaa-bbbb-cccc": "not reachable; until 2026-06-01"}
    path.write_text("PYSEC-2099-1\n")
    with pytest.raises(ValueError, match=r"ignore.txt:1: expected `ID  reason`"):
        audit.read_ignores(path)


def test_the_repositorys_ignore_list_is_well_formed() -> None:
    assert audit.read_ignores() == {}  # none ignored; an entry needs its reason
