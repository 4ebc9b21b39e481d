"""Hypothesis profiles for the fuzz suite (docs/contributing.md, "Fuzzing").

- ``default``: a bounded number of examples, what `./dev test` and `./dev unit` run (seconds);
- ``nightly``: many more, `./dev fuzz` (``HYPOTHESIS_PROFILE=nightly``); ``FUZZ_EXAMPLES``
  overrides the count of either.

No deadline: an example runs the CLI in-process (tens of ms) and a slow machine must not turn
that into a failure. Failing examples are printed with the blob that replays them
(``@reproduce_failure``) and kept in ``.hypothesis/`` for the next run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
_EXAMPLES = int(os.environ["FUZZ_EXAMPLES"]) if os.environ.get("FUZZ_EXAMPLES") else None

settings.register_profile("default", max_examples=_EXAMPLES or 30, **_COMMON)
settings.register_profile("nightly", max_examples=_EXAMPLES or 3000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch directory; cdcctl's config and crash logs under it, not in the user's home, and
    no context or stack of the caller's environment in the way."""
    base = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.setenv("XDG_STATE_HOME", str(base / "state"))
        for var in ("CDCCTL_CONTEXT", "CDCCTL_CONNECT_URL", "CDC_STACK_DIR"):
            mp.delenv(var, raising=False)
        yield base
