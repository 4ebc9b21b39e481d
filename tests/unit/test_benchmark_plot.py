"""The benchmarks' PNG helper draws real images (matplotlib is a dev dependency)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.performance.report import plot


@pytest.mark.parametrize("kind", ["line", "bar"])
def test_plot_writes_a_png(tmp_path: Path, kind: str) -> None:
    out = plot(
        tmp_path / "sub" / f"{kind}.png",
        {"new sink": ([1, 2, 4], [10.0, 19.0, 30.0]), "stock": ([1, 2, 4], [5.0, 9.0, 12.0])},
        title="t",
        xlabel="tasks",
        ylabel="events/s",
        kind=kind,
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000  # axes, bars/lines and a legend, not an empty canvas
