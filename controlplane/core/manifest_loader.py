"""Load and validate pipeline manifests with ``file:line:column`` error locations.

The mapping from a pydantic error to a position is pure: PyYAML composes each document into a
node tree whose marks carry line and column, and a pydantic ``loc`` path (``spec.sink.postgres.
port``) is walked down that tree. Only `load_manifests` touches the file system (and stdin).

Reported problems:
- YAML syntax errors, duplicate keys (PyYAML would silently keep the last one);
- hostile or meaningless YAML (decision 0090): a file over `MAX_BYTES`, any explicit tag (``!x``,
  ``!!int``, ``!!python/...``), nesting deeper than `MAX_DEPTH`, an alias inside its own anchor,
  aliases that would expand to more than `MAX_ALIAS_NODES` nodes, a key that is not a scalar, a
  value PyYAML cannot construct (``2020-13-45``), a number YAML 1.1 reads otherwise than YAML
  1.2 (``05432``, ``54:32``, ``0b1``, ``1_000``), a file with no pipeline at all (empty, only
  comments, ``null``), unreadable stdin; each with ``file:line:column`` (the file alone for size
  and reading), never a traceback;
- schema errors from `manifest.Pipeline`, unknown keys with a "did you mean" suggestion;
- across documents: the same pipeline name twice, and pipelines on the same Cassandra cluster
  that would need two different Debezium agents (see docs/decisions/0013).
"""

from __future__ import annotations

import difflib
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from controlplane.core.errors import ManifestError, UsageError
from controlplane.core.manifest import API_VERSION, KIND, Pipeline

STDIN = "<stdin>"
_INLINE_CREDENTIAL_ADVICE = (
    "inline passwords are not allowed; reference the secret instead: "
    "passwordSecret: {env: VAR} | {file: path, key: k} | {vault: {path: p, key: k}}"
)

Loc = tuple[str | int, ...]

#: Deepest nesting a manifest may have. A real one is about 7 deep; PyYAML's composer recurses per
#: level (a few hundred levels exhaust Python's stack), so anything deeper is refused while
#: composing, before it can crash.
MAX_DEPTH = 64
#: Largest manifest file (or stdin) read: a real one is a few KiB. Checked before parsing, so a
#: huge file is refused without being read whole.
MAX_BYTES = 1024 * 1024
#: Most nodes that aliases may add to a file when expanded (each ``*a`` counts the size of what
#: ``&a`` names, aliases in it included). Composing and every walk here share aliased nodes, but
#: whatever gets the constructed data (pydantic, ``json.dumps``) sees each alias expanded: a
#: "billion laughs" document is refused at the alias that passes the bound.
MAX_ALIAS_NODES = 10_000
_TAG_SHORTHAND = "tag:yaml.org,2002:"
#: Plain numbers PyYAML (YAML 1.1) reads in a way YAML 1.2's core schema and JSON do not:
#: ``05432`` is octal 2842, ``54:32`` base 60 (3272), ``0b101`` binary, ``1_000`` 1000. A port
#: written ``05432`` must not quietly become 2842.
_YAML11_NUMBER = re.compile(
    r"[-+]?(?:0[0-7_]+|0b[01_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|.*_.*)$"
)


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest, where it is and what to do about it."""

    location: str | None
    message: str
    hint: str | None = None

    def to_error(self, more: int = 0) -> ManifestError:
        message = self.message + (f" (and {more} more problem(s))" if more else "")
        return ManifestError(message, location=self.location, hint=self.hint)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass(frozen=True)
class LoadedManifest:
    """A validated pipeline and where it was defined (``file:line:column`` of its name)."""

    pipeline: Pipeline
    source: str
    location: str


# --- pure: a SafeLoader that refuses what a manifest never needs ---------------------------


class _Refused(yaml.YAMLError):
    """A document the hardened loader will not compose; carries where and why."""

    def __init__(self, mark: Any, message: str, hint: str) -> None:
        super().__init__(message)
        self.line: int = mark.line + 1 if mark else 1
        self.column: int = mark.column + 1 if mark else 1
        self.message = message
        self.hint = hint


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG_SHORTHAND) if tag.startswith(_TAG_SHORTHAND) else tag


class _ManifestLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, composing only plain YAML: no explicit tags (manifests are plain
    mappings, lists and scalars; a tag either fails later with a traceback, ``!!int abc``, or is
    an attempt at something else, ``!!python/object``), nesting at most `MAX_DEPTH` deep, and no
    alias inside the node it names (``&a [*a]`` would make every walk endless)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()
        self._sizes: dict[int, int] = {}
        self._aliased = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _Refused(
                    event.start_mark,
                    f"the alias *{event.anchor} is inside the node &{event.anchor} it refers to",
                    "a manifest cannot be recursive; write the value out",
                )
            if event.anchor in self.anchors:  # else PyYAML reports the undefined alias
                self._aliased += self._size(self.anchors[event.anchor])
                if self._aliased > MAX_ALIAS_NODES:
                    raise _Refused(
                        event.start_mark,
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes (at *{event.anchor})",
                        "a manifest needs few aliases; write the values out",
                    )
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise _Refused(
                event.start_mark,
                f"YAML tags are not allowed in a manifest (found {_show_tag(tag)})",
                "remove the tag; quote the value if it must be a string",
            )
        if self._depth >= MAX_DEPTH:
            raise _Refused(
                event.start_mark,
                f"nested more than {MAX_DEPTH} levels deep",
                "a pipeline manifest is a few levels deep; check the indentation and brackets",
            )
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)

    def _size(self, node: Node) -> int:
        """Nodes in `node` with every alias expanded (memoised: shared nodes count once here,
        and the depth is at most `MAX_DEPTH`)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            size += sum(self._size(item) for item in node.value)
        self._sizes[id(node)] = size
        return size


def _compose_all(text: str) -> list[Node]:
    loader = _ManifestLoader(text)
    try:
        roots: list[Node] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                roots.append(node)
        return roots
    finally:
        loader.dispose()


def _nodes(root: Node) -> list[Node]:
    """Every node under `root` once (aliases share nodes: visiting each once keeps a
    "billion laughs" document linear), parents before children; iterative."""
    seen: set[int] = set()
    out: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        if isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                stack.extend((value, key))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
    return out


def _unconstructable(root: Node, source: str) -> list[ManifestProblem]:
    """Keys that are not scalars and scalars PyYAML resolves but cannot construct."""
    problems: list[ManifestProblem] = []
    constructor = yaml.SafeLoader("")
    for node in _nodes(root):
        if isinstance(node, MappingNode):
            for key, _ in node.value:
                if not isinstance(key, ScalarNode):
                    problems.append(
                        ManifestProblem(
                            _fmt(source, key),
                            "a mapping key must be a plain scalar, not a "
                            + ("list" if isinstance(key, SequenceNode) else "mapping"),
                            "manifest keys are names such as `spec` or `tables`",
                        )
                    )
        elif isinstance(node, ScalarNode) and node.tag == _TAG_SHORTHAND + "timestamp":
            try:
                constructor.construct_yaml_timestamp(node)
            except (ValueError, OverflowError):
                problems.append(
                    ManifestProblem(
                        _fmt(source, node),
                        f"{node.value!r} looks like a date but is not one",
                        "quote it to make it a string",
                    )
                )
        elif (
            isinstance(node, ScalarNode)
            and node.tag in (_TAG_SHORTHAND + "int", _TAG_SHORTHAND + "float")
            and _YAML11_NUMBER.match(node.value)
        ):
            try:
                number: Any = (
                    constructor.construct_yaml_int(node)
                    if node.tag.endswith(":int")
                    else constructor.construct_yaml_float(node)
                )
            except (ValueError, OverflowError):
                number = "something else"
            problems.append(
                ManifestProblem(
                    _fmt(source, node),
                    f"{node.value!r} is a YAML 1.1 number, read as {number!r}; YAML 1.2 and "
                    "JSON read it differently",
                    "write the number in decimal (or 0x.. hex), or quote it to make it a string",
                )
            )
    return problems


# --- pure: positions -----------------------------------------------------------------------


def _fmt(source: str, node: Node | None, *, end: bool = False) -> str:
    if node is None:
        return f"{source}:1:1"
    mark = node.end_mark if end else node.start_mark
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def _child(node: Node, part: str | int) -> tuple[Node, Node] | None:
    """(key node, value node) of `part` under `node`, or None when absent."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: Node = node.value[part]
        return item, item
    return None


def locate(root: Node, loc: Loc, *, want_key: bool = False) -> tuple[Node, int]:
    """Walk `loc` down a composed YAML tree.

    Returns the deepest node reached and how many parts of `loc` were resolved. With `want_key`
    the last part resolves to its key node (where an unknown key is written) instead of its value.
    """
    node = root
    for depth, part in enumerate(loc):
        found = _child(node, part)
        if found is None:
            return node, depth
        key, value = found
        if want_key and depth == len(loc) - 1:
            return key, depth + 1
        node = value
    return node, len(loc)


def _key_node(root: Node, loc: Loc) -> Node:
    """The key node naming `loc` (its value node for sequence items, the root for ``()``)."""
    if not loc:
        return root
    node, resolved = locate(root, loc, want_key=True)
    return node if resolved == len(loc) else locate(root, loc)[0]


# --- pure: suggestions ---------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Drop ``X | None`` so the walk sees X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (for the "did you mean" list)."""
    current: Any = Pipeline
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            fields = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        elif origin in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def allowed_keys(loc: Loc) -> list[str]:
    """YAML keys the mapping at `loc` accepts."""
    model = _model_at(loc)
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def suggest(key: str, allowed: Sequence[str]) -> str | None:
    """The closest allowed key, or None when nothing is close (difflib ratio >= 0.6)."""
    matches = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not matches:
        folded = {a.lower(): a for a in allowed}
        return folded.get(key.lower().replace("_", "").replace("-", ""))
    return matches[0]


# --- pure: documents -----------------------------------------------------------------------


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _duplicate_keys(node: Node, source: str) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []
    for mapping in _nodes(node):
        if not isinstance(mapping, MappingNode):
            continue
        seen: dict[str, Node] = {}
        for key, _ in mapping.value:
            if not isinstance(key, ScalarNode):
                continue
            if key.value in seen:
                first = _fmt(source, seen[key.value])
                problems.append(
                    ManifestProblem(
                        _fmt(source, key),
                        f"duplicate key {key.value!r} (first at {first})",
                        "YAML keeps only the last one; remove one of them",
                    )
                )
            else:
                seen[key.value] = key
    return problems


def _problem_from_error(err: Any, root: Node, source: str) -> ManifestProblem:
    """Turn one pydantic error dict into a positioned problem."""
    loc: Loc = tuple(err["loc"])
    kind: str = err["type"]
    msg: str = err["msg"].removeprefix("Value error, ")
    path = _dotted(loc)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        node, _ = locate(root, loc, want_key=True)
        allowed = allowed_keys(loc[:-1])
        if key == "password":
            hint: str | None = _INLINE_CREDENTIAL_ADVICE
        else:
            best = suggest(key, allowed)
            hint = f"did you mean {best!r}?" if best else None
            if allowed:
                hint = (hint + " " if hint else "") + f"allowed keys: {', '.join(allowed)}"
        parent = _dotted(loc[:-1]) if loc[:-1] else "the document"
        return ManifestProblem(_fmt(source, node), f"unknown key {key!r} in {parent}", hint)
    if kind == "missing":
        parent_loc = loc[:-1]
        node = _key_node(root, parent_loc)
        where = _dotted(parent_loc) if parent_loc else "the document"
        hint = None
        if loc and loc[-1] == "passwordSecret":
            hint = "add passwordSecret: {env: VAR} (or a file/vault reference)"
        return ManifestProblem(
            _fmt(source, node), f"missing required key {loc[-1]!r} in {where}", hint
        )
    node, _ = locate(root, loc)
    hint = None
    if loc and loc[-1] == "passwordSecret" and kind in ("model_type", "dict_type"):
        hint = _INLINE_CREDENTIAL_ADVICE
    elif kind == "literal_error" and loc == ("apiVersion",):
        hint = f"this cdcctl reads apiVersion {API_VERSION}"
    elif kind == "literal_error" and loc == ("kind",):
        hint = f"the only kind is {KIND}"
    return ManifestProblem(_fmt(source, node), f"{path}: {msg}", hint)


def check_text(
    text: str, source: str = STDIN
) -> tuple[list[LoadedManifest], list[ManifestProblem]]:
    """Validate every document in `text`; pure. Returns the valid pipelines and all problems."""
    loaded: list[LoadedManifest] = []
    problems: list[ManifestProblem] = []
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return [], [_too_large(source)]
    try:
        roots = _compose_all(text)
    except _Refused as exc:
        location = f"{source}:{exc.line}:{exc.column}"
        return [], [ManifestProblem(location, exc.message, exc.hint)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        detail = " ".join(p for p in (exc.context, exc.problem) if p)
        return [], [ManifestProblem(location, f"invalid YAML: {detail}", "fix the YAML syntax")]
    except yaml.YAMLError as exc:
        return [], [ManifestProblem(source, f"invalid YAML: {exc}")]
    except RecursionError:  # not expected below MAX_DEPTH; never a traceback all the same
        return [], [ManifestProblem(f"{source}:1:1", "nested too deeply to read")]

    documents = [r for r in roots if not (isinstance(r, ScalarNode) and r.tag.endswith(":null"))]
    if not documents:
        # An empty file, only comments, or `null`: validating nothing must not pass.
        return [], [
            ManifestProblem(
                f"{source}:1:1",
                f"no pipeline in {source}",
                f"a manifest holds at least one document starting with `apiVersion: "
                f"{API_VERSION}` and `kind: {KIND}`",
            )
        ]
    for root in documents:
        if not isinstance(root, MappingNode):
            problems.append(
                ManifestProblem(
                    _fmt(source, root),
                    "a manifest document must be a mapping",
                    f"start with `apiVersion: {API_VERSION}` and `kind: {KIND}`",
                )
            )
            continue
        bad = _unconstructable(root, source)
        if bad:
            problems.extend(bad)
            continue
        dupes = _duplicate_keys(root, source)
        if dupes:
            problems.extend(dupes)
            continue
        try:
            data = yaml.SafeLoader("").construct_document(root)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else _fmt(source, root)
            parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
            detail = " ".join(p for p in parts if p) or str(exc)
            problems.append(ManifestProblem(where, f"cannot read this document: {detail}"))
            continue
        try:
            # File references (tls.caFile) are relative to the manifest's folder.
            pipeline = Pipeline.model_validate(data, context={"base_dir": _base_dir(source)})
        except ValidationError as exc:
            problems.extend(_problem_from_error(e, root, source) for e in exc.errors())
            continue
        name_node, _ = locate(root, ("metadata", "name"))
        loaded.append(LoadedManifest(pipeline, source, _fmt(source, name_node)))
    return loaded, problems


def _too_large(source: str) -> ManifestProblem:
    return ManifestProblem(
        source,
        f"manifest is larger than {MAX_BYTES // 1024} KiB",
        "a pipeline manifest is a few KiB; split it into files or check that -f names a manifest",
    )


def _base_dir(source: str) -> Path:
    return Path.cwd() if source == STDIN else Path(source).parent


def check_across(manifests: Sequence[LoadedManifest]) -> list[ManifestProblem]:
    """Problems only visible with all manifests together."""
    problems: list[ManifestProblem] = []
    by_name: dict[str, LoadedManifest] = {}
    for m in manifests:
        first = by_name.setdefault(m.pipeline.name, m)
        if first is not m:
            problems.append(
                ManifestProblem(
                    m.location,
                    f"pipeline {m.pipeline.name!r} is defined twice: "
                    f"{first.location} and {m.location}",
                    "pipeline names must be unique; rename or remove one",
                )
            )
    # One Debezium agent runs per Cassandra node and captures every CDC table on it, so all
    # pipelines reading one cluster share its topic prefix and Kafka.
    by_node: dict[str, LoadedManifest] = {}
    for m in manifests:
        for node in m.pipeline.spec.source.cassandra.contact_points:
            first = by_node.setdefault(node, m)
            if first is m:
                continue
            a, b = first.pipeline, m.pipeline
            if a.topic_prefix != b.topic_prefix or set(a.spec.kafka.bootstrap_servers) != set(
                b.spec.kafka.bootstrap_servers
            ):
                problems.append(
                    ManifestProblem(
                        m.location,
                        f"pipelines {a.name!r} ({first.location}) and {b.name!r} read Cassandra "
                        f"node {node} but use different kafka.topicPrefix/bootstrapServers",
                        "one Debezium agent serves a Cassandra node; give both pipelines the "
                        "same spec.kafka.topicPrefix and bootstrapServers",
                    )
                )
                break
    return problems


# --- I/O -----------------------------------------------------------------------------------


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def _read_stdin() -> str:
    """Standard input, looked up when read (tests and callers swap it), at most one byte more
    than `MAX_BYTES` characters (enough for `check_text` to refuse it)."""
    stream = sys.stdin
    if stream is None:  # started with stdin closed
        raise OSError("standard input is closed")
    return stream.read(MAX_BYTES + 1)


def check_manifests(
    paths: Iterable[str | Path], *, read_stdin: Callable[[], str] | None = None
) -> tuple[list[LoadedManifest], list[ManifestProblem]]:
    """Read files, directories (``*.yaml``/``*.yml``, sorted) and ``-`` (stdin); check all."""
    loaded: list[LoadedManifest] = []
    problems: list[ManifestProblem] = []
    for raw in paths:
        if isinstance(raw, str) and not raw.strip():
            # Path("") is the current directory: an empty -f must not validate whatever is there.
            raise UsageError(
                "-f/--filename is empty",
                hint="name a manifest file, a directory of *.yaml manifests, or - for stdin",
            )
        if str(raw) == "-":
            try:
                text = read_stdin() if read_stdin is not None else _read_stdin()
            except (OSError, UnicodeDecodeError, AttributeError) as exc:
                problems.append(ManifestProblem(STDIN, f"cannot read manifest: {exc}"))
                continue
            found, probs = check_text(text, STDIN)
            loaded.extend(found)
            problems.extend(probs)
            continue
        path = Path(raw)
        if not path.exists():
            problems.append(
                ManifestProblem(str(path), "no such file or directory", "check the -f path")
            )
            continue
        files = _files(path)
        if path.is_dir() and not files:
            problems.append(
                ManifestProblem(str(path), "directory holds no *.yaml or *.yml manifests")
            )
        for file in files:
            try:
                with file.open("rb") as stream:
                    raw_bytes = stream.read(MAX_BYTES + 1)  # never more than the limit
                if len(raw_bytes) > MAX_BYTES:
                    problems.append(_too_large(str(file)))
                    continue
                text = raw_bytes.decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(ManifestProblem(str(file), f"cannot read manifest: {exc}"))
                continue
            found, probs = check_text(text, str(file))
            loaded.extend(found)
            problems.extend(probs)
    problems.extend(check_across(loaded))
    return loaded, problems


def load_manifests(
    paths: Iterable[str | Path], *, read_stdin: Callable[[], str] | None = None
) -> list[LoadedManifest]:
    """Like `check_manifests`, but raise `ManifestError` (the first problem) on any problem."""
    loaded, problems = check_manifests(paths, read_stdin=read_stdin)
    if problems:
        raise problems[0].to_error(more=len(problems) - 1)
    return loaded


def load_text(text: str, source: str = STDIN) -> list[LoadedManifest]:
    """Validate manifests given as text (stdin, tests); raise `ManifestError` on any problem."""
    loaded, problems = check_text(text, source)
    problems.extend(check_across(loaded))
    if problems:
        raise problems[0].to_error(more=len(problems) - 1)
    return loaded
