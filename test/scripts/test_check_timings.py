"""pulsar-check reports how long each phase of its job took."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pulsar.scripts.check import PHASES, PhaseTimer, main


def test_phase_timer_laps_and_marks_missing_phases() -> None:
    now = [10.0]
    timer = PhaseTimer(clock=lambda: now[0])
    for phase, seconds in (("setup", 0.5), ("staging in", 2.0), ("submit", 0.25), ("wait", 30.0)):
        timer.start(phase)
        now[0] += seconds
    timer.start(None)
    assert timer.report() == ("phase timings: setup 0.50 s, staging in 2.00 s, submit 0.25 s, wait 30.00 s, "
                              "staging out -, clean -; total 32.75 s")


def test_before_starts_the_phase_when_the_method_is_called() -> None:
    now = [0.0]
    timer = PhaseTimer(clock=lambda: now[0])
    calls = []
    launch = timer.before(lambda *a, **k: calls.append((a, k)) or "launched", "submit")
    timer.start("staging in")
    now[0] = 3.0
    assert launch(1, x=2) == "launched"
    now[0] = 3.5
    timer.start(None)
    assert calls == [((1,), {"x": 2})]
    assert timer.seconds == {"staging in": 3.0, "submit": 0.5}


@pytest.mark.integration
def test_pulsar_check_prints_every_phase(pulsar_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", pulsar_server.url, "--private_token", pulsar_server.token, "--job_id", "timed-check"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("phase timings: "))
    for phase in PHASES:
        assert re.search(rf"\b{phase} \d+\.\d\d s\b", line), (phase, line)
    assert re.search(r"; total \d+\.\d\d s$", line)
    assert out.rstrip().endswith("pulsar-check passed")
