"""Plain HTTP readiness probes of local services (Prometheus's ``/-/ready``, a JMX exporter's
``/metrics``): is the answer 200? httpx errors mean "not yet", never an exception."""

from __future__ import annotations

import httpx


def ok(url: str, *, timeout: float = 3.0) -> bool:
    """True when GET `url` answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
