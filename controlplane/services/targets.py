"""Resolve the `Target` a command works on: a named context, the current context, or — only
when nothing else is configured or a state directory is named — the local stack.

Precedence (docs/decisions/0070-targets.md):
1. ``--state-dir DIR``: the local stack at DIR;
2. ``--context NAME``: that context;
3. the contexts file's ``currentContext``;
4. the local stack at ``$CDC_STACK_DIR`` or ``.stack/`` in the checkout.
``--connect-url`` then replaces the target's Connect endpoint (and the manifests' own).

Secret references of a target (Connect's basic-auth password, the PostgreSQL DDL role's
password, the Vault token) are resolved here, on the operator's machine, when a client is built.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from controlplane.adapters import vault
from controlplane.core.errors import UsageError
from controlplane.core.manifest import AgentKafkaTls, Pipeline, SecretRef
from controlplane.core.target import (
    LOCAL_TARGET_NAME,
    AgentCassandraSecurity,
    CassandraAccess,
    CassandraClientSecurity,
    ConnectAccess,
    Context,
    KafkaAccess,
    KafkaTls,
    LocalStackInfo,
    PostgresAccess,
    RedisAccess,
    RedisEndpoint,
    Target,
    TlsOptions,
    VaultAccess,
    url_password,
    url_user,
)
from controlplane.services.contexts import load_config


def resolve_target(
    *,
    context: str | None = None,
    connect_url: str | None = None,
    state_dir: Path | None = None,
) -> Target:
    """The target of a command from its ``--context``/``--connect-url``/``--state-dir``."""
    config = load_config()
    if state_dir is not None:
        target = local_target(state_dir)
    elif context is not None:
        target = context_target(context, config.context(context))
    elif config.current_context and config.current_context in config.contexts:
        name = config.current_context
        target = context_target(name, config.contexts[name])
    else:
        target = local_target(None)
    if connect_url:
        target = replace(
            target, connect=ConnectAccess(url=connect_url.rstrip("/")), connect_overridden=True
        )
    elif context is not None:
        target = replace(target, connect_overridden=True)
    return target


def context_target(name: str, ctx: Context) -> Target:
    if ctx.local_stack is not None:
        local = replace(local_target(Path(ctx.local_stack)), name=name)
        return replace(local, connect=ctx.connect) if ctx.connect else local
    return Target(
        name=name,
        connect=ctx.connect or ConnectAccess(url="http://127.0.0.1:8083"),
        kafka=ctx.kafka,
        cassandra=ctx.cassandra,
        postgres=ctx.postgres,
        vault=ctx.vault or VaultAccess(),
        redis=ctx.redis or RedisAccess(),
    )


def named_contexts() -> dict[str, Context]:
    """The contexts a manifest may name (spec.connect.context), a local stack's with its own
    Connect access (HTTPS, CA, basic auth unless --insecure) when the context names none."""
    out: dict[str, Context] = {}
    for name, ctx in load_config().contexts.items():
        if ctx.local_stack is not None and ctx.connect is None:
            ctx = ctx.model_copy(update={"connect": local_target(Path(ctx.local_stack)).connect})
        out[name] = ctx
    return out


def local_target(state_dir: Path | None) -> Target:
    """The local stack as a target: its endpoints, CA, tokens and credentials files."""
    from controlplane.core.stack_model import CONNECT_REST_USER
    from controlplane.services.stack_settings import settings_for

    settings = settings_for(state_dir)
    lay = settings.layout
    ports = settings.ports
    ca_file = lay.ca_file
    vault_port = ports.vault
    # Connect REST on HTTPS with basic auth and Kafka with TLS and cdcctl's client certificate
    # (mTLS), unless `stack up --insecure` (decision 0114).
    if settings.tls:
        creds = lay.connect_credentials_file
        connect = ConnectAccess(
            url=f"https://127.0.0.1:{ports.connect}",
            ca_file=str(ca_file),
            username=_read_key(creds, "username") or CONNECT_REST_USER,
            password_secret=SecretRef(file=str(creds), key="password"),
        )
        kafka = KafkaAccess(
            bootstrap_servers=[f"127.0.0.1:{ports.kafka}"],
            tls=KafkaTls(
                ca_file=str(ca_file),
                cert_file=str(lay.kafka_client_cert("cdcctl")),
                key_file=str(lay.kafka_client_key("cdcctl")),
            ),
        )
        agent_kafka_tls = AgentKafkaTls.model_validate(
            {"caFile": str(ca_file), "keystoreFile": str(lay.kafka_client_pem("agent"))}
        )
    else:
        connect = ConnectAccess(url=f"http://127.0.0.1:{ports.connect}")
        kafka = KafkaAccess(bootstrap_servers=[f"127.0.0.1:{ports.kafka}"])
        agent_kafka_tls = None
    contact_points = list(settings.contact_points)
    # Every node of the local stack (one unless `stack up --nodes N`); TLS and cdcctl's role,
    # Redis over TLS with its ACL user, unless `stack up --insecure` (decision 0110).
    if settings.tls:
        cassandra = CassandraAccess(
            contact_points=contact_points,
            local_datacenter="datacenter1",
            tls=TlsOptions(ca_file=str(ca_file)),
            username=_read_key(lay.cassandra_admin_file, "username") or "cdcctl",
            password_secret=SecretRef(file=str(lay.cassandra_admin_file), key="password"),
        )
        redis = RedisAccess(
            url=settings.redis_url,
            ca_file=str(ca_file),
            password_secret=SecretRef(file=str(lay.redis_credentials_file), key="password"),
        )
    else:
        cassandra = CassandraAccess(contact_points=contact_points, local_datacenter="datacenter1")
        redis = RedisAccess(url=settings.redis_url)
    return Target(
        name=LOCAL_TARGET_NAME,
        connect=connect,
        kafka=kafka,
        cassandra=cassandra,
        # The local PostgreSQL is verified with the stack's CA unless the manifest names one
        postgres=PostgresAccess(
            host="127.0.0.1",
            port=ports.postgres,
            ca_file=str(lay.postgres_ca_file),
        ),
        vault=VaultAccess(
            address=f"https://127.0.0.1:{vault_port}",
            ca_file=str(ca_file),
            token_secret=SecretRef(file=str(lay.vault_token_file)),
        ),
        redis=redis,
        local=LocalStackInfo(
            state_dir=lay.root,
            cassandra_config=lay.config_dir / "cassandra.yaml",
            agent_http_port=ports.agent_http,
            agent_security=AgentCassandraSecurity(
                truststore=str(lay.cassandra_truststore),
                username=_read_key(lay.cassandra_agent_file, "username") or "cdc_agent",
            )
            if settings.tls
            else None,
            agent_kafka_tls=agent_kafka_tls,
        ),
    )


def connect_password(access: ConnectAccess, target: Target) -> str | None:
    """The basic-auth password of a Connect endpoint (None without auth)."""
    if access.password_secret is None:
        return None
    return vault.resolve(access.password_secret, vault=target.vault)


def cassandra_security(target: Target) -> CassandraClientSecurity:
    """TLS and login of cdcctl's CQL sessions on `target`, the password resolved here."""
    access = target.cassandra
    password = None
    if access.password_secret is not None:
        password = vault.resolve(access.password_secret, vault=target.vault)
    return CassandraClientSecurity(
        tls=access.tls is not None,
        ca_file=access.tls.ca_file if access.tls else None,
        username=access.username,
        password=password,
    )


def redis_endpoint(target: Target, url: str | None = None) -> RedisEndpoint:
    """The Redis of `target`, the ACL user's password resolved here. `url` (--redis-url or
    $CDC_REDIS_URL) replaces the target's URL; the target's password goes with it only when it
    names a user without a password (``rediss://cdcctl@host:port/0``), its CA only to rediss://."""
    access = target.redis
    password = None
    named_user = url is None or (url_user(url) is not None and url_password(url) is None)
    if access.password_secret is not None and named_user:
        password = vault.resolve(access.password_secret, vault=target.vault)
    return RedisEndpoint(url=url or access.url, password=password, ca_file=access.ca_file)


def _read_key(path: Path, key: str) -> str | None:
    from controlplane.core.properties import load_properties

    try:
        return load_properties(path.read_text(encoding="latin-1")).get(key)
    except OSError:
        return None


def require_local(target: Target, what: str) -> LocalStackInfo:
    if target.local is None:
        raise UsageError(
            f"{what} needs the local stack, and the target is {target.describe()}",
            hint="use --state-dir or a context with localStack, or run it where the stack is",
        )
    return target.local


def connect_client(access: ConnectAccess, target: Target, *, timeout: float = 10.0) -> Any:
    """A Connect REST client for `access` (TLS CA, basic auth resolved here)."""
    from controlplane.adapters.connect import ConnectClient

    password = connect_password(access, target)
    return ConnectClient(
        access.url,
        timeout=timeout,
        ca_file=access.ca_file,
        auth=(access.username, password) if access.username and password is not None else None,
        hint=target.hint(f"Kafka Connect at {access.url}"),
    )


def managed_agents(target: Target) -> Any:
    """The local stack's agent runtime (services.local_agents) when the target is a local stack."""
    if target.local is None:
        return None
    from controlplane.services.local_agents import LocalAgents
    from controlplane.services.stack_settings import settings_for

    return LocalAgents(settings_for(target.local.state_dir))


def pipeline_dsn(target: Target, pipeline: Pipeline, *, base_dir: Path | None = None) -> str:
    """cdcctl's own connection to a pipeline's sink database: the target's host/port and DDL
    role when it names them, else the manifest's; TLS as the manifest says, verified with the
    target's CA when it gives one."""
    from controlplane.adapters import postgres

    pg = pipeline.spec.sink.postgres
    access = target.postgres
    if access.user is not None and access.password_secret is not None:
        user = access.user
        password = vault.resolve(access.password_secret, vault=target.vault)
    else:
        user = pg.user
        password = vault.resolve(pg.password_secret, base_dir=base_dir, vault=target.vault)
    mode = pg.tls.effective_mode
    ca_file = None if mode == "require" else (pg.tls.ca_file or access.ca_file)
    return postgres.dsn(
        access.host or pg.host,
        access.port or pg.port,
        pg.database,
        user,
        password,
        sslmode=mode,
        sslrootcert=ca_file,
        require_auth=postgres.PASSWORD_AUTH,
    )
