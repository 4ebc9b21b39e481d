"""PostgreSQL TLS (decision 0060): the local server's command line and certificates, the JDBC URL
and psycopg DSNs rendered from a manifest, and validation of ``spec.sink.postgres.tls``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from controlplane.adapters.postgres import pipeline_dsn
from controlplane.core.errors import ManifestError
from controlplane.core.manifest import Pipeline
from controlplane.core.manifest_loader import load_manifests, load_text
from controlplane.core.render import RenderContext, jdbc_url, render_sink_config
from controlplane.core.stack_model import (
    POSTGRES_CERT_NAMES,
    Ports,
    StackLayout,
    StackSettings,
    openssl_ca_command,
    openssl_csr_command,
    openssl_sign_command,
    postgres_command,
    server_cert_extensions,
)

REPO = Path(__file__).resolve().parents[2]


def test_postgres_command_turns_tls_on_with_its_own_hba(tmp_path: Path) -> None:
    s = StackSettings(layout=StackLayout(root=tmp_path), ports=Ports().shifted(100))
    argv = postgres_command(Path("/bin"), s, tmp_path / "data", tmp_path / "run", tmp_path / "c")
    settings = {argv[i + 1] for i, a in enumerate(argv) if a == "-c"}
    assert "ssl=on" in settings
    assert f"ssl_cert_file={tmp_path / 'c' / 'server.crt'}" in settings
    assert f"ssl_key_file={tmp_path / 'c' / 'server.key'}" in settings
    assert f"hba_file={tmp_path / 'c' / 'pg_hba.conf'}" in settings
    assert "port=5532" in settings


def test_pg_hba_accepts_tcp_only_with_tls() -> None:
    lines = [
        line.split()
        for line in (REPO / "compose/native/config/pg_hba.conf.j2").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    tcp = [f for f in lines if f[0] != "local"]
    assert {f[0] for f in tcp} == {"hostssl", "hostnossl"}
    assert all(f[-1] == "reject" for f in tcp if f[0] == "hostnossl")
    # reject rules come first: pg_hba.conf takes the first matching line
    first_ssl = next(i for i, f in enumerate(tcp) if f[0] == "hostssl")
    assert all(f[0] == "hostnossl" for f in tcp[:first_ssl])
    assert {f[3] for f in tcp if f[0] == "hostnossl"} == {"0.0.0.0/0", "::/0"}


def test_server_cert_extensions_name_every_local_address() -> None:
    ext = server_cert_extensions()
    assert "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" in ext
    assert "CA:FALSE" in ext
    assert "serverAuth" in ext
    assert POSTGRES_CERT_NAMES == ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


def test_openssl_commands_make_a_chain_that_verifies(tmp_path: Path) -> None:
    def run(argv: list[str]) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    ca, ca_key = tmp_path / "ca.crt", tmp_path / "ca.key"
    key, csr, crt = tmp_path / "s.key", tmp_path / "s.csr", tmp_path / "s.crt"
    ext = tmp_path / "s.ext"
    ext.write_text(server_cert_extensions())
    run(openssl_ca_command(ca_key, ca))
    run(openssl_csr_command(key, csr))
    run(openssl_sign_command(csr, ca, ca_key, crt, ext))
    for host in ("-verify_hostname", "-verify_ip"):
        value = "localhost" if host == "-verify_hostname" else "127.0.0.1"
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca), host, value, str(crt)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
    wrong = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), "-verify_hostname", "db.example", str(crt)],
        capture_output=True,
        check=False,
    )
    assert wrong.returncode != 0


@pytest.mark.parametrize("name", ["postgres-ca.crt", "postgres-server.key"])
def test_tls_files_live_in_the_secrets_dir(tmp_path: Path, name: str) -> None:
    lay = StackLayout(root=tmp_path)
    files = {
        lay.postgres_ca_file,
        lay.postgres_ca_key,
        lay.postgres_server_cert,
        lay.postgres_server_key,
    }
    assert lay.secrets_dir / name in files
    assert all(f.parent == lay.secrets_dir for f in files)


# --- manifest: spec.sink.postgres.tls --------------------------------------------------------


def manifest(tls: str = "") -> str:
    from tests.manifests import local_pipeline

    text = local_pipeline("tls-demo", "tlsks", ["t1"])
    return text + "".join(f"      {line}\n" for line in tls.splitlines()) if tls else text


def load(text: str, source: str = "dir/p.yaml") -> Pipeline:
    return load_text(text, source)[0].pipeline


def test_verify_full_is_the_default_and_require_must_be_asked_for() -> None:
    # decision 0108: without caFile the server is still verified (target CA or system store)
    tls = load(manifest()).spec.sink.postgres.tls
    assert tls.effective_mode == "verify-full"
    assert tls.ca_file is None
    example = load_manifests([REPO / "examples" / "pipeline.yaml"])[0].pipeline
    assert example.spec.sink.postgres.tls.effective_mode == "verify-full"
    assert load(manifest("tls:\n  mode: require")).spec.sink.postgres.tls.effective_mode == (
        "require"
    )


def test_ca_file_defaults_to_verify_full_and_is_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(manifest("tls:\n  caFile: certs/ca.pem"))
    tls = load_manifests([tmp_path / "m.yaml"])[0].pipeline.spec.sink.postgres.tls
    assert tls.effective_mode == "verify-full"
    assert tls.ca_file == str(tmp_path / "certs" / "ca.pem")


def test_absolute_ca_file_is_kept_and_verify_ca_accepted() -> None:
    tls = load(manifest("tls:\n  mode: verify-ca\n  caFile: /etc/ca.pem")).spec.sink.postgres.tls
    assert (tls.effective_mode, tls.ca_file) == ("verify-ca", "/etc/ca.pem")


@pytest.mark.parametrize(
    ("tls", "line", "column", "expected"),
    [
        ("tls:\n  mode: require\n  caFile: c.pem", 1, 9, "caFile is only used to verify the"),
        (
            "tls:\n  mode: disable",
            1,
            15,
            "should be 'require', 'verify-ca' or 'verify-full'",
        ),
        ("tls:\n  mode: require\n  sslMode: x", 2, 9, "unknown key 'sslMode'"),
    ],
)
def test_tls_errors_have_file_line(tls: str, line: int, column: int, expected: str) -> None:
    # `tls:` is the line after the base manifest; its keys are `line` lines below, from column 9
    tls_line = len(manifest().splitlines()) + 1
    with pytest.raises(ManifestError) as info:
        load(manifest(tls), "dir/p.yaml")
    assert expected in info.value.message
    assert "spec.sink.postgres.tls" in info.value.message
    assert info.value.location == f"dir/p.yaml:{tls_line + line}:{column}"
    assert info.value.exit_code == 3


# --- rendering: JDBC URL and psycopg DSNs ----------------------------------------------------


def test_jdbc_url_verifies_by_default() -> None:
    p = load(manifest())
    # no CA anywhere: pgjdbc verifies with the worker JVM's trust store
    assert jdbc_url(p).endswith(
        "&ApplicationName=cdc-sink-tls-demo&sslmode=verify-full"
        "&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory"
    )
    # a local stack's CA (RenderContext.postgres_ca_file) when the manifest names none
    assert jdbc_url(p, "/st/ca.crt").endswith("&sslmode=verify-full&sslrootcert=/st/ca.crt")
    explicit = load(manifest("tls:\n  mode: require"))
    assert jdbc_url(explicit, "/st/ca.crt").endswith("&sslmode=require")


def test_jdbc_url_verify_full_with_absolute_quoted_ca(tmp_path: Path) -> None:
    (tmp_path / "a dir").mkdir()
    (tmp_path / "a dir" / "m.yaml").write_text(manifest("tls:\n  caFile: ca.pem"))
    p = load_manifests([tmp_path / "a dir" / "m.yaml"])[0].pipeline
    url = jdbc_url(p)
    assert "&sslmode=verify-full&sslrootcert=" in url
    assert url.endswith("/a%20dir/ca.pem")
    assert url.split("sslrootcert=")[1].startswith("/")


def test_sink_config_carries_the_tls_url(tmp_path: Path) -> None:
    ctx = RenderContext(state_dir=tmp_path, cassandra_config=tmp_path)
    p = load(manifest("tls:\n  caFile: /etc/ca.pem"))
    config = render_sink_config(p, ctx)
    assert config["connection.url"].endswith("&sslmode=verify-full&sslrootcert=/etc/ca.pem")


def test_pipeline_dsn_has_the_same_tls_settings() -> None:
    p = load(manifest("tls:\n  mode: verify-ca\n  caFile: /c a/ca.pem"))
    parsed = conninfo_to_dict(pipeline_dsn(p.spec.sink.postgres, "pw'd x"))
    assert parsed["sslmode"] == "verify-ca"
    assert parsed["sslrootcert"] == "/c a/ca.pem"
    assert parsed["password"] == "pw'd x"
    # the manifest's port is the session stack's (an offset stack in .stack/ shifts it)
    pg = load(manifest()).spec.sink.postgres
    assert conninfo_to_dict(pipeline_dsn(pg, None)) == {
        "host": "127.0.0.1",
        "port": str(pg.port),
        "dbname": "cdc",
        "user": "cdc",
        "sslmode": "verify-full",
        "sslrootcert": "system",  # libpq's system trust store
        "require_auth": "scram-sha-256",  # never md5 or a cleartext password
    }


def test_stack_dsn_verifies_with_the_stacks_ca_once_it_exists(tmp_path: Path) -> None:
    from controlplane.services.stack import LocalStack

    st = LocalStack(StackSettings(layout=StackLayout(root=tmp_path)))
    assert "sslmode" not in conninfo_to_dict(st.postgres_dsn())  # a stack from before TLS
    st.lay.secrets_dir.mkdir()
    st.lay.postgres_ca_file.write_text("x")
    assert "sslmode" not in conninfo_to_dict(st.postgres_dsn())  # a server not restarted yet
    (st.lay.service_dir("postgres") / "conf").mkdir(parents=True)
    (st.lay.service_dir("postgres") / "conf" / "server.crt").write_text("x")
    parsed = conninfo_to_dict(st.postgres_dsn())
    assert parsed["sslmode"] == "verify-full"
    assert parsed["sslrootcert"] == str(st.lay.postgres_ca_file)


def test_redacted_dsn_hides_quoted_passwords() -> None:
    from controlplane.adapters.postgres import _redact, dsn

    text = _redact(dsn("h", 1, "d", "u", "a b'c", sslmode="require"))
    assert "a b" not in text
    assert text.endswith("password=*** sslmode=require")
