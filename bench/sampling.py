"""Watch processes while a workload runs: resident memory over time and CPU time used.

`Sampler` polls the RSS of a fixed set of pids (the server's own processes, captured once it
is up, so short-lived job processes it forks are not counted as server memory) and of any
extra pids (the client driver) in a background thread.  Windows reported by a driver in
`time.time()` are then turned into "peak growth over the level just before the window".
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable

import psutil

MIB = 1024 * 1024


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User + system CPU of the given processes themselves (not of their reaped children)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def cpu_split(processes: Iterable[psutil.Process]) -> tuple[float, float]:
    """(user, system) CPU seconds of the given processes themselves."""
    user = system = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        user += times.user
        system += times.system
    return user, system


def rss_bytes(processes: Iterable[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


class Sampler:
    """Samples `groups` (name -> processes) every `interval` seconds until stopped."""

    def __init__(self, groups: dict[str, list[psutil.Process]], interval: float = 0.01):
        self.groups = groups
        self.interval = interval
        self.times: list[float] = []
        self.values: dict[str, list[int]] = {name: [] for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def add(self, name: str, processes: list[psutil.Process]) -> None:
        """Start sampling another group (e.g. the client once it is started)."""
        self.groups[name] = processes

    def _sample(self) -> None:
        now = time.time()
        for name, processes in list(self.groups.items()):
            series = self.values.setdefault(name, [])
            # groups added late get zeros back-filled so every series has one value per time
            series.extend([0] * (len(self.times) - len(series)))
            series.append(rss_bytes(processes))
        self.times.append(now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def growth(self, name: str, window: tuple[float, float]) -> int:
        """Peak RSS inside `window` minus the last sample before it (bytes, >= 0)."""
        start, end = window
        series = self.values[name]
        first = bisect.bisect_left(self.times, start)
        last = bisect.bisect_right(self.times, end)
        baseline = series[max(first - 1, 0)]
        inside = series[first:last] or [baseline]
        return max(0, max(inside) - baseline)

    def peak(self, name: str, window: tuple[float, float]) -> int:
        start, end = window
        series = self.values[name]
        first = bisect.bisect_left(self.times, start)
        last = bisect.bisect_right(self.times, end)
        return max(series[first:last] or [series[-1]])
