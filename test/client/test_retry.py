from __future__ import annotations

import pytest

from pulsar.managers.util.retry import RetryActionExecutor


class Flaky:
    def __init__(self, failures: int, exc: type[Exception] = OSError):
        self.failures = failures
        self.calls = 0
        self.exc = exc

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc("boom")
        return "ok"


def test_retries_then_succeeds_with_growing_capped_pauses() -> None:
    pauses: list[float] = []
    executor = RetryActionExecutor(max_retries=5, interval_start=1, interval_step=2, interval_max=4, sleep=pauses.append)
    action = Flaky(4)
    assert executor.execute(action) == "ok"
    assert action.calls == 5
    assert pauses == [1, 3, 4, 4]


def test_gives_up_after_max_retries() -> None:
    executor = RetryActionExecutor(max_retries=2, sleep=lambda s: None)
    action = Flaky(10)
    with pytest.raises(OSError):
        executor.execute(action)
    assert action.calls == 3


def test_negative_means_no_retry_and_catch_filters() -> None:
    action = Flaky(1)
    with pytest.raises(OSError):
        RetryActionExecutor(max_retries=-1, sleep=lambda s: None).execute(action)
    assert action.calls == 1
    action = Flaky(1, ValueError)
    with pytest.raises(ValueError):
        RetryActionExecutor(max_retries=3, catch=OSError, sleep=lambda s: None).execute(action)
    action = Flaky(2, ValueError)
    executor = RetryActionExecutor(max_retries=3, catch=lambda e: isinstance(e, ValueError), sleep=lambda s: None)
    assert executor.execute(action) == "ok"


def test_zero_retries_forever_and_the_default_never_retries() -> None:
    """The reference's meanings: Galaxy's rsh/ssh shell plugins construct the executor
    with an explicit max_retries, and 0 there would mean "until it works"."""
    action = Flaky(50)
    assert RetryActionExecutor(max_retries=0, sleep=lambda s: None).execute(action) == "ok"
    assert action.calls == 51
    action = Flaky(1)
    with pytest.raises(OSError):
        RetryActionExecutor(sleep=lambda s: None).execute(action)
    assert action.calls == 1


def test_galaxy_construction() -> None:
    executor = RetryActionExecutor(max_retries=100, interval_max=300)
    assert executor.execute(lambda: 7) == 7
