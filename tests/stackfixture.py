"""The real local stack for tests: brought up once per session, or reused when already running."""

from __future__ import annotations

import functools

from controlplane.services.stack import Endpoints, LocalStack, settings_for


@functools.cache
def ensure_stack() -> Endpoints:
    stack = LocalStack(settings_for())
    stack.up()  # a no-op for services already running
    return stack.endpoints()
