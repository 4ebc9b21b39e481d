"""The stack's Jaeger as data (decision 0123): pinned by compose/native/jaeger/go.mod, every
listener on 127.0.0.1 at the stack's ports, and the endpoint cdcctl's spans go to."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from controlplane.core.stack_model import (
    JAEGER_MODULE,
    go_module_version,
    jaeger_command,
    jaeger_ldflags,
    stack_settings,
    template_context,
)

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "compose" / "native"


def test_the_go_mod_pins_jaeger_as_a_tool_at_an_approved_release() -> None:
    go_mod = (NATIVE / "jaeger" / "go.mod").read_text()
    assert f"tool {JAEGER_MODULE}/cmd/jaeger" in go_mod
    assert go_module_version(go_mod, JAEGER_MODULE) == "v1.75.0"
    assert (NATIVE / "jaeger" / "go.sum").read_text().count(f"{JAEGER_MODULE} v1.75.0") == 2
    assert go_module_version("require (\n\tother v1\n)\n", JAEGER_MODULE) == "?"


def test_the_compose_image_is_the_same_release() -> None:
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    # v1.75.0 of the module is the release also tagged v2.12.0 (the v2 image's tag).
    assert compose["services"]["jaeger"]["image"] == "jaegertracing/jaeger:2.12.0"


def test_every_listener_is_on_loopback_at_the_stack_ports(tmp_path: Path) -> None:
    s = stack_settings(tmp_path, 7000)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(NATIVE / "config"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML
    )
    doc = yaml.safe_load(env.get_template("jaeger.yaml.j2").render(**template_context(s)))
    query = doc["extensions"]["jaeger_query"]
    otlp = doc["receivers"]["otlp"]["protocols"]
    assert query["http"]["endpoint"] == "127.0.0.1:23686"
    assert query["grpc"]["endpoint"] == "127.0.0.1:23685"
    assert otlp["http"]["endpoint"] == "127.0.0.1:11318"
    assert otlp["grpc"]["endpoint"] == "127.0.0.1:11317"
    assert doc["service"]["telemetry"]["metrics"]["level"] == "none"  # no shared :8888
    backend = doc["extensions"]["jaeger_storage"]["backends"][query["storage"]["traces"]]
    assert "memory" in backend
    assert s.ports.of("jaeger") == [23686, 11318, 11317, 23685]


def test_cdcctl_sends_to_the_otlp_http_receiver_and_reads_the_query_api(tmp_path: Path) -> None:
    s = stack_settings(tmp_path, 7000)
    assert s.otlp_endpoint == "http://127.0.0.1:11318"
    assert s.jaeger_url == "http://127.0.0.1:23686"
    binary = tmp_path / "jaeger"
    assert jaeger_command(binary, s) == [str(binary), "--config", f"file:{s.layout.jaeger_config}"]
    assert jaeger_ldflags("v1.75.0").endswith("/internal/version.latestVersion=v1.75.0")
