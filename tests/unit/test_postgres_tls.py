"""PostgreSQL TLS (decision 0060): the local server's command line and certificates, the JDBC URL
and psycopg DSNs rendered from a manifest, and validation of ``spec.sink.postgres.tls``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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
