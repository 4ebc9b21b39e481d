"""Redis: checkpoints and leases; its errors become `RedisError` here.

Layout of a verify run (``<p>`` = the key prefix, ``cdc:verify`` by default):

- ``<p>:runs`` — sorted set of run ids, scored by creation time (``verify runs``);
- ``<p>:run:<id>`` — hash of the run's metadata (JSON values);
- ``<p>:run:<id>:ranges`` — hash ``task -> JSON`` (status, counters, owner, times) per range;
- ``<p>:run:<id>:lease:<task>`` — a lease: ``SET token NX PX ttl``, extended and released by a
  Lua script that checks the token, so a process can only touch its own lease.

Every command is retried with backoff on connection errors, so a Redis restart in the middle of
a run only pauses it. Durability is Redis's: see docs/verify.md (AOF, ``appendfsync everysec``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from controlplane.core.errors import RedisError, UsageError
from controlplane.core.target import RedisEndpoint

RedisLike = str | RedisEndpoint
"""A Redis URL, or an endpoint with the ACL user's password and the CA (decision 0110)."""


def as_endpoint(where: RedisLike) -> RedisEndpoint:
    return where if isinstance(where, RedisEndpoint) else RedisEndpoint(url=where)


def _tls_options(endpoint: RedisEndpoint) -> dict[str, Any]:
    """Password and, for rediss://, a verified TLS connection (host name checked)."""
    out: dict[str, Any] = {}
    if endpoint.password is not None:
        out["password"] = endpoint.password
    if endpoint.url.startswith("rediss://"):
        out["ssl_cert_reqs"] = "required"
        out["ssl_check_hostname"] = True
        if endpoint.ca_file:
            out["ssl_ca_certs"] = endpoint.ca_file
    return out


_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def client(url: RedisLike, *, retries: int = 40) -> redis.Redis:
    """A client that rides out a Redis restart: ~40 retries with backoff capped at 1 s."""
    return _from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=3,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        decode_responses=True,
    )


def _from_url(where: RedisLike, **kwargs: Any) -> redis.Redis:
    """`redis.Redis.from_url` with the endpoint's login and TLS; a URL it cannot read is a usage
    error (exit 2), not a crash."""
    endpoint = as_endpoint(where)
    try:
        return redis.Redis.from_url(endpoint.url, **_tls_options(endpoint), **kwargs)
    except ValueError as exc:
        raise UsageError(
            f"{endpoint.url!r} is not a Redis URL: {exc}",
            hint="give a redis://, rediss:// (TLS) or unix:// URL, e.g. redis://127.0.0.1:6379/0 "
            "(--redis-url, $CDC_REDIS_URL or the context's redis.url)",
        ) from exc


def ping(url: RedisLike) -> str:
    endpoint = as_endpoint(url)
    try:
        r = _from_url(endpoint, socket_timeout=5, socket_connect_timeout=3)
        r.ping()
        return str(r.info("server").get("redis_version", "?"))
    except redis.AuthenticationError as exc:
        raise RedisError(
            f"Redis at {endpoint} refused the login: {exc}",
            hint="check the target's redis URL user and passwordSecret",
        ) from exc
    except redis.RedisError as exc:
        raise RedisError(f"Redis at {endpoint} did not answer: {exc}") from exc


#: A verify run's keys live this long after its last write (`cdcctl verify --keep-days`).
DEFAULT_RUN_RETENTION_S = 30 * 24 * 3600


class CheckpointStore:
    """Runs, per-range checkpoints and leases of `cdcctl verify` in one Redis.

    Every write to a run pushes the expiry of its two keys (the run hash and its ranges hash) to
    ``retention_s`` from now, so a run disappears that long after it was last touched — finished
    or abandoned — and Redis does not grow with every verify ever run. The runs index (a sorted
    set) forgets runs whose keys expired when it is listed."""

    def __init__(
        self,
        url: RedisLike,
        *,
        prefix: str = "cdc:verify",
        retention_s: int = DEFAULT_RUN_RETENTION_S,
    ) -> None:
        self.url = str(as_endpoint(url))  # for messages: never with a password
        self.prefix = prefix
        self.retention_s = retention_s
        self.r = client(url)
        self._extend = self.r.register_script(_EXTEND)
        self._release = self.r.register_script(_RELEASE)

    def _k(self, *parts: str) -> str:
        return ":".join([self.prefix, *parts])

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise RedisError(
                f"Redis at {self.url}: {what} failed: {exc}",
                hint="is Redis running? checkpoints need it for the whole run",
            ) from exc

    # -------------------------------------------------------------------- runs

    def create_run(
        self, run_id: str, meta: Mapping[str, Any], tasks: Mapping[str, Mapping[str, Any]]
    ) -> bool:
        """Create the run with its tasks' first records (status NOT_STARTED and what a task
        needs, e.g. its token range); False, and nothing changed, if the run exists."""
        key = self._k("run", run_id)
        if not self._call("create run", self.r.hsetnx, key, "created_at", json.dumps(time.time())):
            return False
        pipe: Any = self.r.pipeline(transaction=True)  # redis-py's pipeline stubs are too narrow
        fields = {k: json.dumps(v) for k, v in meta.items()}
        pipe.hset(key, mapping=fields)
        records = {t: json.dumps({"status": "NOT_STARTED", **rec}) for t, rec in tasks.items()}
        pipe.hset(self._k("run", run_id, "ranges"), mapping=records)
        pipe.zadd(self._k("runs"), {run_id: time.time()})
        self._expire(pipe, run_id)
        self._call("create run", pipe.execute)
        return True

    def _expire(self, pipe: Any, run_id: str) -> None:
        for key in (self._k("run", run_id), self._k("run", run_id, "ranges")):
            pipe.expire(key, self.retention_s)

    def _write(self, what: str, run_id: str, op: Callable[[Any], Any]) -> Any:
        """One write to a run plus the refresh of its expiry, in one round trip."""
        pipe: Any = self.r.pipeline(transaction=True)
        op(pipe)
        self._expire(pipe, run_id)
        return self._call(what, pipe.execute)[0]

    def run(self, run_id: str) -> dict[str, Any] | None:
        raw = self._call("read run", self.r.hgetall, self._k("run", run_id))
        if not raw:
            return None
        return {k: json.loads(v) for k, v in raw.items()}

    def update_run(self, run_id: str, **fields: Any) -> None:
        mapping = {k: json.dumps(v) for k, v in fields.items()}
        self._write("update run", run_id, lambda p: p.hset(self._k("run", run_id), mapping=mapping))

    def set_run_field_nx(self, run_id: str, field: str, value: Any) -> bool:
        key = self._k("run", run_id)
        return bool(
            self._write("update run", run_id, lambda p: p.hsetnx(key, field, json.dumps(value)))
        )

    def runs(self, limit: int = 50) -> list[str]:
        ids = [str(i) for i in self._call("list runs", self.r.zrevrange, self._k("runs"), 0, -1)]
        if not ids:
            return []
        pipe: Any = self.r.pipeline(transaction=False)
        for run_id in ids:
            pipe.exists(self._k("run", run_id))
        alive = self._call("list runs", pipe.execute)
        gone = [run_id for run_id, n in zip(ids, alive, strict=True) if not n]
        if gone:  # expired: drop them from the index too
            self._call("list runs", self.r.zrem, self._k("runs"), *gone)
        return [run_id for run_id, n in zip(ids, alive, strict=True) if n][:limit]

    def ranges(self, run_id: str) -> dict[str, dict[str, Any]]:
        raw = self._call("read ranges", self.r.hgetall, self._k("run", run_id, "ranges"))
        return {k: json.loads(v) for k, v in raw.items()}

    def range(self, run_id: str, task: str) -> dict[str, Any]:
        raw = self._call("read range", self.r.hget, self._k("run", run_id, "ranges"), task)
        return dict(json.loads(raw)) if raw else {"status": "NOT_STARTED"}

    def set_range(self, run_id: str, task: str, record: Mapping[str, Any]) -> None:
        data = json.dumps({**record, "updated_at": time.time()})
        key = self._k("run", run_id, "ranges")
        self._write("write range", run_id, lambda p: p.hset(key, task, data))

    # -------------------------------------------------------------------- leases

    def acquire(self, run_id: str, task: str, owner: str, ttl_ms: int) -> bool:
        key = self._k("run", run_id, "lease", task)
        return bool(self._call("acquire lease", self.r.set, key, owner, nx=True, px=ttl_ms))

    def extend(self, run_id: str, task: str, owner: str, ttl_ms: int) -> bool:
        key = self._k("run", run_id, "lease", task)
        return bool(self._call("extend lease", self._extend, keys=[key], args=[owner, ttl_ms]))

    def release(self, run_id: str, task: str, owner: str) -> bool:
        key = self._k("run", run_id, "lease", task)
        return bool(self._call("release lease", self._release, keys=[key], args=[owner]))

    def lease_owner(self, run_id: str, task: str) -> str | None:
        owner = self._call("read lease", self.r.get, self._k("run", run_id, "lease", task))
        return str(owner) if owner is not None else None

    def close(self) -> None:
        self.r.close()


# --- leases and small per-key state for the reconciler -------------------------------------


def _client(url: RedisLike) -> redis.Redis:
    return _from_url(url, socket_timeout=5, socket_connect_timeout=3, decode_responses=True)


class Lease:
    """A named lease held by this process (identified by a random token)."""

    def __init__(self, url: RedisLike, key: str, ttl_ms: int, *, owner: str | None = None) -> None:
        self.url = str(as_endpoint(url))
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

    def __init__(self, url: RedisLike, prefix: str) -> None:
        self.url = str(as_endpoint(url))
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
