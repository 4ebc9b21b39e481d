"""The stack model's pure parts: ports, the Prometheus command line and its rendered config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from controlplane.core.stack_model import (
    SERVICE_ORDER,
    Ports,
    StackLayout,
    StackSettings,
    prometheus_command,
    prometheus_version,
    template_context,
)

ROOT = Path(__file__).resolve().parents[2]
NATIVE_CONFIG = ROOT / "compose" / "native" / "config"


def render(template: str, settings: StackSettings) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(NATIVE_CONFIG),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML
    )
    return env.get_template(template).render(**template_context(settings))


def settings(root: Path = Path("/stack"), offset: int = 0) -> StackSettings:
    return StackSettings(layout=StackLayout(root=root), ports=Ports().shifted(offset))


def test_prometheus_default_port_is_designs() -> None:
    assert Ports().prometheus == 9090  # DESIGN.md, default local endpoints
    assert Ports().of("prometheus") == [9090]


def test_shifted_moves_every_port_including_prometheus() -> None:
    base, moved = Ports(), Ports().shifted(20000)
    assert moved.prometheus == 29090
    assert {k: v + 20000 for k, v in vars(base).items()} == vars(moved)


def test_every_service_has_ports_and_prometheus_starts_after_connect() -> None:
    for svc in SERVICE_ORDER:
        assert Ports().of(svc)
    assert SERVICE_ORDER.index("prometheus") > SERVICE_ORDER.index("connect")


def test_default_ports_do_not_collide() -> None:
    ports = list(vars(Ports()).values())
    assert len(ports) == len(set(ports))


def test_prometheus_command_binds_loopback_and_keeps_state_in_the_state_dir() -> None:
    s = settings(Path("/st"), 1000)
    argv = prometheus_command(Path("/usr/bin/prometheus"), s)
    assert argv[0] == "/usr/bin/prometheus"
    assert "--web.listen-address=127.0.0.1:10090" in argv
    assert "--config.file=/st/config/prometheus.yml" in argv
    assert "--storage.tsdb.path=/st/prometheus/data" in argv
    assert "--storage.tsdb.retention.time=2d" in argv


def test_rendered_prometheus_config_scrapes_connect_and_itself() -> None:
    conf = yaml.safe_load(render("prometheus.yml.j2", settings(offset=1000)))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in conf["scrape_configs"]}
    assert jobs == {"kafka-connect": ["127.0.0.1:10404"], "prometheus": ["127.0.0.1:10090"]}
    assert conf["rule_files"] == ["alerts.yml"]


def test_rendered_config_uses_the_dashboards_job_name() -> None:
    # The alert rules select on job="kafka-connect"; both configs must name the job alike.
    ours = yaml.safe_load(render("prometheus.yml.j2", settings()))
    theirs = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    assert {j["job_name"] for j in theirs["scrape_configs"]} <= {
        j["job_name"] for j in ours["scrape_configs"]
    }
    assert ours["global"]["scrape_interval"] == theirs["global"]["scrape_interval"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_promtool_accepts_the_rendered_config(tmp_path: Path) -> None:
    (tmp_path / "prometheus.yml").write_text(render("prometheus.yml.j2", settings(tmp_path)))
    shutil.copy2(ROOT / "dashboards" / "alerts.yml", tmp_path / "alerts.yml")
    out = subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5)\n", "2.42.0"),
        ("prometheus, version 3.1.0 (branch: HEAD, revision: abc)\n  build user: x\n", "3.1.0"),
        ("something else\n", "?"),
    ],
)
def test_prometheus_version(text: str, version: str) -> None:
    assert prometheus_version(text) == version
