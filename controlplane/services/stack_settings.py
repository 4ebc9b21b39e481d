"""Which local stack a command means: its state dir and the settings `stack up` persisted there.

`cdcctl stack up --port-offset N --secure` writes ``<state dir>/stack.json``; every later command
on that state dir (``stack status|down|logs|env``, targets resolved from it) reads it here, so a
second stack on other ports is one command. This module is light on purpose (no adapters, no
import of services.stack): whoever needs a stack's settings imports it, not the stack service.
"""

from __future__ import annotations

import os
from pathlib import Path

from controlplane.core.errors import UsageError
from controlplane.core.stack_model import (
    MAX_PORT_OFFSET,
    StackLayout,
    StackSettings,
    parse_settings_document,
    port_offset_of,
    settings_document,
    stack_settings,
)


def repo_root() -> Path:
    """The checkout holding compose/ and transforms/ (cdcctl is installed editable from it)."""
    env = os.environ.get("CDC_REPO_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def default_state_dir() -> Path:
    return Path(os.environ.get("CDC_STACK_DIR", repo_root() / ".stack")).resolve()


def persisted(root: Path) -> tuple[int, bool] | None:
    """``(port_offset, secure)`` from ``<root>/stack.json``, None when there is none."""
    path = StackLayout(root=root).settings_file
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return parse_settings_document(text, str(path))
    except ValueError as exc:
        raise UsageError(
            str(exc), hint=f"fix or delete {path} (it holds only port_offset and secure)"
        ) from exc


def settings_for(state_dir: Path | None = None) -> StackSettings:
    """The settings of the stack in `state_dir` (default `.stack/` or $CDC_STACK_DIR): its
    ``stack.json`` when there is one, the defaults otherwise."""
    root = (state_dir or default_state_dir()).resolve()
    offset, secure = persisted(root) or (0, False)
    return stack_settings(root, offset, secure)


def chosen_settings(
    state_dir: Path | None, port_offset: int | None = None, secure: bool | None = None
) -> StackSettings:
    """The persisted settings with the choices given on this command line applied (None: keep)."""
    root = (state_dir or default_state_dir()).resolve()
    old_offset, old_secure = persisted(root) or (0, False)
    offset = old_offset if port_offset is None else port_offset
    if not 0 <= offset <= MAX_PORT_OFFSET:
        raise UsageError(
            f"--port-offset {offset} is out of range",
            hint=f"give 0..{MAX_PORT_OFFSET} (every port of the stack moves by it)",
        )
    return stack_settings(root, offset, old_secure if secure is None else secure)


def save(settings: StackSettings) -> None:
    """Write ``stack.json`` (only when it changes)."""
    path = settings.layout.settings_file
    offset = port_offset_of(settings.ports)
    if offset is None:
        raise UsageError("only a stack whose ports are all shifted alike can be persisted")
    text = settings_document(offset, settings.secure)
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
