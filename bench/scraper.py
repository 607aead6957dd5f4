"""`--scrape-metrics SECONDS`: a Prometheus stand-in scraping our server's `/metrics` for the
whole run, so its cost shows in the other figures (issue 15: scraping every second must not
change them beyond noise).  Each scrape is a fresh connection with the token, as Prometheus
sends it (a bearer token); the body is read whole and parsed by prometheus_client, so a
broken exposition fails the run rather than passing unnoticed."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.servers import TOKEN


class Scraper:
    """Scrapes `http://127.0.0.1:<port>/metrics` every `interval` s in a thread until `stop()`."""

    def __init__(self, port: int, interval: float):
        self.port = port
        self.interval = interval
        self.durations: list[float] = []
        self.sizes: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-scraper", daemon=True)

    def start(self) -> "Scraper":
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval,
            "scrapes": len(self.durations),
            "scrape_ms_median": round(statistics.median(self.durations) * 1000, 2) if self.durations else None,
            "body_bytes_median": int(statistics.median(self.sizes)) if self.sizes else None,
            "errors": self.errors[:5],
        }

    def scrape_once(self) -> None:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}: {body[:200]!r}")
        self.durations.append(time.perf_counter() - started)
        self.sizes.append(len(body))
        for _ in text_string_to_metric_families(body.decode()):
            pass

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.scrape_once()
            except Exception as exc:  # recorded in the results; the run goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
