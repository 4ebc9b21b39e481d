"""Fixtures for tests against real services.

`pg_dsn`: a PostgreSQL DSN. With CDC_TEST_PG_DSN set it is used as is (handy while developing one
piece); otherwise the session's local stack (brought up once, or reused) provides it.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("CDC_TEST_PG_DSN")
    if dsn:
        return dsn
    from tests.stackfixture import ensure_stack  # the real stack; see tests/stackfixture.py

    return ensure_stack().postgres_dsn
