"""Findings of `cdcctl validate`, their exit code and their renderings (text, JSON, GitHub).

Exit codes (README, core/errors.py): 0 no problem · 3 at least one manifest problem (schema,
references, naming — offline) · 5 no manifest problem but a component check failed (``--online``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from controlplane.core.errors import ExternalServiceError, ManifestError

Check = Literal["manifest", "connect", "cassandra", "postgres", "secret"]

_LOCATION = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<col>\d+)$")


@dataclass(frozen=True)
class Finding:
    check: Check
    message: str
    location: str | None = None
    hint: str | None = None
    pipeline: str | None = None
    key: str | None = None  # a connector config key, for Connect's per-key errors

    @property
    def offline(self) -> bool:
        return self.check == "manifest"

    def position(self) -> tuple[str | None, int | None, int | None]:
        if not self.location:
            return None, None, None
        match = _LOCATION.match(self.location)
        if match is None:
            return self.location, None, None
        return match["file"], int(match["line"]), int(match["col"])

    def to_dict(self) -> dict[str, Any]:
        file, line, col = self.position()
        return {**asdict(self), "file": file, "line": line, "column": col}

    def text(self) -> str:
        where = f"{self.location}: " if self.location else ""
        key = f"[{self.key}] " if self.key else ""
        hint = f"\n    hint: {self.hint}" if self.hint else ""
        return f"{where}{self.check}: {key}{self.message}{hint}"


def exit_code(findings: Sequence[Finding]) -> int:
    if any(f.offline for f in findings):
        return ManifestError.exit_code
    if findings:
        return ExternalServiceError.exit_code
    return 0


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(finding: Finding) -> str:
    """A GitHub Actions workflow command: ``::error file=F,line=L,col=C,title=T::message``."""
    file, line, col = finding.position()
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
    if line is not None:
        props.append(f"line={line}")
    if col is not None:
        props.append(f"col={col}")
    title = f"cdcctl validate ({finding.check})"
    props.append(f"title={_escape_property(title)}")
    key = f"[{finding.key}] " if finding.key else ""
    message = key + finding.message + (f" — hint: {finding.hint}" if finding.hint else "")
    return f"::error {','.join(props)}::{_escape_data(message)}"
