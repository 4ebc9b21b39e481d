"""TLS material of the local stack: one throwaway CA, a server certificate per TLS service,
Kafka's PEM key store, its clients' certificates (mTLS, decision 0114), and Connect REST's
stores and basic-auth users (decision 0060, docs/stack.md "TLS: one CA for the stack"). Files
under the state dir's secrets/ (0700), private keys 0600. Made with the openssl CLI and the
JDK's keytool."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from controlplane.adapters import processes
from controlplane.core.errors import StackError
from controlplane.core.stack_model import (
    CONNECT_REST_USER,
    KAFKA_CLIENTS,
    TLS_SERVICES,
    StackLayout,
    cert_extensions,
    client_cert_extensions,
    connect_jaas_config,
    kafka_client_subject,
    keytool_truststore_command,
    openssl_ca_command,
    openssl_csr_command,
    openssl_pkcs12_command,
    openssl_sign_command,
)
from controlplane.services.stack_runtime import read_properties, write_private

Reporter = Callable[[str, str], None]


def write_tls(lay: StackLayout, services: list[str], report: Reporter) -> None:
    """The stack's throwaway CA, generated once, and a server certificate per service for
    localhost/127.0.0.1/::1 signed by it, with the openssl CLI; private keys 0600 (decision
    0060). A new CA voids every server certificate of the old one."""
    if not services:
        return
    if not (lay.ca_file.exists() and lay.ca_key.exists()):
        report("stack", "generating a local CA for TLS")
        openssl(openssl_ca_command(lay.ca_key, lay.ca_file))
        for svc in TLS_SERVICES:  # signed by the old CA, if any
            lay.server_cert(svc).unlink(missing_ok=True)
        for client in KAFKA_CLIENTS:
            lay.kafka_client_cert(client).unlink(missing_ok=True)
    os.chmod(lay.ca_key, 0o600)
    for svc in services:
        cert, key = lay.server_cert(svc), lay.server_key(svc)
        _issue(lay, cert, key, cert_extensions(svc), "/O=cass-cdc-pg/CN=localhost", svc, report)


def write_kafka_client_certs(lay: StackLayout, report: Reporter) -> None:
    """A client certificate per Kafka client of the stack (Connect, the agents, cdcctl), signed
    by the stack's CA, once; and the Java clients' PEM key store (key + chain) at each start."""
    for client in KAFKA_CLIENTS:
        cert, key = lay.kafka_client_cert(client), lay.kafka_client_key(client)
        _issue(
            lay, cert, key, client_cert_extensions(), kafka_client_subject(client), "kafka", report
        )
        parts = (key, cert, lay.ca_file)
        write_private(lay.kafka_client_pem(client), "".join(p.read_text() for p in parts))


def _issue(
    lay: StackLayout, cert: Path, key: Path, ext_text: str, subject: str, who: str, report: Reporter
) -> None:
    """`cert` (and its key) signed by the stack's CA with these extensions, unless it exists
    with them already: the extensions used are kept beside it (``.ext``), so a certificate of
    an older stack without what is needed now (Kafka's clientAuth) is made again."""
    ext = cert.with_suffix(".ext")
    if cert.exists() and key.exists() and _read(ext) == ext_text:
        os.chmod(key, 0o600)
        return
    report(who, f"generating the TLS certificate {cert.name}")
    csr = cert.with_suffix(".csr")
    ext.write_text(ext_text)
    try:
        openssl(openssl_csr_command(key, csr, subject))
        openssl(
            openssl_sign_command(
                csr, lay.ca_file, lay.ca_key, cert, ext, serial=secrets.token_hex(8)
            )
        )
    except BaseException:
        ext.unlink(missing_ok=True)
        raise
    finally:
        csr.unlink(missing_ok=True)
    os.chmod(key, 0o600)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def write_kafka_keystore(lay: StackLayout) -> None:
    """Kafka's TLS listener reads PEM itself: key (PKCS#8, as openssl writes it) and chain."""
    parts = (lay.server_key("kafka"), lay.server_cert("kafka"), lay.ca_file)
    write_private(lay.kafka_keystore_pem, "".join(p.read_text() for p in parts))


def write_connect_security(lay: StackLayout, keytool: Path) -> None:
    """Connect REST (HTTPS, basic auth): PKCS12 key and trust stores made from the PEM files at each
    start (Jetty reads no PEM), and the basic-auth users, generated once. Every worker of the
    stack uses the same stores and users."""
    write_pkcs12_stores(
        lay,
        keytool,
        service="connect",
        keystore=lay.connect_keystore,
        truststore=lay.connect_truststore,
        password_file=lay.connect_store_password_file,
    )
    creds = read_properties(lay.connect_credentials_file)
    if not creds.get("password"):
        creds = {"username": CONNECT_REST_USER, "password": secrets.token_urlsafe(24)}
        write_private(
            lay.connect_credentials_file,
            f"username={creds['username']}\npassword={creds['password']}\n",
        )
    write_private(lay.connect_users_file, f"{creds['username']}={creds['password']}\n")
    write_private(lay.connect_jaas_file, connect_jaas_config(lay.connect_users_file))


def write_cassandra_stores(lay: StackLayout, keytool: Path) -> None:
    """Cassandra's client encryption: a PKCS12 key store (its server key and certificate with
    the CA) and a PKCS12 trust store holding the CA, which the agents' driver trusts too. Made
    from the PEM files at each start; their password generated once (decision 0110)."""
    write_pkcs12_stores(
        lay,
        keytool,
        service="cassandra",
        keystore=lay.cassandra_keystore,
        truststore=lay.cassandra_truststore,
        password_file=lay.cassandra_store_password_file,
    )


def write_pkcs12_stores(
    lay: StackLayout,
    keytool: Path,
    *,
    service: str,
    keystore: Path,
    truststore: Path,
    password_file: Path,
) -> None:
    """A JVM service's PKCS12 key store (its server key and certificate with the CA) and trust
    store (the CA), both 0600, made afresh from the PEM files; their password generated once
    into `password_file`."""
    if not password_file.exists():
        write_private(password_file, secrets.token_urlsafe(24))
    password = password_file.read_text().strip()
    for store in (keystore, truststore):
        store.unlink(missing_ok=True)
    openssl(
        openssl_pkcs12_command(
            lay.server_key(service), lay.server_cert(service), lay.ca_file, keystore, password_file
        )
    )
    out = processes.run(
        keytool_truststore_command(keytool, lay.ca_file, truststore, password), timeout=120
    )
    if out.returncode != 0:
        raise StackError(
            f"keytool could not write {service}'s trust store {truststore.name}: "
            f"{(out.stdout + out.stderr)[-800:]}"
        )
    for store in (keystore, truststore):
        os.chmod(store, 0o600)


def openssl(argv: list[str]) -> None:
    try:
        out = processes.run(argv, timeout=60)
    except FileNotFoundError as exc:
        raise StackError(
            "the openssl command is needed to create the local stack's TLS certificates",
            hint="apt-get install openssl",
        ) from exc
    if out.returncode != 0:
        raise StackError(
            f"openssl failed creating the local stack's TLS certificates: "
            f"{(out.stdout + out.stderr)[-800:]}",
            hint="remove .stack/secrets/*-server.* (and postgres-ca.* for a new CA) "
            "and run `cdcctl stack up` again",
        )
