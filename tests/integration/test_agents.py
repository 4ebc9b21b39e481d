"""`cdcctl agent render|status` against the running local stack: the node is read from the real
Cassandra (system.local/system.peers_v2), its bundle is written, and the stack's own agent
(http port 8001) answers /ping, /health and /buildinfo; a port nobody listens on exits 5."""

from __future__ import annotations

import json
import socket
import stat
import subprocess  # nosec B404 - the CLI under test
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from controlplane.core.agent_bundle import BUNDLE_FILES, ENV_FILE, PROPERTIES_FILE
from controlplane.core.manifest_loader import load_manifests
from controlplane.core.render import parse_properties
from controlplane.services import agents
from controlplane.services.stack import Endpoints
from controlplane.services.targets import resolve_target
from tests.cli import cdcctl
from tests.manifests import local_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No cdcctl contexts: the target is the local stack (here and in the CLI's processes)."""
    values = {"CDCCTL_CONFIG": str(tmp_path / "no-contexts.yaml")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CDCCTL_CONTEXT", raising=False)
    return values


def write_manifest(path: Path, stack: Endpoints, nodes: str = "") -> Path:
    agent = "    agent:\n      mode: external\n" + (f"      nodes: {nodes}\n" if nodes else "")
    text = local_pipeline("agents", "agents_ks", ["t"]).replace(
        "      tables: [t]\n", "      tables: [t]\n" + agent
    )
    text = text.replace("127.0.0.1:9042", f"{stack.cassandra_host}:{stack.cassandra_port}")
    path.write_text(text)
    return path


def agent_port(stack: Endpoints) -> int:
    return urlsplit(stack.agent_url).port or 8001


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_discovers_the_local_node(stack: Endpoints, tmp_path: Path, env: dict[str, str]) -> None:
    [loaded] = load_manifests([write_manifest(tmp_path / "m.yaml", stack)])
    target = resolve_target()
    assert target.is_local
    members = agents.discover(loaded.pipeline, target)
    assert any(m[0] == stack.cassandra_host and m[1] == "datacenter1" for m in members)
    found = agents.cluster_nodes(loaded.pipeline, target)
    assert stack.cassandra_host in [c.address for c in found]
    assert all(c.release_version and c.host_id and not c.from_manifest for c in found)
    digests = agents.bundle_digests_for(loaded.pipeline, target)
    assert set(digests) == {c.id for c in found}


def test_render_a_discovered_node(stack: Endpoints, tmp_path: Path, env: dict[str, str]) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", stack)
    out = tmp_path / "bundles"
    proc = cdcctl("agent", "render", "-f", str(manifest), "--out", str(out), "-o", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    node_id = "node-" + stack.cassandra_host.replace(".", "-")
    [mine] = [r for r in results if r["node_id"] == node_id]
    assert mine["address"] == stack.cassandra_host
    assert mine["datacenter"] == "datacenter1"
    assert mine["mode"] == "external"
    directory = out / node_id
    assert sorted(p.name for p in directory.iterdir()) == sorted(BUNDLE_FILES)
    assert stat.S_IMODE((directory / ENV_FILE).stat().st_mode) == 0o600
    props = parse_properties((directory / PROPERTIES_FILE).read_text())
    assert props["cassandra.node.id"] == node_id
    assert props["http.port"] == "8000"  # the agent's default: nodes were not listed
    driver = (directory / "driver.conf").read_text()
    assert f'"{stack.cassandra_host}:{stack.cassandra_port}"' in driver
    # The same bundle again (same digest); a node that does not exist is a usage error.
    again = cdcctl("agent", "render", "-f", str(manifest), "--out", str(out), "-o", "json", env=env)
    assert json.loads(again.stdout) == results
    bad = cdcctl(
        "agent", "render", "-f", str(manifest), "--out", str(out), "--node", "nope", env=env
    )
    assert bad.returncode == 2
    assert f"known node ids: {node_id}" in bad.stderr
    table = cdcctl("agent", "render", "-f", str(manifest), "--out", str(out), env=env)
    assert table.returncode == 0, table.stderr
    assert "systemctl daemon-reload && systemctl enable cass-cdc-pg-agent" in table.stdout


def test_manifest_node_outside_the_cluster(
    stack: Endpoints, tmp_path: Path, env: dict[str, str]
) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", stack, "[{address: 10.255.255.1}]")
    proc = cdcctl("agent", "render", "-f", str(manifest), "--out", str(tmp_path / "o"), env=env)
    assert proc.returncode == 5
    assert "10.255.255.1 is not a member of the Cassandra cluster" in proc.stderr
    assert f"{stack.cassandra_host} (datacenter1)" in proc.stderr


def test_status_of_the_running_agent(stack: Endpoints, tmp_path: Path, env: dict[str, str]) -> None:
    nodes = f"[{{address: {stack.cassandra_host}, httpPort: {agent_port(stack)}}}]"
    manifest = write_manifest(tmp_path / "m.yaml", stack, nodes)
    # The stack's agent restarts when a pipeline is applied (other tests): give it a minute.
    deadline = time.monotonic() + 60
    while True:
        proc = cdcctl("agent", "status", "-f", str(manifest), "-o", "json", env=env)
        if proc.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert proc.returncode == 0, proc.stderr
    [agent] = json.loads(proc.stdout)
    assert agent["url"] == f"http://{stack.cassandra_host}:{agent_port(stack)}"
    assert (agent["reachable"], agent["healthy"], agent["error"]) == (True, True, None)
    assert agent["components"] == {"CassandraClient": True, "ProcessorGroup": True}
    assert agent["version"].endswith(".Final")
    table = cdcctl("agent", "status", "-f", str(manifest), env=env)
    assert table.returncode == 0, table.stderr
    assert "healthy" in table.stdout


def test_status_of_an_agent_that_does_not_answer(
    stack: Endpoints, tmp_path: Path, env: dict[str, str]
) -> None:
    port = free_port()
    nodes = f"[{{address: {stack.cassandra_host}, httpPort: {port}}}]"
    manifest = write_manifest(tmp_path / "m.yaml", stack, nodes)
    proc: subprocess.CompletedProcess[str] = cdcctl(
        "agent", "status", "-f", str(manifest), "-o", "json", env=env
    )
    assert proc.returncode == 5
    [agent] = json.loads(proc.stdout)
    assert (agent["reachable"], agent["healthy"]) == (False, None)
    url = f"http://{stack.cassandra_host}:{port}"
    assert "1 of 1 agent(s) unreachable or unhealthy" in proc.stderr
    assert f"cannot connect to the agent at {url}/ping" in proc.stderr
    assert "systemctl status cass-cdc-pg-agent" in proc.stderr  # what to do
