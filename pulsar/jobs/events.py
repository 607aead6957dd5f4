"""Who hears about jobs changing state.

Two kinds, because they need different things:
* status listeners hear a job entering `running` or a terminal state, with the status
  document (the full terminal one, which costs reading the job's outputs): the job service
  announces them through one `Announcer`; the message-queue binding (`pulsar.messaging`)
  is the listener that turns them into `status_update` messages;
* state observers hear every change of a job's recorded state, with nothing but the states
  (`pulsar.jobs.table.JobTable` calls them; the server's metrics are one): cheap enough
  for every transition of every job.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from pulsar.jobs.state import JobState

log = logging.getLogger(__name__)

#: (job id, status document) -> None
Listener = Callable[[str, dict[str, Any]], None]

#: (job id, state before -- None for a job without a record --, state now) -> None.  Called
#: after the store has the new state, under the job's lock; must be quick and not raise.
StateObserver = Callable[[str, Optional[JobState], JobState], None]


class Announcer:
    """The listeners of one job service.

    Contract (what `JobService.add_listener` promises): a listener is called synchronously,
    under the job's lock, when a job enters `running` (the short document) or a terminal
    state (the full terminal document, `cancelled` included), *before* the store records the
    new state.  A crash in between makes the next start redo the transition and call again
    (a duplicate), never skip it.  A listener that raises is logged once and does not stop
    the transition or the other listeners.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def announce(self, job_id: str, document: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(job_id, document)
            except Exception:
                log.exception("status listener failed for job %s (%s)", job_id, document.get("status"))
