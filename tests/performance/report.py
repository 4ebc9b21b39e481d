"""Write a benchmark's section of docs/benchmarks.md (between its BEGIN/END markers)."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

import psutil

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; "
        f"measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )


def write_section(name: str, body: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n<!-- END {name} -->"
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _m: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    DOC.write_text(text)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def plot(
    path: Path,
    series: dict[str, tuple[list[float], list[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    kind: str = "line",
) -> Path:
    """Draw `series` ({label: (xs, ys)}) into a PNG at `path` (docs/benchmarks/*.png) and return it.

    kind "line" joins the points; "bar" draws one group of bars per x, one bar per label."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if kind == "bar":
        width = 0.8 / max(len(series), 1)
        for i, (label, (xs, ys)) in enumerate(series.items()):
            ax.bar([x + i * width for x in range(len(xs))], ys, width, label=label)
        first = next(iter(series.values()), ([], []))[0]
        ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(first))])
        ax.set_xticklabels([str(x) for x in first])
    else:
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, label=label, linewidth=1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
