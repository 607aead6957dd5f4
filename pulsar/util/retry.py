"""Retry an action with growing pauses.

Galaxy's CLI shell plugins import `RetryActionExecutor` (from `pulsar.managers.util.retry`)
and construct it with `max_retries=100, interval_max=300`, then call `.execute(callable)`;
our client's HTTP calls and the server's remote staging use it too, hence its home here.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, TypeVar, Union

log = logging.getLogger(__name__)

T = TypeVar("T")

Catch = Union[type[BaseException], tuple[type[BaseException], ...], Callable[[BaseException], bool]]


class RetryActionExecutor:
    """Run a callable, retrying it when it raises.

    - `max_retries`: retries after the first attempt; 0 (or `None`) retries forever and a
      negative number never retries (the default), the meanings the reference gives them and
      Galaxy's shell plugins construct it with.
    - `interval_start`, `interval_step`, `interval_max`: the first pause, the amount each
      later pause grows by, and the cap (seconds).
    - `catch`: exception class(es) that may be retried, or a predicate deciding per
      exception; anything else propagates at once.  Default: any `Exception`.
    - `sleep`: injectable for tests.

    `execute` returns the callable's result, or re-raises the last exception once the
    retries are used up.
    """

    def __init__(
        self,
        max_retries: int | None = -1,
        interval_start: float = 2.0,
        interval_step: float = 2.0,
        interval_max: float = 30.0,
        catch: Catch = Exception,
        sleep: Callable[[float], None] = time.sleep,
        **kwds: object,
    ):
        if kwds:
            log.debug("RetryActionExecutor ignoring unknown options %s", sorted(kwds))
        self.max_retries = max_retries
        self.interval_start = float(interval_start)
        self.interval_step = float(interval_step)
        self.interval_max = float(interval_max)
        self._catch = catch
        self._sleep = sleep

    def _retryable(self, exc: BaseException) -> bool:
        catch = self._catch
        if isinstance(catch, type) or isinstance(catch, tuple):
            return isinstance(exc, catch)
        return bool(catch(exc))

    def intervals(self) -> Iterator[float]:
        """The pauses between attempts (infinite when retrying forever)."""
        interval = self.interval_start
        count = 0
        forever = not self.max_retries  # None or 0
        limit = self.max_retries or 0
        while forever or count < limit:
            yield min(interval, self.interval_max)
            interval += self.interval_step
            count += 1

    def execute(self, action: Callable[[], T]) -> T:
        pauses = self.intervals()
        attempt = 1
        while True:
            try:
                return action()
            except Exception as exc:
                if not self._retryable(exc):
                    raise
                pause = next(pauses, None)
                if pause is None:
                    raise
                log.warning("attempt %d failed (%s); retrying in %.1f s", attempt, exc, pause)
                self._sleep(pause)
                attempt += 1
