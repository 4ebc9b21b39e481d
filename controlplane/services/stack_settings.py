"""Where a local stack lives and how it was started, without the stack service itself: commands
other than `cdcctl stack` reach the local stack only as a target (services.targets), and the
import-linter contract keeps them away from services.stack."""

from __future__ import annotations

import json
import os
from pathlib import Path

from controlplane.core.stack_model import Ports, StackLayout, StackSettings


def repo_root() -> Path:
    """The checkout holding compose/ and transforms/ (cdcctl is installed editable from it)."""
    env = os.environ.get("CDC_REPO_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def default_state_dir() -> Path:
    return Path(os.environ.get("CDC_STACK_DIR", repo_root() / ".stack")).resolve()


def settings_for(state_dir: Path | None = None) -> StackSettings:
    """The settings of the stack at `state_dir` (default `.stack/`), with the port offset it was
    started with (``<state>/stack.json``) when it records one."""
    layout = StackLayout(root=(state_dir or default_state_dir()).resolve())
    recorded: dict[str, object] = {}
    try:
        recorded = json.loads((layout.root / "stack.json").read_text())
    except (OSError, ValueError):
        recorded = {}
    offset = recorded.get("port_offset", 0) if isinstance(recorded, dict) else 0
    ports = Ports().shifted(offset) if isinstance(offset, int) and offset else Ports()
    return StackSettings(layout=layout, ports=ports)
