"""Bundles of external Debezium Cassandra agents: the files one Cassandra node needs to run its
agent (decision 0013: one agent per node, serving every pipeline on it).

A bundle is rendered per node from the manifest alone — templates in ``connectors/``, paths as
they are on the node (``spec.source.agent.install``) — so rendering it anywhere gives the same
bytes and the same digest; `plan` compares digests, `cdcctl agent render` writes the files.

    agent.properties           the agent's config (the template the local stack's agent uses)
    driver.conf                java-driver config: the node's own address, its datacenter
    cass-cdc-pg-agent.service  systemd unit (heap, logback, JDK 17 module flags, restart backoff)
    agent.env                  JVM options (EnvironmentFile=); never a secret value — with
                               install.cassandraTls, the names of the password variables that
                               the node's own agent-secrets.env (not in the bundle) sets
    logback.xml                size-capped rolling log; replay-skip lines quietened

Pure apart from reading the (static) templates, like `core.render`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from controlplane.core.errors import ManifestError
from controlplane.core.manifest import AgentCassandraTls, AgentInstall, AgentNode, Pipeline
from controlplane.core.render import (
    AGENT_TEMPLATE,
    CONNECTORS_DIR,
    DRIVER_TEMPLATE,
    escape_property,
    parse_properties,
)
from controlplane.core.stack_model import JDK17_MODULE_FLAGS, SKIP_LOGGERS
from controlplane.core.target import AgentCassandraSecurity, split_host_port

SERVICE_NAME = "cass-cdc-pg-agent"
UNIT_FILE = f"{SERVICE_NAME}.service"
PROPERTIES_FILE = "agent.properties"
DRIVER_FILE = "driver.conf"
ENV_FILE = "agent.env"
LOGBACK_FILE = "logback.xml"
BUNDLE_FILES: tuple[str, ...] = (PROPERTIES_FILE, DRIVER_FILE, UNIT_FILE, ENV_FILE, LOGBACK_FILE)
PRIVATE_FILES: frozenset[str] = frozenset({ENV_FILE})
"""Written 0600 (the others 0644): an EnvironmentFile is where secrets would be referenced."""
SYSTEMD_DIR = "/etc/systemd/system"
SECRETS_ENV_FILE = "agent-secrets.env"  # pragma: allowlist secret - a file name
"""The node's own EnvironmentFile of the agent's passwords (install.cassandraTls): not part of
the bundle, so a rollout never overwrites it and cdcctl never sees a value."""

UNIT_TEMPLATE = "agent.service.j2"
ENV_TEMPLATE = "agent.env.j2"
LOGBACK_TEMPLATE = "agent-logback.xml.j2"

MAIN_CLASS = "io.debezium.connector.cassandra.CassandraConnectorTask"
# Besides heap, logback and module flags (in the unit). ExitOnOutOfMemoryError: a full heap
# (dbz#1791) ends the JVM and systemd restarts it, instead of a process that only half works.
# No -Djava.net.preferIPv4Stack (the local stack's choice): nodes may be IPv6.
BASE_JAVA_OPTS: tuple[str, ...] = (
    "-XX:+UseG1GC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Dio.netty.tryReflectionSetAccessible=true",
)
DEFAULT_CQL_PORT = 9042
DIGEST_LENGTH = 16


@dataclass(frozen=True)
class AgentBundle:
    """The files of one node's agent, by file name, and their digest."""

    node_id: str
    address: str
    files: Mapping[str, str]
    digest: str
    install: AgentInstall

    def mode(self, name: str) -> int:
        """The permission bits `name` is written with."""
        return 0o600 if name in PRIVATE_FILES else 0o644


# --- names and paths (node-side) -----------------------------------------------------------


def agent_label(pipeline: Pipeline) -> str:
    """How a node's agent is named in its files. Not the pipeline's name: one agent serves every
    pipeline of the node, and those share kafka.topicPrefix (core.manifest_loader)."""
    return f"{pipeline.topic_prefix}-cassandra-agent"


def cql_port(pipeline: Pipeline, address: str) -> int:
    """The CQL port of `address`: of its own contact point when listed, else of the first."""
    points = [
        split_host_port(p, DEFAULT_CQL_PORT) for p in pipeline.spec.source.cassandra.contact_points
    ]
    for host, port in points:
        if host.lower() == address:
            return port
    return points[0][1] if points else DEFAULT_CQL_PORT


def host_port(address: str, port: int) -> str:
    """``host:port``, IPv6 in brackets (java-driver contact point syntax)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def config_path(install: AgentInstall, name: str) -> str:
    """Where bundle file `name` lives on the node (the unit under /etc/systemd/system)."""
    return f"{SYSTEMD_DIR}/{name}" if name == UNIT_FILE else f"{install.config_dir}/{name}"


def secret_variables(tls: AgentCassandraTls) -> list[tuple[str, str]]:
    """(variable name, what it holds) of every password the agent's driver.conf reads."""
    out = [(tls.password_env, f"the password of Cassandra role {tls.username}")]
    if tls.truststore_password_env is not None:
        out.append((tls.truststore_password_env, f"the password of {tls.truststore_file}"))
    return out


def rollout_steps(install: AgentInstall) -> list[str]:
    """Shell commands, run as root on the node in a copy of its bundle directory."""
    cfg = install.config_dir
    secrets: list[str] = []
    if install.cassandra_tls is not None:
        names = " and ".join(f"{n}=..." for n, _ in secret_variables(install.cassandra_tls))
        secrets.append(
            f"# once: {cfg}/{SECRETS_ENV_FILE} (root, mode 0600, not in the bundle) setting "
            f"{names} (agent.env names them); the trust store "
            f"{install.cassandra_tls.truststore_file} readable by {install.user}"
        )
    return [
        f"# once: Java 17 at {install.java}; the agent's jars in {install.dir}/lib "
        "(io.debezium:debezium-connector-cassandra-5 and its dependencies, as "
        "compose/native/agent/pom.xml resolves them)",
        f"install -d -o {install.user} -m 0750 {install.state_dir} {install.log_dir}",
        f"install -d -m 0755 {cfg}",
        *secrets,
        f"install -m 0644 {PROPERTIES_FILE} {DRIVER_FILE} {LOGBACK_FILE} {cfg}/",
        f"install -m 0600 {ENV_FILE} {cfg}/",
        f"install -m 0644 {UNIT_FILE} {SYSTEMD_DIR}/",
        f"systemctl daemon-reload && systemctl enable {SERVICE_NAME} "
        f"&& systemctl restart {SERVICE_NAME}",
    ]


# --- rendering ---------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        # properties/HOCON/systemd/env text, not HTML; logback.xml escapes with |e
        autoescape=jinja2.select_autoescape(default=False),
        keep_trailing_newline=True,
    )
    env.filters["prop"] = escape_property
    return env


def _render(templates_dir: Path, template: str, **values: object) -> str:
    return _environment(templates_dir).get_template(template).render(**values)


def bundle_digest(files: Mapping[str, str]) -> str:
    """sha256 over the files sorted by name (name and text, NUL-separated), short hex."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode("utf-8") + b"\0" + files[name].encode("utf-8") + b"\0")
    return h.hexdigest()[:DIGEST_LENGTH]


def render_bundle(
    pipeline: Pipeline, node: AgentNode, *, templates_dir: Path = CONNECTORS_DIR
) -> AgentBundle:
    """The bundle of `node`'s agent. Every path in it is the node's (``install``)."""
    agent = pipeline.spec.source.agent
    install = agent.install
    label = agent_label(pipeline)
    describe = f"(any) with kafka.topicPrefix {pipeline.topic_prefix}"
    files: dict[str, str] = {}
    files[PROPERTIES_FILE] = _render(
        templates_dir,
        AGENT_TEMPLATE,
        pipeline_name=describe,
        connector_name=label,
        node_id=node.id,
        topic_prefix=pipeline.topic_prefix,
        cassandra_config=install.cassandra_config,
        driver_config_file=config_path(install, DRIVER_FILE),
        relocation_dir=f"{install.state_dir}/relocation",
        offset_dir=f"{install.state_dir}/offsets",
        poll_interval_ms=agent.poll_interval_ms,
        snapshot_mode=agent.snapshot_mode.upper(),
        snapshot_consistency=agent.snapshot_consistency,
        decimal_handling_mode=agent.decimal_handling_mode,
        varint_handling_mode=agent.varint_handling_mode,
        http_port=node.http_port,
        bootstrap_servers=",".join(pipeline.spec.kafka.bootstrap_servers),
        # Node paths of the CA and the agent's PEM key store (mTLS, decision 0114), if given.
        kafka_tls=install.kafka_tls,
    )
    tls = install.cassandra_tls
    files[DRIVER_FILE] = _render(
        templates_dir,
        DRIVER_TEMPLATE,
        pipeline_name=describe,
        contact_points=[host_port(node.address, cql_port(pipeline, node.address))],
        local_datacenter=node.datacenter or pipeline.spec.source.cassandra.local_datacenter,
        session_name=label,
        # TLS and the login towards Cassandra (decision 0110), the passwords as ${NAME}: the
        # same blocks as the managed agent's.
        security=None
        if tls is None
        else AgentCassandraSecurity(
            truststore=tls.truststore_file,
            username=tls.username,
            password_env=tls.password_env,
            truststore_password_env=tls.truststore_password_env,
        ),
    )
    common = {"node_id": node.id, "address": node.address, "unit_file": UNIT_FILE}
    secrets_file = None if tls is None else f"{install.config_dir}/{SECRETS_ENV_FILE}"
    files[UNIT_FILE] = _render(
        templates_dir,
        UNIT_TEMPLATE,
        **common,
        config_dir=install.config_dir,
        user=install.user,
        env_file=config_path(install, ENV_FILE),
        secrets_file=secrets_file,
        state_dir=install.state_dir,
        log_dir=install.log_dir,
        java=install.java,
        heap=install.heap,
        logback_file=config_path(install, LOGBACK_FILE),
        module_flags=JDK17_MODULE_FLAGS,
        classpath=f"{install.dir}/lib/*",
        main_class=MAIN_CLASS,
        properties_file=config_path(install, PROPERTIES_FILE),
    )
    java_opts = list(BASE_JAVA_OPTS)
    if install.cassandra_storage_dir is not None:
        java_opts.append(f"-Dcassandra.storagedir={install.cassandra_storage_dir}")
    files[ENV_FILE] = _render(
        templates_dir,
        ENV_TEMPLATE,
        **common,
        java_opts=java_opts,
        secrets_file=secrets_file,
        secret_variables=[] if tls is None else secret_variables(tls),
    )
    files[LOGBACK_FILE] = _render(
        templates_dir,
        LOGBACK_TEMPLATE,
        log_dir=install.log_dir,
        log_level=install.log_level,
        quiet_level="ERROR" if install.log_level == "ERROR" else "WARN",
        log_max_files=install.log_max_files,
        log_max_file_size=install.log_max_file_size,
        skip_loggers=SKIP_LOGGERS,
    )
    return AgentBundle(
        node_id=node.id,
        address=node.address,
        files=files,
        digest=bundle_digest(files),
        install=install,
    )


def check_unique_nodes(nodes: Sequence[AgentNode], where: str = "the node list") -> None:
    """One agent per node, each with its own id: raise `ManifestError` on a repeated id or
    address (derived ids of discovered nodes can collide too: set nodeId then)."""
    for what, key in (("node id", "id"), ("address", "address")):
        seen: dict[str, AgentNode] = {}
        for node in nodes:
            value = getattr(node, key)
            first = seen.setdefault(value, node)
            if first is not node:
                raise ManifestError(
                    f"{where}: {what} {value!r} is used by two nodes "
                    f"({first.address} and {node.address})",
                    hint="give the nodes distinct spec.source.agent.nodes[].nodeId",
                )


def bundle_digests(
    pipeline: Pipeline, nodes: Iterable[AgentNode], *, templates_dir: Path = CONNECTORS_DIR
) -> dict[str, str]:
    """{node id: bundle digest} of `nodes` — what `plan` compares."""
    listed = list(nodes)
    check_unique_nodes(listed, f"pipeline {pipeline.name}")
    return {
        n.id: render_bundle(pipeline, n, templates_dir=templates_dir).digest
        for n in sorted(listed, key=lambda n: n.id)
    }


def bundle_differences(a: AgentBundle, b: AgentBundle) -> list[str]:
    """What differs between two bundles of one node, for messages: changed property keys of
    agent.properties, else the names of the files that differ."""
    out: list[str] = []
    for name in sorted(set(a.files) | set(b.files)):
        left, right = a.files.get(name), b.files.get(name)
        if left == right:
            continue
        if name == PROPERTIES_FILE and left is not None and right is not None:
            pa, pb = parse_properties(left), parse_properties(right)
            keys = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
            if keys:
                out.extend(f"{k}: {pa.get(k)} vs {pb.get(k)}" for k in keys)
                continue
        out.append(f"{name} differs")
    return out
