"""The real local stack for tests: brought up once per session, or reused when already running."""

from __future__ import annotations

import functools
from typing import Any

from controlplane.services.stack import Endpoints, LocalStack, settings_for


@functools.cache
def ensure_stack() -> Endpoints:
    stack = LocalStack(settings_for())
    stack.up()  # a no-op for services already running
    return stack.endpoints()


def apply_on(stack: LocalStack, paths: list[Any], **kwargs: Any) -> Any:
    """`cdcctl apply` of these manifests on the local stack `stack`, as its target."""
    from controlplane.services.apply import apply_manifests
    from controlplane.services.local_agents import LocalAgents
    from controlplane.services.targets import local_target

    return apply_manifests(
        paths, local_target(stack.lay.root), agents=LocalAgents(stack.s), **kwargs
    )
