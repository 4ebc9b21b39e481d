"""cdc_raw usage (decision 0105): the yaml parsing, Cassandra's own full test, the exporter's
metrics text, and the alert rules under `promtool test rules`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from controlplane.adapters import metrics_http
from controlplane.core.cdc_raw import (
    DEFAULT_CDC_TOTAL_SPACE_CAP,
    MIB,
    parse_cassandra_yaml,
    parse_data_size,
    parse_node_spec,
    usage,
    usage_gauges,
)
from controlplane.core.stack_model import stack_settings, template_context
from controlplane.services import cdc_raw as service

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"


@pytest.mark.parametrize(
    ("text", "size"),
    [("1024MiB", 1024 * MIB), ("48MiB", 48 * MIB), ("1GiB", 1 << 30), ("512KiB", 512 << 10)],
)
def test_data_sizes(text: str, size: int) -> None:
    assert parse_data_size(text) == size


@pytest.mark.parametrize("bad", ["1024", "12 MB", "lots", True])
def test_bad_data_sizes_say_so(bad: object) -> None:
    with pytest.raises(ValueError, match="data size"):
        parse_data_size(bad)


def test_yaml_settings_and_cassandras_defaults(tmp_path: Path) -> None:
    cfg = parse_cassandra_yaml(
        "cdc_enabled: true\ncdc_raw_directory: /var/lib/cassandra/cdc_raw\n"
        "cdc_total_space: 64MiB\ncommitlog_segment_size: 1MiB\ncdc_block_writes: true\n",
        "node1",
    )
    assert (cfg.total_space_bytes, cfg.segment_size_bytes, cfg.block_writes) == (
        64 * MIB,
        MIB,
        True,
    )
    # Unset: cdc_raw under the storage dir, min(4 GiB, 1/8 of the volume), 32 MiB segments,
    # cdc_block_writes true (Config.java of 5.0.2).
    dflt = parse_cassandra_yaml("cdc_enabled: true\n", "n", storagedir=tmp_path)
    assert dflt.cdc_raw_dir == tmp_path / "cdc_raw"
    assert dflt.block_writes is True
    assert dflt.segment_size_bytes == 32 * MIB
    assert dflt.total_space(8 * (1 << 30)) == 1 << 30
    assert dflt.total_space(1 << 40) == DEFAULT_CDC_TOTAL_SPACE_CAP
    # The pre-4.1 key still counts.
    old = parse_cassandra_yaml("cdc_raw_directory: /x\ncdc_total_space_in_mb: 100\n", "n")
    assert old.total_space_bytes == 100 * MIB


def test_yaml_without_a_cdc_dir_or_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="cdc_raw_directory"):
        parse_cassandra_yaml("cdc_enabled: true\n", "n")
    with pytest.raises(ValueError, match="no settings"):
        parse_cassandra_yaml("", "n")


def test_full_is_cassandras_test_used_plus_one_segment() -> None:
    cfg = parse_cassandra_yaml(
        "cdc_raw_directory: /x\ncdc_total_space: 10MiB\ncommitlog_segment_size: 1MiB\n", "node1"
    )
    assert usage(cfg, [MIB] * 8, 0).state == "ok"  # 80 % exactly: not over
    assert usage(cfg, [MIB] * 8 + [1], 0).state == "alert"
    full = usage(cfg, [MIB] * 9 + [1], 0)  # 9 MiB + 1 B + one segment > 10 MiB
    assert full.full
    assert full.state == "full: writes to CDC tables rejected"
    row = full.row()
    assert row["cdc_raw_bytes"] == 9 * MIB + 1
    assert row["files"] == 10


def test_the_exporter_serves_both_gauges_per_node(tmp_path: Path) -> None:
    raw = tmp_path / "cdc_raw"
    raw.mkdir()
    (raw / "CommitLog-7-1.log").write_bytes(b"x" * 3000)
    (raw / "CommitLog-7-1_cdc.idx").write_text("3000\nCOMPLETED\n")
    (raw / "sub").mkdir()
    (raw / "sub" / "f").write_bytes(b"y" * 10)
    (raw / "link").symlink_to(raw / "CommitLog-7-1.log")  # not counted: not a regular file
    yaml_file = tmp_path / "cassandra.yaml"
    yaml_file.write_text(
        f"cdc_raw_directory: {raw}\ncdc_total_space: 16MiB\ncdc_block_writes: false\n"
    )
    sources = service.sources_from_specs([f"node7={yaml_file}"])
    text = service.exposition(sources)
    assert 'cassandra_cdc_raw_bytes{node="node7"} 3025.0' in text, text
    assert 'cassandra_cdc_total_space_bytes{node="node7"} 1.6777216e+07' in text
    assert 'cassandra_cdc_block_writes{node="node7"} 0.0' in text


def test_a_served_endpoint_answers_and_a_missing_dir_is_an_error(tmp_path: Path) -> None:
    import httpx

    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(f"cdc_raw_directory: {tmp_path}\ncdc_total_space: 16MiB\n")
    errors: list[Exception] = []
    server = service.serve(
        service.sources_from_specs([str(yaml_file)]), "127.0.0.1", 0, errors.append
    )
    try:
        port = server.port
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'cassandra_cdc_total_space_bytes{node="node1"}' in body
        # The directory disappears: the scrape still answers, without the series, and says why.
        yaml_file.write_text(f"cdc_raw_directory: {tmp_path / 'gone'}\n")
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "cassandra_cdc_raw_bytes{" not in body
        assert errors
        assert "is not a directory" in str(errors[0])
    finally:
        server.close()


def test_node_specs() -> None:
    assert parse_node_spec("node2=/etc/c.yaml") == ("node2", Path("/etc/c.yaml"))
    assert parse_node_spec("/etc/c.yaml") == ("node1", Path("/etc/c.yaml"))
    with pytest.raises(ValueError, match="NODE=PATH"):
        parse_node_spec("=/x")
    with pytest.raises(Exception, match="named twice"):
        service.sources_from_specs(["a=/x", "a=/y"])


def test_gauges_are_pure_data() -> None:
    cfg = parse_cassandra_yaml("cdc_raw_directory: /x\ncdc_total_space: 8MiB\n", "node1")
    names = [g.name for g in usage_gauges([usage(cfg, [5], 0)])]
    assert names == [
        "cassandra_cdc_raw_bytes",
        "cassandra_cdc_total_space_bytes",
        "cassandra_cdc_block_writes",
    ]
    assert "cassandra_cdc_raw_bytes" in metrics_http.exposition(
        lambda: usage_gauges([usage(cfg, [5], 0)])
    )


def test_the_stack_renders_its_cdc_choices(tmp_path: Path) -> None:
    import jinja2
    import yaml

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROOT / "compose" / "native" / "config"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML
    )
    tpl = env.get_template("cassandra.yaml.j2")
    default = yaml.safe_load(tpl.render(**template_context(stack_settings(tmp_path))))
    assert (default["cdc_total_space"], default["cdc_block_writes"]) == ("1024MiB", False)
    small = stack_settings(tmp_path, cdc_total_space_mib=48, cdc_block_writes=True)
    doc = yaml.safe_load(tpl.render(**template_context(small)))
    assert (doc["cdc_total_space"], doc["cdc_block_writes"]) == ("48MiB", True)
    cfg = parse_cassandra_yaml(tpl.render(**template_context(small)), "node1")
    assert cfg.total_space_bytes == 48 * MIB
    assert cfg.block_writes is True


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_promtool_unit_tests_of_the_alert_rules() -> None:
    out = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=DASHBOARDS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
