"""OpenBao's (Vault's) HTTP API for bootstrapping the local stack's server: init, unseal, the KV v2
mount, a policy, a token for the Connect workers, and the stack's own secret.

Reading a pipeline's secrets is `adapters.vault`'s job (through hvac); this module only sets a
server up. Every request verifies the server with the stack's CA. Tokens, keys and secret values
are returned to the caller only, never put in an error message.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from controlplane.core.errors import SecretError

# OpenBao accepts Vault's header name.
TOKEN_HEADER = "X-Vault-Token"  # noqa: S105  # nosec B105  # a header name, not a token


@dataclass(frozen=True)
class Health:
    initialized: bool
    sealed: bool
    standby: bool
    version: str

    @property
    def ready(self) -> bool:
        """Initialised, unsealed and active: requests are served."""
        return self.initialized and not self.sealed and not self.standby


@dataclass(frozen=True)
class InitResult:
    keys_base64: list[str]
    root_token: str


class OpenBaoAdmin:
    """One OpenBao server at `address` (``https://host:port``), verified with `ca_file`."""

    def __init__(
        self, address: str, ca_file: Path, *, token: str | None = None, timeout: float = 10.0
    ) -> None:
        self.address = address.rstrip("/")
        headers = {TOKEN_HEADER: token} if token else {}
        try:
            verify = ssl.create_default_context(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise SecretError(
                f"cannot load the CA {ca_file} to verify OpenBao at {self.address}: {exc}"
            ) from exc
        self._http = httpx.Client(
            base_url=self.address, verify=verify, headers=headers, timeout=timeout
        )

    def __enter__(self) -> OpenBaoAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------- requests
    def _request(
        self, method: str, path: str, *, json: Any = None, ok: tuple[int, ...] = ()
    ) -> httpx.Response:
        try:
            r = self._http.request(method, f"/v1/{path}", json=json)
        except httpx.HTTPError as exc:
            err = SecretError(
                f"OpenBao at {self.address} did not answer {method} /v1/{path}: {exc}",
                hint="is the stack's OpenBao running? `cdcctl stack status`, "
                "`cdcctl stack logs vault`",
            )
            err.temporary = True
            raise err from exc
        if r.status_code >= 400 and r.status_code not in ok:
            err = SecretError(
                f"OpenBao at {self.address} answered {method} /v1/{path} with "
                f"{r.status_code}: {_errors(r)}"
            )
            # 5xx, and KV v2's "upgrading" answer right after the mount is enabled, pass.
            err.temporary = r.status_code >= 500 or "upgrad" in _errors(r).lower()
            raise err
        return r

    def health(self) -> Health:
        """The server's state, whatever it is (no error for sealed or uninitialised)."""
        r = self._request(
            "GET",
            "sys/health?standbyok=true&sealedcode=200&uninitcode=200&perfstandbyok=true",
        )
        body = r.json()
        return Health(
            initialized=bool(body.get("initialized")),
            sealed=bool(body.get("sealed", True)),
            standby=bool(body.get("standby")),
            version=str(body.get("version", "?")),
        )

    def initialize(self, shares: int = 1, threshold: int = 1) -> InitResult:
        body = self._request(
            "PUT", "sys/init", json={"secret_shares": shares, "secret_threshold": threshold}
        ).json()
        return InitResult(keys_base64=list(body["keys_base64"]), root_token=body["root_token"])

    def unseal(self, key: str) -> bool:
        """Give one unseal key; True while the server is still sealed."""
        return bool(self._request("PUT", "sys/unseal", json={"key": key}).json().get("sealed"))

    def mounts(self) -> dict[str, Any]:
        """Secret engines by path (``secret/``: {type, options, …})."""
        body = self._request("GET", "sys/mounts").json()
        data = body.get("data", body)
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def enable_kv2(self, mount: str) -> None:
        self._request(
            "POST", f"sys/mounts/{mount}", json={"type": "kv", "options": {"version": "2"}}
        )

    def put_policy(self, name: str, hcl: str) -> None:
        self._request("PUT", f"sys/policies/acl/{name}", json={"policy": hcl})

    def lookup_token(self, token: str) -> dict[str, Any] | None:
        """What the server knows of `token` (policies, ttl…); None when it is not valid."""
        r = self._request("POST", "auth/token/lookup", json={"token": token}, ok=(400, 403))
        if r.status_code >= 400:
            return None
        data = r.json().get("data")
        return data if isinstance(data, dict) else None

    def renew_token(self, token: str) -> None:
        self._request("POST", "auth/token/renew", json={"token": token})

    def create_orphan_token(self, policies: list[str], *, period: str, display_name: str) -> str:
        """A periodic token with `policies` (and `default`, for renew-self/lookup-self), not a
        child of the caller's: it outlives whatever token created it."""
        body = self._request(
            "POST",
            "auth/token/create-orphan",
            json={
                "policies": policies,
                "period": period,
                "renewable": True,
                "display_name": display_name,
            },
        ).json()
        return str(body["auth"]["client_token"])

    def read_kv2(self, mount: str, path: str) -> dict[str, Any] | None:
        """The newest version's data of a KV v2 secret; None when there is none."""
        r = self._request("GET", f"{mount}/data/{path}", ok=(404,))
        if r.status_code == 404:
            return None
        data = (r.json().get("data") or {}).get("data")
        return data if isinstance(data, dict) else None

    def kv2_version(self, mount: str, path: str) -> int | None:
        r = self._request("GET", f"{mount}/data/{path}", ok=(404,))
        if r.status_code == 404:
            return None
        meta = (r.json().get("data") or {}).get("metadata") or {}
        return int(meta["version"]) if "version" in meta else None

    def write_kv2(self, mount: str, path: str, data: dict[str, str]) -> int:
        """Write a new version; returns its number."""
        body = self._request("POST", f"{mount}/data/{path}", json={"data": data}).json()
        return int((body.get("data") or {}).get("version", 0))


def _errors(r: httpx.Response) -> str:
    try:
        errors = r.json().get("errors")
    except ValueError:
        errors = None
    if isinstance(errors, list) and errors:
        return "; ".join(" ".join(str(e).split()) for e in errors)[:300]
    return r.reason_phrase or "no detail"
