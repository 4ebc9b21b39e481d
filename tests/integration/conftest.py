"""Fixtures for tests against real services.

`stack`: the session's local stack (`cdcctl stack up` once, or reused when already running).
`pg_dsn`: a PostgreSQL DSN. With CDC_TEST_PG_DSN set it is used as is (handy while developing one
piece); otherwise the session's local stack provides it.
"""

from __future__ import annotations

import os

import pytest

from controlplane.services.stack import Endpoints
from tests.stackfixture import ensure_stack


@pytest.fixture(scope="session")
def stack() -> Endpoints:
    return ensure_stack()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("CDC_TEST_PG_DSN")
    if dsn:
        return dsn
    return ensure_stack().postgres_dsn
