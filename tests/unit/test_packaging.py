"""The first `./dev` run installs the project (pip builds it with setuptools): no screens of
deprecation warnings (decision 0080). Building needs the network, so the causes are checked here
on pyproject.toml; `pip wheel .` with setuptools 84 prints no deprecation warning."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_license_is_an_spdx_expression_the_build_backend_understands() -> None:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    project = data["project"]
    # A table (`{text = ...}`, `{file = ...}`) is deprecated since setuptools 77 and warned about
    # at every build; the SPDX string needs setuptools >= 77 (PEP 639).
    assert isinstance(project["license"], str)
    assert re.fullmatch(r"[A-Za-z0-9.\-+]+( (AND|OR|WITH) [A-Za-z0-9.\-+]+)*", project["license"])
    # PEP 639: license classifiers beside an expression are an error in setuptools >= 77.
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    requires = data["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert minimum is not None, setuptools
    assert int(minimum.group(1)) >= 77
