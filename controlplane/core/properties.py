"""Java ``.properties`` text (the agent's config, Connect's FileConfigProvider files, the stack's
secret files), read and written with the `javaproperties` library so every escape Java knows
(``\\``, ``\\uXXXX``, ``:``, ``=``, leading spaces, line continuations, non-Latin-1) round-trips.
Pure: text in, text out."""

from __future__ import annotations

from collections.abc import Mapping

import javaproperties


def load_properties(text: str) -> dict[str, str]:
    """Every key and value of a .properties text, unescaped as java.util.Properties does."""
    return dict(javaproperties.loads(text))


def dump_properties(entries: Mapping[str, str]) -> str:
    """A .properties text of ``entries``, keys sorted, without the timestamp comment."""
    return "".join(
        javaproperties.join_key_value(key, entries[key]) + "\n" for key in sorted(entries)
    )


def escape_value(value: object, *, key: bool = False) -> str:
    """One escaped key or value (as ISO-8859-1 text: non-ASCII becomes \\uXXXX)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    escaped: str = javaproperties.escape(text)
    if not key:
        # In a value only a leading space is significant; ':' '=' '#' need no escape, and
        # leaving them keeps the rendered files readable.
        escaped = escaped.replace("\\:", ":").replace("\\=", "=").replace("\\#", "#")
        escaped = escaped.replace("\\!", "!")
    return escaped
