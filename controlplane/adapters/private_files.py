"""Files only their owner may read: service logs, verify's diff files, lock files.

Opened with ``O_NOFOLLOW`` (never written through a symlink left at that name) and created 0600;
an existing file is narrowed to 0600 too (logs of older stacks were created world-readable)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Literal, overload

PRIVATE_MODE = 0o600


@overload
def open_append(path: Path, binary: Literal[True]) -> IO[bytes]: ...
@overload
def open_append(path: Path, binary: Literal[False] = ...) -> IO[str]: ...


def open_append(path: Path, binary: bool = False) -> IO[Any]:
    """`path` opened for appending, created 0600 when missing."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)
        return os.fdopen(fd, "ab") if binary else os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
