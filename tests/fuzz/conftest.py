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
