"""Read and write cdcctl's config file (contexts); core.contexts has the model and precedence."""

from __future__ import annotations

import os
from pathlib import Path

from controlplane.core.contexts import CdcctlConfig, parse_config
from controlplane.core.target import Context

ENV_CONFIG = "CDCCTL_CONFIG"


def config_path() -> Path:
    override = os.environ.get(ENV_CONFIG)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cdcctl" / "config.yaml"


def load_config(path: Path | None = None) -> CdcctlConfig:
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return CdcctlConfig()
    return parse_config(text, str(path))


def save_config(config: CdcctlConfig, path: Path | None = None) -> Path:
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(config.to_yaml(), encoding="utf-8")
    tmp.replace(path)
    return path


def set_context(name: str, context: Context) -> Path:
    return save_config(load_config().with_context(name, context))


def use_context(name: str) -> Path:
    return save_config(load_config().use(name))


def get_contexts() -> list[dict[str, object]]:
    config = load_config()
    return [
        {
            "current": name == config.current_context,
            "name": name,
            "connect_url": c.connect_url,
            "local_stack": c.local_stack,
        }
        for name, c in sorted(config.contexts.items())
    ]
