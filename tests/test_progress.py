"""Stages on a terminal and in a log, and silence when disabled."""

import io
import time

import pytest

import tfae.progress
from tfae.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_logged_stage_is_a_line_when_it_begins_and_one_with_its_count_and_time():
    stream = io.StringIO()
    progress = Progress(stream=stream)
    with progress.stage("kNN probe on codes: searching", total=2, unit="batch") as tick:
        tick()
        tick()
    first, last = stream.getvalue().splitlines()
    assert first == "kNN probe on codes: searching ..."
    assert last.startswith("kNN probe on codes: searching: 2 batches in ") and last.endswith(" s")
    assert progress.seconds["kNN probe on codes: searching"] >= 0


def test_a_terminal_stage_without_ticks_still_shows_its_clock(monkeypatch):
    monkeypatch.setattr(tfae.progress, "REDRAW_SECONDS", 0.05)
    stream = Terminal()
    with Progress(stream=stream).stage("PCA-256: fitting"):
        time.sleep(0.3)
    redrawn = [part for part in stream.getvalue().split("\r") if "PCA-256: fitting" in part]
    assert len(redrawn) >= 3  # redrawn while nothing ticked
    assert "00:00" in redrawn[-1]


def test_a_terminal_stage_counts_its_units():
    stream = Terminal()
    with Progress(stream=stream).stage("linear probe", unit="iteration") as tick:
        tick(7)
    assert "linear probe: 7 iterations" in stream.getvalue()


def test_disabled_progress_writes_nothing_and_a_failing_stage_is_not_reported_done():
    stream = io.StringIO()
    with Progress(enabled=False, stream=stream).stage("anything", total=3, unit="step") as tick:
        tick()
    assert stream.getvalue() == ""
    with pytest.raises(ValueError):
        with Progress(stream=stream).stage("failing"):
            raise ValueError("no")
    assert stream.getvalue() == "failing ...\n"
