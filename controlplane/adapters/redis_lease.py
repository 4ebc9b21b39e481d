"""Redis leases and small per-key state for the reconciler; errors become `RedisError` here.

A lease is ``SET key token NX PX ttl``: whoever set it holds it until it expires. Extending and
releasing are Lua check-and-set scripts, so a holder whose lease already expired (and was taken by
someone else) can never extend or delete the new holder's lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import redis

from controlplane.core.errors import RedisError

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=3, decode_responses=True
    )


class Lease:
    """A named lease held by this process (identified by a random token)."""

    def __init__(self, url: str, key: str, ttl_ms: int, *, owner: str | None = None) -> None:
        self.url = url
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = owner or uuid.uuid4().hex
        self._r = _client(url)
        self.held = False

    def _call(self, what: str, fn: object) -> object:
        try:
            return fn() if callable(fn) else None
        except redis.RedisError as exc:
            raise RedisError(f"Redis at {self.url}: cannot {what} lease {self.key}: {exc}") from exc

    def acquire(self) -> bool:
        """Take the lease if free (or extend it if already ours). True when held afterwards."""
        if self.held and self.extend():
            return True
        ok = self._call(
            "acquire", lambda: self._r.set(self.key, self.token, nx=True, px=self.ttl_ms)
        )
        self.held = bool(ok)
        return self.held

    def extend(self) -> bool:
        result = self._call(
            "extend", lambda: self._r.eval(_EXTEND, 1, self.key, self.token, str(self.ttl_ms))
        )
        self.held = bool(result)
        return self.held

    def release(self) -> bool:
        result = self._call("release", lambda: self._r.eval(_RELEASE, 1, self.key, self.token))
        self.held = False
        return bool(result)

    def holder(self) -> str | None:
        value = self._call("read", lambda: self._r.get(self.key))
        return None if value is None else str(value)


class HashStore:
    """Small string maps under ``<prefix><name>`` (e.g. restart counters per connector)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._r = _client(url)

    def get(self, name: str) -> dict[str, str]:
        try:
            raw = self._r.hgetall(self.prefix + name)
        except redis.RedisError as exc:
            msg = f"Redis at {self.url}: cannot read {self.prefix}{name}: {exc}"
            raise RedisError(msg) from exc
        return {str(k): str(v) for k, v in dict(raw).items()}

    def put(self, name: str, values: Mapping[str, str]) -> None:
        try:
            mapping: dict[str | bytes, str | bytes] = dict(values.items())
            self._r.hset(self.prefix + name, mapping=mapping)  # type: ignore[arg-type]
        except redis.RedisError as exc:
            msg = f"Redis at {self.url}: cannot write {self.prefix}{name}: {exc}"
            raise RedisError(msg) from exc

    def delete(self, name: str) -> None:
        try:
            self._r.delete(self.prefix + name)
        except redis.RedisError as exc:
            msg = f"Redis at {self.url}: cannot delete {self.prefix}{name}: {exc}"
            raise RedisError(msg) from exc
