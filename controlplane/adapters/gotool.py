"""The Go toolchain: build a program pinned by a go.mod/go.sum of this repository (module mode,
the module proxy as Go is configured) into a reusable cache, once per digest of those files."""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404  # only for TimeoutExpired of processes.run
from pathlib import Path

from controlplane.adapters.processes import run
from controlplane.core.errors import ArtifactError

# A cold build of a large program (Jaeger: ~1,000 packages) takes many minutes on 2 cores.
BUILD_TIMEOUT_S = 3600
# Below the services already running beside the build (a stack being started, other stacks).
BUILD_NICENESS = 10


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise ArtifactError(
            "the Go toolchain (go) is not installed; it builds the stack's Jaeger",
            hint="install Go (apt-get install golang-go, or the toolchain of go.dev), "
            "or start the stack without jaeger: `cdcctl stack up postgres redis ...`",
        )
    return go


def build(module_dir: Path, package: str, binary: Path, *, ldflags: str = "") -> Path:
    """``go build`` `package` as `module_dir`'s go.mod pins it into `binary` (written atomically:
    a half-built file never takes its place). Go's own build cache makes a rebuild quick."""
    # Per process: two stacks starting at once may build the same binary side by side.
    tmp = binary.with_name(f"{binary.name}.{os.getpid()}.partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    # No -trimpath: it changes every package's build id, so Go's build cache of a plain
    # `go build` (or `go install`) of the same modules would not be reused.
    argv = ["nice", "-n", str(BUILD_NICENESS), _go(), "build"]
    if ldflags:
        argv.append(f"-ldflags={ldflags}")
    argv += ["-o", str(tmp), package]
    # go.mod and go.sum are the pins: never rewritten, no toolchain downloaded in their name, no
    # VCS stamping (the module is part of this checkout).
    env = {"GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local"}
    try:
        out = run(argv, timeout=BUILD_TIMEOUT_S, cwd=module_dir, env=env)
    except subprocess.TimeoutExpired as exc:
        raise ArtifactError(
            f"building {package} took longer than {BUILD_TIMEOUT_S} s",
            hint="run the same `go build` in " + str(module_dir) + " to see where it stands",
        ) from exc
    if out.returncode != 0 or not tmp.exists():
        lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()][-8:]
        raise ArtifactError(
            f"building {package} with Go failed:\n" + "\n".join(lines),
            hint=f"run `go build {package}` in {module_dir} to see the whole output; the module "
            "proxy must be reachable (`go env GOPROXY`) and Go new enough for its go.mod",
        )
    tmp.replace(binary)
    return binary
