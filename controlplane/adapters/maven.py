"""Maven: resolve the pinned artifact lists of compose/native into a reusable cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from controlplane.adapters.processes import run
from controlplane.core.errors import ArtifactError

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"


def cache_root() -> Path:
    return Path(os.environ.get("CDC_CACHE_DIR", Path.home() / ".cache" / "cass-cdc-pg"))


def content_key(*paths: Path) -> str:
    """A short digest of files (or every file under directories): the cache key of a resolution."""
    h = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            h.update(str(f.relative_to(root.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def content_key_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise ArtifactError(
            "Maven (mvn) is not installed; it resolves the stack's Java artifacts",
            hint="apt-get install maven",
        )
    return mvn


def resolve(pom: Path, parent_pom: Path, name: str) -> Path:
    """Copy the dependencies of `pom` into the cache once; later calls reuse that directory."""
    target = cache_root() / "artifacts" / f"{name}-{content_key(parent_pom, pom)}"
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    out = run(
        [
            _mvn(),
            "-B",
            "-q",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={tmp}",
        ],
        timeout=1800,
    )
    if out.returncode != 0:
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if "ERROR" in ln][:5]
        raise ArtifactError(
            f"Maven could not resolve the artifacts of {pom}:\n" + "\n".join(errors),
            hint="check the versions in compose/native/pom.xml exist in Maven Central "
            "(`mvn dependency:get -Dartifact=G:A:V`), and that the registry is reachable",
        )
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def unpack_tar(archive: Path, dest: Path) -> Path:
    """Unpack a plugin archive once (dest is replaced atomically)."""
    if (dest / ".complete").exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def build_project(pom: Path, artifact: str, name: str, depends_on: tuple[Path, ...] = ()) -> Path:
    """`mvn package` a project of this repository once per source digest; return the artifact.

    ``depends_on``: poms of this repository's projects it builds against; they are `mvn
    install`ed into the local repository first and their sources are part of the digest."""
    src = pom.parent
    parts = [pom, src / "src" / "main"]
    for dep in depends_on:
        parts += [dep, dep.parent / "src" / "main"]
    key = content_key(*(p for p in parts if p.exists()))
    target = cache_root() / "builds" / f"{name}-{key}"
    jar = target / Path(artifact).name
    if jar.exists():
        return jar
    for dep in depends_on:
        out = run([_mvn(), "-B", "-q", "-f", str(dep), "install", "-DskipTests"], timeout=1800)
        if out.returncode != 0:
            errors = [ln for ln in (out.stdout + out.stderr).splitlines() if "ERROR" in ln][:8]
            raise ArtifactError(
                f"installing {dep} (needed by {pom}) failed:\n" + "\n".join(errors),
                hint=f"run `mvn -f {dep} install` to see the whole output",
            )
    out = run([_mvn(), "-B", "-q", "-f", str(pom), "package", "-DskipTests"], timeout=1800)
    built = src / artifact
    if out.returncode != 0 or not built.exists():
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if "ERROR" in ln][:8]
        raise ArtifactError(
            f"building {pom} failed:\n" + "\n".join(errors),
            hint=f"run `mvn -f {pom} package` to see the whole output",
        )
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, jar)
    return jar
