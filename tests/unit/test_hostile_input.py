"""Hostile and malformed input (decision 0090): every case a reviewer reproduced is refused with a
clear message and its location, or carried safely — never a traceback, never exit 0 for nothing.

- DDL: Cassandra column names reach PostgreSQL only as quoted identifiers or string literals;
  a small PostgreSQL lexer proves the generated statements have the same structure for a
  hostile name as for a plain one (function bodies included).
- The sink's JDBC URL: host and database validated in the manifest, percent-encoded anyway.
- DLQ replay: only the pipeline's own table topics, whatever a record's headers say.
- verify: the diff file never comes from Redis.
- Manifests and the CLI: YAML bombs and tags, empty files, booleans as integers, Rich markup.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from controlplane.cli import main
from controlplane.cli.output import OutputFormat, emit
from controlplane.core.ddl import (
    PG_MAX_IDENT_BYTES,
    UnsafeIdentifierError,
    dollar_quote,
    generate_ddl,
    quote_ident,
    quote_literal,
    sink_identifier_problem,
)
from controlplane.core.dlq import (
    H_OFFSET,
    H_PARTITION,
    H_TOPIC,
    RawRecord,
    confirmation,
    parse_record,
    plan_replay,
    replay_topics,
)
from controlplane.core.manifest_loader import MAX_ALIAS_NODES, MAX_DEPTH, check_text, load_text
from controlplane.core.render import jdbc_url
from controlplane.core.schema_model import TableModel
from tests.cli import cdcctl

EXAMPLE = (Path(__file__).parents[2] / "examples" / "pipeline.yaml").read_text()
REVIEWER = "\nRETURN NEW;END$fn$;DROP SCHEMA a CASCADE;SELECT $fn$"


# --- a PostgreSQL lexer, just enough to see statement structure ------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n\r]*)
  | (?P<block>/\*)
  | (?P<estring>[eE]'(?:\\.|''|[^'\\])*')
  | (?P<string>'(?:''|[^'])*')
  | (?P<ident>"(?:""|[^"])*")
  | (?P<param>\$\d+)
  | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
  | (?P<word>[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op>[^\s])
    """,
    re.VERBOSE | re.DOTALL,
)

Token = tuple[str, Any]


def lex(sql: str) -> list[Token]:
    """(kind, value) tokens; string and identifier values decoded, dollar-quoted bodies lexed
    recursively (PL/pgSQL and SQL bodies use the same lexical rules). Raises on anything
    unterminated: hostile text must never leave a quote open."""
    out: list[Token] = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        assert m is not None, f"cannot lex at {sql[pos : pos + 20]!r}"
        assert m.lastgroup is not None
        kind, text = m.lastgroup, m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "block":  # nested /* */
            depth, i = 1, pos
            while depth:
                assert i < len(sql), "unterminated block comment"
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(("comment", sql[m.start() : i]))
            pos = i
        elif kind == "dollar":
            end = sql.find(text, pos)
            assert end >= 0, f"unterminated dollar quote {text}"
            out.append(("body", lex(sql[pos:end])))
            pos = end + len(text)
        elif kind == "string":
            out.append(("string", text[1:-1].replace("''", "'")))
        elif kind == "estring":
            body = text[2:-1].replace("''", "'")
            out.append(("string", re.sub(r"\\(.)", r"\1", body, flags=re.DOTALL)))
        elif kind == "ident":
            out.append(("ident", text[1:-1].replace('""', '"')))
        elif kind == "word":
            out.append(("word", text.upper()))
        else:
            out.append((kind, text))
    return out


PLAIN = "plainname"


def _same_shape(hostile: list[Token], plain: list[Token], name: str) -> None:
    """`hostile` is `plain` with `name` in place of PLAIN — inside identifiers and strings only."""
    assert [k for k, _ in hostile] == [k for k, _ in plain]
    for (kind, got), (_, want) in zip(hostile, plain, strict=True):
        if kind == "body":
            _same_shape(got, want, name)
        elif kind in ("ident", "string"):
            expected = want.replace(f'"{PLAIN}"', quote_ident(name)).replace(PLAIN, name)
            assert got == expected
        else:
            assert got == want, f"{kind} token differs: {got!r} != {want!r}"


def table(name: str, where: str) -> TableModel:
    """A table with `name` as its one regular, clustering or partition key column."""
    cols = {
        "regular": [("id", "uuid", "partition_key", 0), ("c", "int", "clustering", 0)],
        "clustering": [("id", "uuid", "partition_key", 0), ("v", "text", "regular", -1)],
        "partition_key": [("c", "int", "clustering", 0), ("v", "text", "regular", -1)],
    }[where]
    kind = {"regular": "regular", "clustering": "clustering", "partition_key": "partition_key"}
    rows = [
        {"column_name": n, "type": t, "kind": k, "position": p, "clustering_order": "asc"}
        for n, t, k, p in cols
    ]
    position = -1 if where == "regular" else 0
    rows.append(
        {
            "column_name": name,
            "type": "text",
            "kind": kind[where],
            "position": position,
            "clustering_order": "asc",
        }
    )
    for r in rows:
        if r["kind"] != "clustering":
            r.pop("clustering_order")
    return TableModel.from_system_schema("ks", "t", rows)


HOSTILE_NAMES = [
    REVIEWER,
    "RETURN NEW;END$fn$;DROP SCHEMA a CASCADE;SELECT $fn$",
    'a"b',
    '"; DROP TABLE x; --',
    "it's",
    "back\\slash",
    "\\'; DROP SCHEMA a CASCADE; --",
    "-- comment",
    "/* open",
    "close */",
    "$$",
    "$fn_0$",
    "semi;colon",
    "new\nline",
    "cr\rreturn",
    "tab\there",
    "ünïcödé ✓",
    "a" * PG_MAX_IDENT_BYTES,
    "é" * (PG_MAX_IDENT_BYTES // 2),
]


@pytest.mark.parametrize("where", ["regular", "clustering", "partition_key"])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_column_name_is_only_ever_a_quoted_identifier_or_a_literal(
    name: str, where: str
) -> None:
    hostile = generate_ddl(table(name, where)).statements
    plain = generate_ddl(table(PLAIN, where)).statements
    assert len(hostile) == len(plain)
    for h, p in zip(hostile, plain, strict=True):
        tokens = lex(h)
        assert tokens[0] in (("word", "CREATE"), ("word", "ALTER"))
        assert ("op", ";") not in tokens, "a statement must be exactly one statement"
        _same_shape(tokens, lex(p), name)


def test_the_reviewers_name_cannot_end_a_function_body() -> None:
    ddl = generate_ddl(table(REVIEWER, "regular"))
    lww = next(s for s in ddl.statements if '"t__lww"' in s)
    assert "$fn$;DROP" in lww  # the name is there, inside a quoted identifier ...
    tag = re.search(r"AS (\$[A-Za-z0-9_]*\$)", lww)
    assert tag is not None
    assert tag.group(1) != "$fn$"  # ... and the body uses another tag
    assert lww.endswith(tag.group(1))
    assert lww.count(tag.group(1)) == 2
    # no comment carries a column name
    for statement in ddl.statements:
        for kind, text in _flatten(lex(statement)):
            if kind == "comment":
                assert "DROP" not in text
                assert "RETURN NEW;END" not in text


def _flatten(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for kind, value in tokens:
        out.extend(_flatten(value) if kind == "body" else [(kind, value)])
    return out


def test_plain_tables_keep_the_fn_tag() -> None:
    ddl = generate_ddl(table("amount", "regular"))
    assert all(s.count("$fn$") in (0, 2) for s in ddl.statements)
    assert any("AS $fn$\n" in s for s in ddl.statements)


def test_dollar_quote_picks_a_tag_absent_from_the_body() -> None:
    assert dollar_quote("\nBEGIN\n") == "$fn$\nBEGIN\n$fn$"
    body = "\n$fn$\n"
    quoted = dollar_quote(body)
    tag = quoted[: quoted.index("$", 1) + 1]
    assert tag != "$fn$"
    assert tag not in body
    assert quoted == f"{tag}{body}{tag}"
    # the derived tag too in the body: the next one is taken
    body2 = body + tag
    tag2 = dollar_quote(body2)[: dollar_quote(body2).index("$", 1) + 1]
    assert tag2 not in body2


def test_quote_literal_is_safe_whatever_standard_conforming_strings_says() -> None:
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("a\\b'") == "E'a\\\\b'''"
    assert lex(quote_literal("\\'; DROP SCHEMA a; --")) == [("string", "\\'; DROP SCHEMA a; --")]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("nul\x00byte", "NUL character"),
        ("x" * (PG_MAX_IDENT_BYTES + 1), "longer than PostgreSQL's 63 bytes"),
        ("é" * 32, "longer than PostgreSQL's 63 bytes"),
        ("lone\udcffsurrogate", "not valid Unicode"),
    ],
)
def test_names_postgresql_cannot_hold_are_refused_before_any_ddl(name: str, needle: str) -> None:
    with pytest.raises(UnsafeIdentifierError) as info:
        generate_ddl(table(name, "regular"))
    err = info.value
    assert err.exit_code == 5
    assert err.message.startswith(f"table ks.t, column {name!r}: ")
    assert needle in err.message
    assert "nothing was created" in err.message
    assert err.hint


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ('say "hi"', "double quote"),
        ('x") VALUES (1); DROP TABLE t; --', "double quote"),
        (" padded", "whitespace"),
        ("tab\t", "whitespace"),
        ("`name`", "strips as quote marks"),
        ("[name]", "strips as quote marks"),
    ],
)
def test_names_the_jdbc_sink_cannot_quote_are_named(name: str, needle: str) -> None:
    problem = sink_identifier_problem(name)
    assert problem is not None
    assert needle in problem


@pytest.mark.parametrize("name", ["amount", "MixedCase", "select", REVIEWER.strip(), "a`b", "[]"])
def test_names_the_jdbc_sink_quotes_correctly_pass(name: str) -> None:
    assert sink_identifier_problem(name) is None


# --- the sink's JDBC URL -----------------------------------------------------------------


def manifest(**replace: str) -> str:
    """The example manifest with whole lines replaced: {"old line": "new line"}."""
    text = EXAMPLE
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_jdbc_url_percent_encodes_even_what_validation_would_refuse() -> None:
    (loaded,) = load_text(EXAMPLE)
    p = loaded.pipeline
    pg = p.spec.sink.postgres.model_copy(
        update={"database": "cdc?sslfactory=org.postgresql.ssl.NonValidatingFactory&x=/#"}
    )
    sink = p.spec.sink.model_copy(update={"postgres": pg})
    hostile = p.model_copy(update={"spec": p.spec.model_copy(update={"sink": sink})})
    url = jdbc_url(hostile)
    path, _, query = url.partition("?")
    assert path.endswith("/cdc%3Fsslfactory%3Dorg.postgresql.ssl.NonValidatingFactory%26x%3D%2F%23")
    params = [kv.split("=", 1)[0] for kv in query.split("&")]
    # the one sslfactory is ours: verify-full against the JVM's trust store (no caFile given)
    assert params == ["stringtype", "ApplicationName", "sslmode", "sslfactory"]
    assert query.endswith(
        "&sslmode=verify-full&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory"
    )
    assert jdbc_url(p).startswith("jdbc:postgresql://127.0.0.1:5432/cdc?stringtype=unspecified&")


@pytest.mark.parametrize(("host", "url_host"), [("'::1'", "[::1]"), ("'[fd00::1]'", "[fd00::1]")])
def test_ipv6_hosts_are_bracketed_once(host: str, url_host: str) -> None:
    (loaded,) = load_text(manifest(**{"host: 127.0.0.1": f"host: {host}"}))
    assert jdbc_url(loaded.pipeline).startswith(f"jdbc:postgresql://{url_host}:5432/cdc?")


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("host: 127.0.0.1", 'host: "not a host; rm -rf /"', "is not a host name, IPv4 or IPv6"),
        ("host: 127.0.0.1", "host: db.example.com:5432", "is not an IPv6 address"),
        ("host: 127.0.0.1", "host: 300.1.1.1", "is not an IPv4 address"),
        ("host: 127.0.0.1", "host: 'fe80::1%eth0'", "IPv6 zone ids"),
        ("host: 127.0.0.1", "host: a/b", "is not a host name"),
        (
            "database: cdc ",
            'database: "cdc?sslfactory=org.postgresql.ssl.NonValidatingFactory&x=" ',
            "is not a database name",
        ),
        ("database: cdc ", "database: 'a b' ", "is not a database name"),
        ("database: cdc ", "database: 'cdc#x' ", "is not a database name"),
        ("database: cdc ", "database: 1cdc ", "is not a database name"),
        ("database: cdc ", f"database: {'d' * 64} ", "is not a database name"),
    ],
)
def test_host_and_database_are_validated_with_their_location(
    old: str, new: str, needle: str
) -> None:
    text = manifest(**{old: new})
    loaded, problems = check_text(text, "m.yaml")
    assert not loaded
    (problem,) = problems
    key = new.split(":")[0].strip()
    line = line_of(text, new.strip())
    column = text.splitlines()[line - 1].index(key) + len(key) + 3
    assert problem.location == f"m.yaml:{line}:{column}"
    assert needle in problem.message
    assert problem.message.startswith(f"spec.sink.postgres.{key}: ")


# --- DLQ replay ----------------------------------------------------------------------------


def dlq_record(offset: int, topic: str, partition: str = "0") -> Any:
    return parse_record(
        RawRecord(
            topic="demo.dlq",
            partition=0,
            offset=offset,
            timestamp_ms=1,
            key=b"k",
            value=b"v",
            headers=(
                (H_TOPIC, topic.encode()),
                (H_PARTITION, partition.encode()),
                (H_OFFSET, b"5"),
            ),
        )
    )


def test_replay_sends_only_to_the_pipelines_table_topics() -> None:
    (loaded,) = load_text(EXAMPLE)
    p = loaded.pipeline
    allowed = replay_topics(p.table_topic(t) for t in p.tables)
    assert allowed == {
        "demo.demo.users",
        "demo.demo.orders",
        "demo.demo.users.tombstones",
        "demo.demo.orders.tombstones",
    }
    records = [
        dlq_record(0, "demo.demo.users"),
        dlq_record(1, "_connect-configs"),
        dlq_record(2, "demo.demo.orders.tombstones"),
        dlq_record(3, "demo.dlq"),
        dlq_record(4, "demo.demo.users", partition="-1"),
        dlq_record(5, "other.demo.users"),
    ]
    plan = plan_replay(records, "demo.dlq", allowed_topics=allowed)
    assert [(m.source.raw.offset, m.topic) for m in plan.messages] == [
        (0, "demo.demo.users"),
        (2, "demo.demo.orders.tombstones"),
    ]
    reasons = {s.source.raw.offset: s.reason for s in plan.skipped}
    assert set(reasons) == {1, 3, 4, 5}
    assert "'_connect-configs', which is not one of this pipeline's table topics" in reasons[1]
    assert "'demo.dlq'" in reasons[3]
    assert "partition -1" in reasons[4]
    assert plan.commit == {0: 6}  # the group moves past refused records; they stay in the DLQ
    # named explicitly with --offset: still refused
    explicit = plan_replay(records, "demo.dlq", selected=[(0, 1)], allowed_topics=allowed)
    assert not explicit.messages
    assert len(explicit.skipped) == 1


def test_replay_question_lists_destination_topics_and_counts() -> None:
    allowed = replay_topics(["demo.demo.users", "demo.demo.orders"])
    records = [dlq_record(i, "demo.demo.users") for i in range(3)]
    records += [dlq_record(3, "demo.demo.orders"), dlq_record(4, "_connect-configs")]
    text = confirmation([plan_replay(records, "demo.dlq", allowed_topics=allowed)])
    assert text.splitlines() == [
        "Replay 4 record(s) to:",
        "  demo.demo.orders: 1",
        "  demo.demo.users: 3",
        "(1 record(s) skipped: see REASON with --dry-run)",
        "Send?",
    ]


def test_the_dlq_service_restricts_every_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane.core.target import ConnectAccess, Target
    from controlplane.services import dlq as svc

    (loaded,) = load_text(EXAMPLE)
    source = svc.DlqSource.of(loaded.pipeline, Target("t", ConnectAccess(url="http://c:1")))
    assert "demo.demo.users.tombstones" in source.replay_to
    assert "_connect-configs" not in source.replay_to
    raw = [dlq_record(0, "_connect-configs").raw, dlq_record(1, "demo.demo.users").raw]
    monkeypatch.setattr("controlplane.adapters.kafka.committed_offsets", lambda *_a, **_k: {})
    monkeypatch.setattr("controlplane.adapters.kafka.read_topic", lambda *_a, **_k: raw)
    (planned,) = svc.plan_replays([source])
    assert [m.topic for m in planned.plan.messages] == ["demo.demo.users"]
    assert "Replay 1 record(s) to:\n  demo.demo.users: 1" in svc.replay_question([planned])


# --- verify: the diff file -----------------------------------------------------------------


class FakeStore:
    def __init__(self, meta: dict[str, Any] | None) -> None:
        self.meta = meta
        self.updates: list[dict[str, Any]] = []

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self.meta

    def create_run(self, run_id: str, meta: dict[str, Any], tasks: Any) -> bool:
        return self.meta is None

    def update_run(self, run_id: str, **fields: Any) -> None:
        self.updates.append(fields)


def verifier(store: FakeStore, run_id: str, *, resume: bool, diff_file: Path | None) -> Any:
    from controlplane.services import verify as v

    (loaded,) = load_text(EXAMPLE)
    opts = v.VerifyOptions(
        manifests=[],
        resume=run_id if resume else None,
        run_id=None if resume else run_id,
        diff_file=diff_file,
    )
    # no Cassandra nor PostgreSQL: only the run bookkeeping is tested, over a fake store
    sessions = v.Sessions(cluster=None, cassandra=None, store=store, dsn="")  # type: ignore[arg-type]
    ver: Any = v.Verifier(opts, loaded.pipeline, [], sessions)
    ver.tables = {"users": object(), "orders": object()}
    ver._tasks = lambda: {"users:00000": {}}
    return ver


@pytest.mark.parametrize("resume", [True, False], ids=["resumed", "joined"])
def test_verify_never_appends_to_a_path_from_redis(resume: bool, tmp_path: Path) -> None:
    meta = {"pipeline": "demo", "tables": ["users"], "diff_file": "/home/victim/.bashrc"}
    store = FakeStore(meta)
    ver = verifier(store, "r1", resume=resume, diff_file=None)
    ver.prepare_run()
    assert ver.diff_path == Path("verify-r1.jsonl")
    assert not store.updates  # the creator's record stays as it is
    given = tmp_path / "mine.jsonl"
    ver = verifier(FakeStore(dict(meta)), "r1", resume=resume, diff_file=given)
    ver.prepare_run()
    assert ver.diff_path == given


def test_a_new_run_records_its_default_diff_file() -> None:
    store = FakeStore(None)
    ver = verifier(store, "r2", resume=False, diff_file=None)
    ver.prepare_run()
    assert ver.diff_path == Path("verify-r2.jsonl")
    assert store.updates == [{"diff_file": "verify-r2.jsonl"}]


@pytest.mark.parametrize("run_id", ["../../etc/cron.d/x", "/abs/path", "a b\nc", "x" * 300, ".."])
def test_default_diff_file_stays_in_the_current_directory(run_id: str) -> None:
    from controlplane.core.verify_report import default_diff_path

    path = default_diff_path(run_id)
    assert path.parent == Path(".")
    assert re.fullmatch(r"verify-[A-Za-z0-9._-]+\.jsonl", path.name)
    assert len(path.name) < 130
    assert default_diff_path(run_id + "?") != path  # distinct ids, distinct files
    assert default_diff_path("20260101-000000-abc123").name == "verify-20260101-000000-abc123.jsonl"


# --- manifests through the CLI: exit code, message, location ------------------------------


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    """`cdcctl ARGV` in this process, through the one top-level error handler."""
    monkeypatch.setattr("sys.argv", ["cdcctl", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    err = captured.err + captured.out
    assert "Traceback" not in err
    code = exc.value.code
    return (code if isinstance(code, int) else 1), err


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name  # a name with `/` in it makes directories: `[b]x[/b].yaml`
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problem_line(err: str, location: str) -> str:
    """The one line of `cdcctl validate` output reporting a problem at `location`."""
    lines = [line for line in err.splitlines() if line.startswith(f"{location}: manifest: ")]
    assert len(lines) == 1, f"no single problem at {location} in:\n{err}"
    return lines[0]


DEEP_FLOW = "a: " + "[" * 500 + "]" * 500 + "\n"
DEEP_BLOCK = "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 501))


@pytest.mark.parametrize(
    ("text", "location", "needle"),
    [
        (DEEP_FLOW, f"1:{3 + MAX_DEPTH}", f"nested more than {MAX_DEPTH} levels deep"),
        (DEEP_BLOCK, f"{MAX_DEPTH}:{2 * MAX_DEPTH - 1}", "nested more than"),
        ("a: !mytag x\n", "1:4", "YAML tags are not allowed in a manifest (found !mytag)"),
        ("a: !!int abc\n", "1:4", "(found !!int)"),
        ("a: !!python/object:os.system x\n", "1:4", "(found !!python/object:os.system)"),
        ("a: !!str x\n", "1:4", "(found !!str)"),
        ("a: ! x\n", "1:4", "(found !)"),
        ("? [a, b]\n: 1\n", "1:3", "a mapping key must be a plain scalar, not a list"),
        ("{? {a: 1} : 1}\n", "1:4", "not a mapping"),
        ("a: &x [*x]\n", "1:8", "the alias *x is inside the node &x it refers to"),
        ("metadata:\n  labels:\n    since: 2020-13-45\n", "3:12", "looks like a date"),
        ("", "1:1", "no pipeline in {file}"),
        ("# only a comment\n\n", "1:1", "no pipeline in {file}"),
        ("null\n", "1:1", "no pipeline in {file}"),
        ("---\n...\n---\n~\n", "1:1", "no pipeline in {file}"),
    ],
)
def test_malformed_yaml_is_a_manifest_error_with_its_location(
    text: str,
    location: str,
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path, text)
    code, err = run(monkeypatch, capsys, "validate", "-f", str(path))
    assert code == 3, err
    assert needle.format(file=path) in problem_line(err, f"{path}:{location}")


def test_a_billion_laughs_is_read_in_linear_time(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    text = "\n".join(lines) + "\n" + EXAMPLE.split("\n", 2)[2]  # 9^12 leaves if expanded
    start = time.monotonic()
    _, problems = check_text(text, "lol.yaml")
    assert time.monotonic() - start < 5
    (problem,) = problems  # refused while composing, at the alias that passes the bound
    assert problem.message == f"aliases expand to more than {MAX_ALIAS_NODES} nodes (at *a3)"
    assert problem.location == "lol.yaml:5:10"


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("port: 5432", "port: true", "spec.sink.postgres.port: true is a boolean, not an integer"),
        ("tasksMax: 1", "tasksMax: true", "spec.sink.tasksMax: true is a boolean, not an integer"),
        ("batchSize: 2000", "batchSize: yes", "spec.sink.batchSize: true is a boolean"),
        ("port: 5432", 'port: "5432"', "'5432' is a string, not an integer"),
        ("port: 5432", "port: 5432.0", "5432.0 is not an integer"),
        ("pollIntervalMs: 100", "pollIntervalMs: on", "agent.pollIntervalMs: true is a boolean"),
        ("errorsTolerance: all", "errorsLogEnable: 1", "errorsLogEnable: 1 is not a boolean"),
    ],
)
def test_values_of_the_wrong_kind_are_refused_with_their_location(
    old: str,
    new: str,
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = manifest(**{old: new})
    path = write(tmp_path, text)
    code, err = run(monkeypatch, capsys, "validate", "-f", str(path))
    assert code == 3, err
    line = line_of(text, new)
    column = text.splitlines()[line - 1].index(new.split(": ", 1)[1]) + 1
    assert needle in problem_line(err, f"{path}:{line}:{column}")


@pytest.mark.parametrize("value", ['""', '"   "'])
def test_an_empty_secret_file_is_refused_at_its_value(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = "vault: {path: secret/cdc/postgres, key: password}"
    text = manifest(**{old: f"{{file: {value}, key: password}}"})
    path = write(tmp_path, text)
    code, err = run(monkeypatch, capsys, "validate", "-f", str(path))
    assert code == 3, err
    line = line_of(text, f"{{file: {value}")
    column = text.splitlines()[line - 1].index(value) + 1
    assert (
        "spec.sink.postgres.passwordSecret.file: `file` of a secret reference is empty"
        in problem_line(err, f"{path}:{line}:{column}")
    )


def test_an_empty_filename_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, EXAMPLE)  # a valid manifest in the current directory must not be picked
    monkeypatch.chdir(tmp_path)
    for args in (["validate", "-f", ""], ["plan", "-f", "", "--state-dir", str(tmp_path / "s")]):
        code, err = run(monkeypatch, capsys, *args)
        assert code == 2, err
        assert "error: -f/--filename is empty" in err
        assert "hint: name a manifest file" in err


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_an_empty_manifest_fails_validate_in_every_format(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "# nothing\n")
    code, err = run(monkeypatch, capsys, "validate", "-f", str(path), "-o", fmt)
    assert code == 3
    assert f"no pipeline in {path}" in err


# --- Rich markup in anything user-provided -------------------------------------------------


@pytest.mark.parametrize("name", ["[/]", "[bold]x[/bold]", "[red]"])
def test_markup_in_a_manifest_prints_as_written(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = manifest(**{"  name: demo": f"  name: '{name}'"})
    path = write(tmp_path, text)
    code, err = run(monkeypatch, capsys, "plan", "-f", str(path), "--state-dir", str(tmp_path))
    assert code == 3, err
    assert f"error: {path}:{line_of(text, name)}:9: metadata.name: '{name}' is not a DNS label" in (
        err
    )


@pytest.mark.parametrize("filename", ["[/]x.yaml", "[bold]x[/bold].yaml"])
def test_markup_in_a_filename_prints_as_written(
    filename: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = str(tmp_path / filename)
    code, err = run(monkeypatch, capsys, "plan", "-f", missing, "--state-dir", str(tmp_path))
    assert code == 3, err
    assert f"error: {missing}: no such file or directory" in err
    path = write(tmp_path, EXAMPLE.replace("name: demo", "name: Demo"), "[b]y[/b].yaml")
    code, err = run(monkeypatch, capsys, "plan", "-f", str(path), "--state-dir", str(tmp_path))
    assert code == 3
    assert f"error: {path}:" in err


def test_markup_in_an_option_value_prints_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, EXAMPLE)
    code, err = run(monkeypatch, capsys, "validate", "-o", "[/]", "-f", str(path))
    assert code == 2
    assert "error: unknown output '[/]'" in err


def test_tables_print_cells_titles_and_headers_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit(
        [{"[b]col[/b]": "[/]", "other": "[bold]x[/bold]"}],
        OutputFormat.table,
        title="[red]t[/]",
    )
    out = capsys.readouterr().out
    for text in ("[/]", "[bold]x[/bold]", "[red]t[/]", "[B]COL[/B]"):
        assert text in out


# --- the same, as a user runs it ----------------------------------------------------------


def test_hostile_yaml_through_a_real_process(tmp_path: Path) -> None:
    deep = write(tmp_path, DEEP_FLOW, "deep.yaml")
    res = cdcctl("validate", "-f", str(deep), timeout=60)
    assert res.returncode == 3, res.stderr
    assert f"{deep}:1:{3 + MAX_DEPTH}: manifest: nested more than" in res.stderr
    assert "Traceback" not in res.stderr
    empty = write(tmp_path, "null\n", "[/].yaml")
    res = cdcctl("plan", "-f", str(empty), "--state-dir", str(tmp_path / "s"), timeout=60)
    assert res.returncode == 3, res.stderr
    assert f"error: {empty}:1:1: no pipeline in {empty}" in res.stderr
