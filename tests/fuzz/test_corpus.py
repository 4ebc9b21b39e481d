"""The hostile inputs of issue 12 (and decision 0090), kept as files and run on every test run.

`corpus/index.json` names each file with the exit code `cdcctl validate` must give and a piece
of its message (``{file}`` stands for the path); ``why`` says what it did before, ``open`` marks
an input still accepted that should not be (an issue item not done yet): its test is an
expected failure, strict, so the day it is fixed the run fails until ``open`` is removed.

Each file goes through `validate` in all three formats and through `plan` without a stack (3
for a bad manifest, else 5), with `harness`'s rule: no traceback, no crash log, valid JSON and
GitHub annotations. A crash the fuzzer finds is added here with its fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import harness

CORPUS = Path(__file__).parent / "corpus"
INDEX: dict[str, dict[str, Any]] = json.loads((CORPUS / "index.json").read_text(encoding="utf-8"))


def cases() -> list[Any]:
    out = []
    for name, case in sorted(INDEX.items()):
        marks = [pytest.mark.xfail(reason=case["open"], strict=True)] if "open" in case else []
        out.append(pytest.param(name, case, id=name, marks=marks))
    return out


def test_every_corpus_file_is_indexed() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "index.json"}
    assert files == set(INDEX)
    assert all(case["exit"] in harness.VALIDATE_EXITS for case in INDEX.values())


@pytest.mark.parametrize(("name", "case"), cases())
def test_corpus_case(name: str, case: dict[str, Any], work: Path) -> None:
    path = CORPUS / name
    crashes = work / "state" / "cdcctl"
    table = harness.validate(path, "table", crashes)
    assert table.code == case["exit"], table.where()
    assert case["stderr"].format(file=path) in table.err, table.where()
    for fmt in ("json", "github"):
        assert harness.validate(path, fmt, crashes).code == case["exit"]
    planned = harness.plan(path, work / "no-stack", "table", crashes)
    assert planned.code == (3 if case["exit"] == 3 else 5), planned.where()
