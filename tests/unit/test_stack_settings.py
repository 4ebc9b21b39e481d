"""Persisted stack settings (stack.json), the agent runtime outside the stack service, and the
clean environment services that resolve secrets start with. No service is started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from controlplane.adapters import processes
from controlplane.core.errors import StackError, UsageError
from controlplane.core.stack_model import Ports, StackLayout, StackSettings, stack_settings
from controlplane.services import stack_settings as ss
from controlplane.services.local_agents import LocalAgents

FAR = 41000  # shifted ports nobody uses during unit tests


def test_settings_for_reads_stack_json(tmp_path: Path) -> None:
    assert ss.settings_for(tmp_path) == StackSettings(layout=StackLayout(root=tmp_path))
    (tmp_path / "stack.json").write_text(json.dumps({"port_offset": 20000, "secure": True}))
    s = ss.settings_for(tmp_path)
    assert s.ports == Ports().shifted(20000)
    assert s.tls is True  # `secure` of old files is ignored: TLS is the default (0114)
    assert s.layout.root == tmp_path


def test_settings_for_the_default_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDC_STACK_DIR", str(tmp_path))
    (tmp_path / "stack.json").write_text('{"port_offset": 7, "secure": false}')
    assert ss.default_state_dir() == tmp_path.resolve()
    assert ss.settings_for().ports.redis == 6379 + 7


def test_a_broken_stack_json_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text('{"port_offset": "ten"}')
    with pytest.raises(UsageError, match="port_offset must be a non-negative integer") as info:
        ss.settings_for(tmp_path)
    assert "stack.json" in (info.value.hint or "")
    assert info.value.exit_code == 2


def test_chosen_settings_override_only_what_is_given(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text('{"port_offset": 100, "insecure": true}')
    assert ss.chosen_settings(tmp_path).ports == Ports().shifted(100)
    only_mode = ss.chosen_settings(tmp_path, insecure=False)
    assert (only_mode.ports, only_mode.tls) == (Ports().shifted(100), True)
    only_offset = ss.chosen_settings(tmp_path, port_offset=0)
    assert (only_offset.ports, only_offset.tls) == (Ports(), False)
    with pytest.raises(UsageError, match="out of range"):
        ss.chosen_settings(tmp_path, port_offset=60000)


def test_save_writes_stack_json_once(tmp_path: Path) -> None:
    s = stack_settings(tmp_path / "st", 20000)
    ss.save(s)
    path = tmp_path / "st" / "stack.json"
    assert json.loads(path.read_text()) == {
        "port_offset": 20000,
        "nodes": 1,
        "connect_workers": 1,
        "agent_log_level": "INFO",
        "cdc_total_space_mib": 1024,
        "cdc_block_writes": False,
        "cassandra_version": "5.0",
    }
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    ss.save(s)
    assert path.stat().st_mtime_ns == before
    odd = StackSettings(layout=StackLayout(root=tmp_path), ports=Ports(redis=1))
    with pytest.raises(UsageError, match="shifted alike"):
        ss.save(odd)


def test_up_refuses_other_settings_while_the_stack_runs(tmp_path: Path) -> None:
    from controlplane.services.stack import LocalStack

    ss.save(stack_settings(tmp_path, FAR))
    # This test process stands for a running service of that stack.
    (tmp_path / "run").mkdir()
    processes.write_pid_file(tmp_path / "run" / "redis.pid", os.getpid())
    other = LocalStack(stack_settings(tmp_path, FAR + 1, insecure=True))
    with pytest.raises(UsageError, match="runs with port offset 41000") as info:
        other.up(["redis"], persist=True)
    assert "stack down" in (info.value.hint or "")
    assert json.loads((tmp_path / "stack.json").read_text())["port_offset"] == FAR


@pytest.mark.parametrize("module", ["stack_settings", "local_agents", "stack_runtime"])
def test_modules_apply_may_use_do_not_import_the_stack_service(module: str) -> None:
    code = (
        f"import controlplane.services.{module}, sys; "
        "print('controlplane.services.stack' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "False"


# --- LocalAgents ----------------------------------------------------------------------------


def test_local_agents_properties_pointer(tmp_path: Path) -> None:
    agents = LocalAgents(stack_settings(tmp_path, FAR))
    assert agents.properties_path() == tmp_path / "config" / "agent.properties"
    agents.use_properties(tmp_path / "p" / "node1.properties")
    assert agents.properties_path() == tmp_path / "p" / "node1.properties"
    assert agents.http_url() == f"http://127.0.0.1:{8001 + FAR}"
    assert agents.running() is False


def test_local_stack_delegates_to_the_one_agent_recipe(tmp_path: Path) -> None:
    from controlplane.services.stack import LocalStack

    st = LocalStack(stack_settings(tmp_path, FAR))
    st.use_agent_properties(tmp_path / "a.properties")
    assert LocalAgents(st.s).properties_path() == tmp_path / "a.properties"
    assert st.agent_properties_path() == tmp_path / "a.properties"
    assert st.endpoints().agent_url == st.agents.http_url()
    assert st.agent_running() is False


def test_restart_without_the_stacks_configs_says_what_to_do(tmp_path: Path) -> None:
    calls: list[str] = []
    agents = LocalAgents(stack_settings(tmp_path, FAR))
    with pytest.raises(StackError, match="agent cannot start") as info:
        agents.restart(before_start=lambda: calls.append("before"))
    assert calls == ["before"]
    assert "cdcctl stack up" in (info.value.hint or "")


# --- a clean environment for services that resolve secrets ---------------------------------


def test_spawn_without_the_callers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "caller-secret")
    monkeypatch.setenv("CDC_PG_PASSWORD", "caller-password")
    for inherit in (True, False):
        log = tmp_path / f"env-{inherit}.log"
        pid = processes.spawn(
            "env",
            ["/usr/bin/env"],
            log_file=log,
            pid_file=tmp_path / "env.pid",
            env={"ONLY_THIS": "1"},
            inherit_env=inherit,
        )
        deadline = time.monotonic() + 10
        while processes.alive(pid) and time.monotonic() < deadline:
            processes.reap(pid)
            time.sleep(0.05)
        names = {line.split("=", 1)[0] for line in log.read_text().splitlines() if "=" in line}
        assert "ONLY_THIS" in names
        assert ("VAULT_TOKEN" in names) is inherit
        assert ("CDC_PG_PASSWORD" in names) is inherit
        if not inherit:
            assert names <= {*processes.BASE_ENV_NAMES, "ONLY_THIS"}
            assert "PATH" in names


def test_a_pid_file_names_only_the_process_it_was_written_for(tmp_path: Path) -> None:
    # stack down must never signal a process a stale, recycled or planted pid file names
    pid_file = tmp_path / "svc.pid"
    processes.write_pid_file(pid_file, os.getpid())
    assert processes.read_pid(pid_file) == os.getpid()
    assert pid_file.stat().st_mode & 0o777 == 0o600
    pid_file.write_text(f"{os.getpid()}\n")  # no start time: an older cdcctl's file ...
    started = psutil.Process().create_time()
    os.utime(pid_file, (started + 1, started + 1))  # ... written as this process started
    assert processes.read_pid(pid_file) == os.getpid()
    os.utime(pid_file, (started + 3600, started + 3600))  # planted long after it started
    assert processes.read_pid(pid_file) is None
    os.utime(pid_file, (started - 5, started - 5))  # written before it started: a reused pid
    assert processes.read_pid(pid_file) is None
    pid_file.write_text(f"{os.getpid()} 12.00\n")  # the pid was reused by another process
    assert processes.read_pid(pid_file) is None
    pid_file.unlink()
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    pid_file.symlink_to(target)  # never written through
    processes.write_pid_file(pid_file, os.getpid())
    assert target.read_text() == "keep"
    assert processes.read_pid(pid_file) == os.getpid()


def test_logs_and_diff_files_are_private_and_never_written_through_a_symlink(
    tmp_path: Path,
) -> None:
    from controlplane.adapters import private_files

    log = tmp_path / "svc.log"
    log.write_text("old\n")
    log.chmod(0o644)  # a log an older stack created world-readable
    with private_files.open_append(log) as fh:
        fh.write("new\n")
    assert log.read_text() == "old\nnew\n"
    assert log.stat().st_mode & 0o777 == 0o600
    with private_files.open_append(tmp_path / "fresh.log", binary=True) as fb:
        fb.write(b"x")
    assert (tmp_path / "fresh.log").stat().st_mode & 0o777 == 0o600
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "link.log").symlink_to(target)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        private_files.open_append(tmp_path / "link.log")
    assert target.read_text() == "keep"


def test_pg_ident_lets_only_the_named_os_users_be_the_superuser() -> None:
    from controlplane.core.stack_model import PG_ADMIN_MAP, pg_ident_conf

    text = pg_ident_conf(["root", "postgres", "root"])
    lines = [ln.split() for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == [[PG_ADMIN_MAP, '"root"', "postgres"], [PG_ADMIN_MAP, '"postgres"', "postgres"]]
