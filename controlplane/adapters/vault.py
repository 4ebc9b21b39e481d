"""Secrets: resolve a manifest's secret reference from the environment, a file, or Vault/OpenBao
(through hvac). Values are only ever returned to the caller, never logged or rendered."""

from __future__ import annotations

import os
from pathlib import Path

import hvac
import hvac.exceptions
import requests

from controlplane.core.errors import SecretError
from controlplane.core.manifest import SecretRef


def resolve(ref: SecretRef, *, base_dir: Path | None = None) -> str:
    """The secret's value. Relative file paths are taken from `base_dir` (the manifest's folder)."""
    if ref.env:
        value = os.environ.get(ref.env)
        if not value:
            raise SecretError(
                f"the environment variable {ref.env} (a secret reference) is not set",
                hint=f'export {ref.env}=... (for the local stack: eval "$(cdcctl stack env)")',
            )
        return value
    if ref.file:
        path = Path(ref.file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return _from_file(path, ref.key)
    if ref.vault:
        return _from_vault(ref.vault.path, ref.vault.key)
    raise SecretError("empty secret reference", hint="give one of env, file or vault")


def _from_file(path: Path, key: str | None) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from exc
    if key is None:
        return text.strip()
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    raise SecretError(f"secret file {path} has no key {key!r}")


def _from_vault(path: str, key: str) -> str:
    addr = os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200")
    client = hvac.Client(url=addr, token=os.environ.get("VAULT_TOKEN"), timeout=10)
    mount, _, rest = path.partition("/")
    try:
        secret = client.secrets.kv.v2.read_secret_version(
            path=rest, mount_point=mount, raise_on_deleted_version=True
        )
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise SecretError(
            f"cannot read {path} from Vault at {addr}: {exc}",
            hint="set VAULT_ADDR and VAULT_TOKEN, and check the path (KV v2: <mount>/<path>)",
        ) from exc
    data = secret.get("data", {}).get("data", {})
    if key not in data:
        raise SecretError(f"Vault secret {path} has no key {key!r}")
    return str(data[key])
