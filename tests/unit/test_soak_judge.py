"""benchmarks/soak.py's verdict: the mean of the last window against the first's, on RssAnon
(VmRSS and RssFile are printed beside). No speed or size of the node is asserted here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import soak  # noqa: E402

MIB = 1024


def _samples(anon_mib: list[float], file_mib: list[float]) -> list[soak.Sample]:
    return [
        soak.Sample(
            at_s=60.0 * i,
            rss_kib=int((a + f) * MIB),
            anon_kib=int(a * MIB),
            file_kib=int(f * MIB),
            head=i,
            pending=0,
            sent=0,
        )
        for i, (a, f) in enumerate(zip(anon_mib, file_mib, strict=True))
    ]


def test_flat_anon_passes_even_when_mapped_files_grow(capsys: pytest.CaptureFixture[str]) -> None:
    # 9 minutes: windows of 3 minutes (a third of the run).
    samples = _samples([100, 102, 101, 103, 104, 102, 105, 106, 104], [50] * 4 + [150] * 5)
    assert soak.judge(samples, minutes=9) is True
    out = capsys.readouterr().out
    assert "VmRSS MiB" in out and "NOT flat" in out  # VmRSS rose with the mapped files
    assert "verdict (RssAnon, the node's own memory): flat" in out


def test_anon_rising_past_ten_percent_fails() -> None:
    samples = _samples([100, 100, 100, 100, 105, 110, 111, 112, 113], [50] * 9)
    assert soak.judge(samples, minutes=9) is False
