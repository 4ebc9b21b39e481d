"""Fuzzing manifests through `cdcctl validate`, `cdcctl plan` (no stack) and `cdcctl manifest
schema` (issue 12, item 4).

Inputs start from real manifests (examples/pipeline.yaml, the tests' local pipeline) and are
mutated three ways: the data (keys deleted, renamed, added; values replaced by hostile strings,
numbers, booleans, nulls, lists and mappings), the YAML text (hostile snippets inserted, lines
deleted, duplicated, re-indented, characters replaced) and the bytes (invalid UTF-8, NUL). File
names are hostile too (Rich markup, ``,`` and ``:`` that GitHub annotations must escape).

Each example must keep `harness`'s rule: a documented exit code, no traceback, no crash log,
valid ``-o json`` and ``-o github``. ``plan`` must agree with ``validate`` (3 for a bad manifest,
else 5: nothing is reachable). Whatever ``validate`` accepts must also be valid under the JSON
Schema ``manifest schema`` prints (editors check manifests with it).

Examples per test: the ``default`` profile in every run, ``HYPOTHESIS_PROFILE=nightly`` (``./dev
fuzz``) for many more; see conftest.py.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from controlplane.core.manifest_loader import check_text
from tests.fuzz import harness
from tests.manifests import local_pipeline

ROOT = Path(__file__).resolve().parents[2]
SEED_TEXTS = [
    (ROOT / "examples" / "pipeline.yaml").read_text(encoding="utf-8"),
    local_pipeline("fuzz", "shop", ["users", "orders"]),
]
SEED_DATA = [yaml.safe_load(t) for t in SEED_TEXTS]

HOSTILE = [
    "[/]",
    "[bold]x[/bold]",
    "[red]",
    "\x00",
    "\ud800",
    "\udcff",
    "\u202e",
    "\ufeff",
    "\u2028",
    "\x85",
    "\x1b[31m",
    "'",
    '"',
    "\\",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "$fn$",
    "${env:HOME}",
    "${file:/etc/passwd:x}",
    "%0A",
    "%",
    "::error::x",
    ",",
    ":",
    "&a",
    "*a",
    "!!python/object:os.system",
    "{",
    "}",
    "- ",
    "? ",
    "#",
    "|",
    ">",
    "---",
    "...",
    "<<",
    "=",
    "~",
    "null",
    "yes",
    "on",
    "0x1F",
    "0o17",
    "1e309",
    ".inf",
    "-.nan",
    "2020-13-45",
    "2001-12-14t21:59:43.10-05:00",
    "9" * 40,
    "a" * 300,
    "cdc?sslfactory=org.postgresql.ssl.NonValidatingFactory&x=",
    "not a host; rm -rf /",
    "http://:::",
    "..",
    "é",
    "日本語",
    "😀",
]

# Pieces of YAML syntax, inserted into the text at random places.
SNIPPETS = [
    "!mytag ",
    "!!int ",
    "!!python/object/apply:os.system ['id'] ",
    "!!binary ",
    "&a ",
    "*a",
    "*undefined",
    "<<: *a\n",
    "<<: [1, 2]\n",
    "? [a, b]\n: 1\n",
    "%YAML 1.1\n---\n",
    "%TAG ! tag:example.com,2000:\n---\n",
    "---\n",
    "...\n",
    "[" * 80,
    "]" * 3,
    "{" * 80,
    "{a: 1, a: 2}",
    '"unclosed',
    "'unclosed",
    "|\n",
    ">-\n",
    "\t",
    "\x00",
    "\ufeff",
    "\r",
    "- ",
    ": ",
    ", ",
    "# comment\n",
    "a: &x [*x]\n",
    "=",
    "~",
    "2020-13-45",
    "\ud800",
]

FILE_NAMES = ["m.yaml", "[/]x.yaml", "[bold]b[/bold].yaml", "a,b:c.yaml", "%0A.yaml", "é 😀.yaml"]


# --- strategies ------------------------------------------------------------------------------


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(HOSTILE),
        st.text(max_size=40),
        st.lists(st.sampled_from(HOSTILE), min_size=2, max_size=5).map("".join),
    )


def values() -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.one_of(st.text(max_size=12), st.sampled_from(HOSTILE)), inner, max_size=4
            ),
        ),
        max_leaves=12,
    )


def slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key-or-index) in a loaded manifest, the root's keys included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from slots(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield node, i
            yield from slots(value)


@st.composite
def mutated_data(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(SEED_DATA)))
    for _ in range(draw(st.integers(1, 4))):
        places = list(slots(data))
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename", "wrap", "str"]))
        if op == "replace":
            container[key] = draw(values())
        elif op == "delete":
            del container[key]
        elif op == "add" and isinstance(container, dict):
            container[draw(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12)))] = draw(
                values()
            )
        elif op == "rename" and isinstance(container, dict):
            new = draw(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12), st.integers()))
            container[new] = container.pop(key)
        elif op == "wrap":
            container[key] = [container[key]]
        elif op == "str":
            container[key] = str(container[key])
    if draw(st.integers(0, 9)) == 0:  # sometimes not a mapping at all
        data = draw(values())
    return data


def dump(data: Any, flow: bool | None, unicode: bool) -> bytes:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=unicode, sort_keys=False)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    data = draw(mutated_data())
    return dump(data, draw(st.sampled_from([False, None, True])), draw(st.booleans()))


@st.composite
def textual(draw: st.DrawFn) -> bytes:
    lines = draw(st.sampled_from(SEED_TEXTS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        op = draw(st.sampled_from(["insert", "insert", "delete", "dup", "indent", "replace"]))
        line = lines[i] if lines else ""
        if op == "insert":
            at = draw(st.integers(0, len(line)))
            piece = draw(st.one_of(st.sampled_from(SNIPPETS), st.sampled_from(HOSTILE)))
            lines[i : i + 1] = [line[:at] + piece + line[at:]]
        elif op == "delete" and lines:
            del lines[i]
        elif op == "dup" and lines:
            lines.insert(i, line)
        elif op == "indent":
            lines[i : i + 1] = [
                draw(st.sampled_from(["", " ", "  ", "\t", "    "])) + line.lstrip()
            ]
        elif op == "replace" and line:
            at = draw(st.integers(0, len(line) - 1))
            lines[i : i + 1] = [line[:at] + draw(st.characters()) + line[at + 1 :]]
    raw = "".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 7)) == 0:  # bytes that are not UTF-8
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


manifests = st.one_of(structured(), textual())


# --- fixtures --------------------------------------------------------------------------------


def crash_dir(work: Path) -> Path:
    return work / "state" / "cdcctl"


def write(work: Path, name: str, raw: bytes) -> Path:
    folder = work / "in"
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


# --- the properties --------------------------------------------------------------------------


@given(raw=manifests, name=st.sampled_from(FILE_NAMES), fmt=st.sampled_from(["table", "github"]))
def test_validate_keeps_its_exit_codes_and_formats(
    work: Path, raw: bytes, name: str, fmt: str
) -> None:
    path = write(work, name, raw)
    as_json = harness.validate(path, "json", crash_dir(work))
    other = harness.validate(path, fmt, crash_dir(work))
    assert other.code == as_json.code
    event(f"validate exit {as_json.code}")


@given(raw=manifests, fmt=st.sampled_from(["table", "json"]))
def test_plan_without_a_stack_agrees_with_validate(work: Path, raw: bytes, fmt: str) -> None:
    path = write(work, "m.yaml", raw)
    checked = harness.validate(path, "json", crash_dir(work))
    planned = harness.plan(path, work / "no-stack", fmt, crash_dir(work))
    assert planned.code == (3 if checked.code == 3 else 5), planned.where()
    event(f"plan exit {planned.code}")
    assert not (work / "no-stack").exists()  # plan created nothing


@pytest.fixture(scope="module")
def schema(work: Path) -> dict[str, Any]:
    result = harness.cdcctl("manifest", "schema")
    harness.no_crash(result, frozenset({0}), crash_dir(work))
    loaded: dict[str, Any] = json.loads(result.out)
    jsonschema.validators.validator_for(loaded).check_schema(loaded)
    return loaded


@given(raw=structured())
def test_what_validate_accepts_the_printed_json_schema_accepts(
    work: Path, schema: dict[str, Any], raw: bytes
) -> None:
    path = write(work, "m.yaml", raw)
    if harness.validate(path, "json", crash_dir(work)).code != 0:
        return
    data = yaml.safe_load(raw.decode("utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, "\n".join(errors)


@settings(max_examples=max(settings.default.max_examples * 5, 100))
@given(raw=manifests)
def test_the_loader_alone_never_raises(raw: bytes) -> None:
    """The pure loader, many more examples (it takes about a millisecond per document)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    loaded, problems = check_text(text, "f.yaml")
    assert loaded or problems
    for p in problems:
        assert p.message
        assert p.location is None or p.location.startswith("f.yaml")


def test_the_strategies_reach_both_outcomes(work: Path) -> None:
    """The generators are not vacuous: the seeds are valid, and a mutation can break them."""
    for text in SEED_TEXTS:
        loaded, problems = check_text(text, "seed.yaml")
        assert loaded
        assert not problems
    broken = dump({**SEED_DATA[0], "kind": math.nan}, None, True)
    assert harness.validate(write(work, "m.yaml", broken), "json", crash_dir(work)).code == 3
