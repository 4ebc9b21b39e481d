"""Secrets never reach a log line: what to mask and how.

Two rules, applied by the CLI's log processors (``cli.logs``) to every event:
- a value whose key looks like a secret (``password``, ``token``, ``secret``, ``authorization``,
  ``credentials``, ``api_key``... as a word of the key: ``pg_password``, ``connect.password``,
  ``X-Vault-Token``) is replaced whole by ``MASK``;
- any occurrence of a secret value cdcctl resolved during this run is replaced by ``MASK``
  wherever it appears — inside a DSN, an error message, a traceback, a nested structure — in its
  plain, JSON-escaped and ``repr`` spellings (one shorter than `WHOLE_TOKEN_BELOW` characters
  only as a whole token, so that it cannot shred every word it occurs in).
  ``adapters.vault.resolve`` registers every value it returns (`redacted_in_logs`), so a
  secret logged by accident is still masked;
- the password of a URL (after ``scheme://user:``, up to ``@``: Redis and PostgreSQL URLs) is
  masked in any string: such URLs arrive from options and the environment (``--redis-url``,
  ``$CDC_REDIS_URL``), not through ``vault.resolve``.

The registry is process-wide and only grows during a run; `forget_secrets` is for tests.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec

MASK = "***"

# Words that make a key secret. Matched against the key's words (split on anything that is not a
# letter or digit, and on camelCase), so `connection.password` and `tokenSecret` match but
# `passwordSecretRef`-style *references* are masked too: a reference is harmless, a leak is not.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "authorization",
        "auth",
        "credential",
        "credentials",
        "apikey",
        "passphrase",
        "cookie",
    }
)
# Multi-word spellings, matched on the joined words: api_key, private_key, access_key, secret_id.
SECRET_PHRASES = ("api_key", "private_key", "access_key", "secret_key", "client_secret")

# A URL's password: after "scheme://user:", up to "@" (no "@", "/" or whitespace in it).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)")

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_lock = threading.Lock()
_secrets: set[str] = set()
# Every spelling to replace, longest first (a secret that contains another is replaced whole).
_spellings: tuple[str, ...] = ()  # masked wherever they occur
# A secret shorter than this is masked only as a whole token (not inside a longer word):
# replacing a 1-character test secret "t" everywhere turned "validate" into "valida***e".
WHOLE_TOKEN_BELOW = 8
_short_spellings: re.Pattern[str] | None = None

P = ParamSpec("P")


def key_is_secret(key: object) -> bool:
    """Whether a log key (or a mapping key inside a value) names a secret."""
    if not isinstance(key, str):
        return False
    words = [w.lower() for w in _WORD.findall(key)]
    if any(w in SECRET_WORDS for w in words):
        return True
    joined = "_".join(words)
    return any(phrase in joined for phrase in SECRET_PHRASES)


def remember_secret(value: str) -> str:
    """Register a secret value cdcctl resolved; it is masked in every later log line. Returns it."""
    global _spellings, _short_spellings
    if not value:
        return value
    with _lock:
        if value not in _secrets:
            _secrets.add(value)
            forms = {s for v in _secrets for s in _forms(v)}
            _spellings = tuple(
                sorted((f for f in forms if len(f) >= WHOLE_TOKEN_BELOW), key=len, reverse=True)
            )
            short = sorted((f for f in forms if len(f) < WHOLE_TOKEN_BELOW), key=len, reverse=True)
            _short_spellings = (
                re.compile(
                    r"(?<![A-Za-z0-9_])(?:" + "|".join(map(re.escape, short)) + r")(?![A-Za-z0-9_])"
                )
                if short
                else None
            )
    return value


def redacted_in_logs(func: Callable[P, str]) -> Callable[P, str]:
    """Decorate a function that returns a secret: every value it returns is `remember_secret`-ed."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        return remember_secret(func(*args, **kwargs))

    return wrapper


def forget_secrets() -> None:
    """Empty the registry (tests)."""
    global _spellings, _short_spellings
    with _lock:
        _secrets.clear()
        _spellings = ()
        _short_spellings = None


def redact_text(text: str) -> str:
    """`text` with every remembered secret (in any of its spellings) and every URL's password
    replaced by `MASK`."""
    for spelling in _spellings:
        if spelling in text:
            text = text.replace(spelling, MASK)
    if _short_spellings is not None:
        text = _short_spellings.sub(MASK, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    return text


def redact(value: Any) -> Any:
    """A copy of `value` (str, mapping, list, tuple or other) with secrets masked: values under
    secret-looking keys entirely, remembered secret values wherever they occur in strings."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_field(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (an exception, a Path, a dataclass) is logged as its text: redact that.
    text = str(value)
    masked = redact_text(text)
    return value if masked == text else masked


def redact_field(key: object, value: Any) -> Any:
    """One field of a structure: `MASK` under a secret-looking key, else `redact(value)`."""
    return MASK if key_is_secret(key) else redact(value)


def _forms(value: str) -> set[str]:
    """The spellings a secret takes in log output: as is, JSON-escaped, and as Python's repr."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms.add(repr(value)[1:-1])
    return {f for f in forms if f}
