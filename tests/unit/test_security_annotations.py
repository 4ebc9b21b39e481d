"""Every `# nosec` names the bandit check it silences and says why (issue 12, item 5).

A blanket ``# nosec`` (no check id) hides every finding on its line, present and future; one
without a reason cannot be reviewed. SQL built from identifiers (B608) is where that matters
most: the reason says how the identifiers are quoted. The reason follows the id after ``#``,
``-`` or an em dash: ``# nosec B608  # quoted identifiers``.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)$")
JUSTIFIED = re.compile(r"\s+B\d{3}(?:\s*,\s*B\d{3})*\s*(?:#|-|—)\s*\w.*")


def unjustified(source: str) -> list[int]:
    """Lines whose comment holds a nosec without a check id and a reason (comments only: a
    string or docstring mentioning nosec is not one)."""
    bad = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        m = NOSEC.search(tok.string) if tok.type == tokenize.COMMENT else None
        if m and not JUSTIFIED.fullmatch(m["rest"]):
            bad.append(tok.start[0])
    return bad


def test_every_nosec_names_its_check_and_a_reason() -> None:
    found = []
    for folder in ("controlplane", "scripts", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += [f"{path.relative_to(ROOT)}:{n}" for n in unjustified(path.read_text())]
    assert not found, "nosec without a check id and a reason:\n" + "\n".join(found)


def test_the_check_tells_them_apart() -> None:
    assert unjustified('x = f"SELECT {a}"  # nosec') == [1]
    assert unjustified('x = f"SELECT {a}"  # nosec B608') == [1]
    assert unjustified('x = f"SELECT {a}"  # noqa: S608  # nosec B608') == [1]
    assert unjustified('x = f"SELECT {a}"  # nosec B608  # quoted identifiers') == []
    assert unjustified('x = f"SELECT {a}"  # nosec B608 - quoted identifiers') == []
    assert unjustified("import subprocess  # nosec B404, B603 — fixed argv") == []
