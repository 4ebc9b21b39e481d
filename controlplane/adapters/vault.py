"""Secrets: resolve a secret reference from the environment, a file, or Vault/OpenBao KV v2
(through hvac). Values are only ever returned to the caller, never logged, rendered or put in an
exception; hvac's and requests' errors become `SecretError` in one place (`_vault_errors`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import hvac.exceptions
import requests

from controlplane.core.errors import SecretError
from controlplane.core.manifest import SecretRef
from controlplane.core.properties import load_properties
from controlplane.core.redaction import redacted_in_logs
from controlplane.core.target import VaultAccess


@dataclass(frozen=True)
class VaultSecret:
    data: dict[str, str]
    version: int


@redacted_in_logs  # every value returned is masked in log lines (core.redaction)
def resolve(
    ref: SecretRef, *, base_dir: Path | None = None, vault: VaultAccess | None = None
) -> str:
    """The secret's value. Relative file paths are taken from `base_dir` (the manifest's folder);
    Vault references are read with `vault` (address, CA, token reference)."""
    if ref.env:
        value = os.environ.get(ref.env)
        if not value:
            raise SecretError(
                f"the environment variable {ref.env} (a secret reference) is not set",
                hint=f'export {ref.env}=... (for the local stack: eval "$(cdcctl stack env)")',
            )
        return value
    if ref.file:
        path = Path(ref.file).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return _from_file(path, ref.key)
    if ref.vault:
        secret = read(ref.vault.path, vault or env_access())
        if ref.vault.key not in secret.data:
            raise SecretError(
                f"Vault secret {ref.vault.path} has no key {ref.vault.key!r} "
                f"(it has: {', '.join(sorted(secret.data)) or 'none'})",
                hint="fix the key in the manifest, or add it: "
                f"bao kv patch {ref.vault.path} {ref.vault.key}=...",
            )
        return secret.data[ref.vault.key]
    raise SecretError("empty secret reference", hint="give one of env, file or vault")


def _from_file(path: Path, key: str | None) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from exc
    if key is None:
        return text.strip()
    entries = load_properties(text)
    if key not in entries:
        raise SecretError(
            f"secret file {path} has no key {key!r}",
            hint="it is read as a Java .properties file (key=value lines)",
        )
    return entries[key]


def read(path: str, access: VaultAccess) -> VaultSecret:
    """The latest version of a KV v2 secret, ``<mount>/<path>``."""
    mount, _, rest = path.partition("/")
    if not rest:
        raise SecretError(
            f"Vault path {path!r} has no mount",
            hint="KV v2 paths are <mount>/<path>, e.g. secret/cdc/postgres",
        )
    with _vault_errors(access, path):
        client = _client(access)
        answer = client.secrets.kv.v2.read_secret_version(
            path=rest, mount_point=mount, raise_on_deleted_version=True
        )
    data = answer.get("data", {}) if isinstance(answer, dict) else {}
    values = data.get("data") or {}
    version = int((data.get("metadata") or {}).get("version") or 0)
    return VaultSecret({str(k): str(v) for k, v in values.items()}, version)


def write(path: str, data: dict[str, str], access: VaultAccess) -> int:
    """Write a new version of a KV v2 secret; its version number."""
    mount, _, rest = path.partition("/")
    with _vault_errors(access, path):
        answer = _client(access).secrets.kv.v2.create_or_update_secret(
            path=rest, mount_point=mount, secret=data
        )
    return int(((answer or {}).get("data") or {}).get("version") or 0)


def _client(access: VaultAccess) -> hvac.Client:
    if access.token_secret.vault is not None:
        raise SecretError(
            "the Vault token cannot itself be a Vault reference",
            hint="give vault.tokenSecret as {env: VAULT_TOKEN} or {file: ~/.vault-token}",
        )
    token = resolve(access.token_secret)
    verify: bool | str = access.ca_file or True
    return hvac.Client(url=access.address, token=token, verify=verify, timeout=10)


@contextlib.contextmanager
def _vault_errors(access: VaultAccess, path: str) -> Iterator[None]:
    """hvac/requests errors -> SecretError naming the address and path, never the token."""
    where = f"Vault at {access.address}"
    try:
        yield
    except hvac.exceptions.InvalidPath as exc:
        raise SecretError(
            f"{where} has no secret at {path}",
            hint="check the path (KV v2: <mount>/<path>) and that the secret was written",
        ) from exc
    except hvac.exceptions.Forbidden as exc:
        raise SecretError(
            f"{where} refused to read {path}: permission denied",
            hint="the token is wrong, expired, or its policy does not allow reading this path",
        ) from exc
    except requests.exceptions.SSLError as exc:
        raise SecretError(
            f"cannot verify the TLS certificate of {where}",
            hint="give the CA that signed it (vault.caFile of the context, VAULT_CACERT)",
        ) from exc
    except requests.RequestException as exc:
        raise SecretError(
            f"cannot reach {where} to read {path}: {type(exc).__name__}",
            hint="is it running and reachable from here? (vault.address of the context)",
        ) from exc
    except hvac.exceptions.VaultError as exc:
        raise SecretError(
            f"{where} failed to read {path}: {type(exc).__name__}: {exc}",
            hint="check the Vault server's log",
        ) from exc


def env_access() -> VaultAccess:
    """VaultAccess from VAULT_ADDR / VAULT_CACERT (and VAULT_TOKEN): the Vault CLI's variables."""
    kwargs: dict[str, object] = {}
    if os.environ.get("VAULT_ADDR"):
        kwargs["address"] = os.environ["VAULT_ADDR"]
    if os.environ.get("VAULT_CACERT"):
        kwargs["ca_file"] = os.environ["VAULT_CACERT"]
    return VaultAccess.model_validate(kwargs)
