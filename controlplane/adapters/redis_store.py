"""Redis: checkpoints and leases; its errors become `RedisError` here."""

from __future__ import annotations

import redis

from controlplane.core.errors import RedisError


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)


def ping(url: str) -> str:
    try:
        r = client(url)
        r.ping()
        return str(r.info("server").get("redis_version", "?"))
    except redis.RedisError as exc:
        raise RedisError(f"Redis at {url} did not answer: {exc}") from exc
