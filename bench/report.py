"""Turn raw repeats into medians, compare with the issue's targets, print a table.

`summarise` reduces the raw results to `metric -> {"ours": x, "reference": y}` (medians over
repeats); `ROWS` says how each metric is shown and which target applies.  A target has a
minimum gain over the reference (gain = how many times better: us/ref for rates, ref/us for
times and sizes) and/or an absolute bound on our figure.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any


def median(values: list[float]) -> float:
    clean = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(clean) if clean else float("nan")


@dataclasses.dataclass
class Row:
    metric: str
    label: str
    unit: str
    higher_is_better: bool
    min_gain: float | None = None
    bound: float | None = None  # absolute bound on our value: >= if higher_is_better else <=
    compare: bool = True  # False: a ratio means nothing (e.g. growth figures near zero)

    def target_text(self) -> str:
        parts = []
        if self.min_gain is not None:
            parts.append(f">= {self.min_gain:g}x")
        if self.bound is not None:
            parts.append(f"{'>=' if self.higher_is_better else '<='} {self.bound:g} {self.unit}")
        return ", ".join(parts)



ROWS: list[Row | str] = [
    "machine ceilings (same run)",
    Row("ceiling.loopback_get_MBps", "raw loopback HTTP GET", "MB/s", True),
    Row("ceiling.loopback_post_MBps", "raw loopback HTTP POST", "MB/s", True),
    Row("ceiling.disk_write_MBps", "disk write + 1 fsync", "MB/s", True),
    Row("ceiling.disk_write_nofsync_MBps", "disk write, no fsync", "MB/s", True),
    Row("ceiling.fork_exec_per_s", "fork/exec /bin/true", "1/s", True),
    Row("ceiling.sha256_MBps", "sha256, in memory", "MB/s", True),
    "staging: our client -> our server vs reference client -> reference server",
    Row("transfer.ours.upload_MBps", "upload (input)", "MB/s", True, 10, 1000),
    Row("transfer.ours.download_MBps", "download (output)", "MB/s", True, 10, 1000),
    Row("transfer.ours.server_rss_growth_upload_MiB", "server RSS growth, upload", "MiB", False, None, 16, compare=False),
    Row("transfer.ours.server_rss_growth_download_MiB", "server RSS growth, download", "MiB", False, None, 16, compare=False),
    Row("transfer.ours.client_peak_rss_upload_MiB", "client peak RSS, upload", "MiB", False),
    Row("transfer.ours.client_peak_rss_download_MiB", "client peak RSS, download", "MiB", False),
    "integrity cost: our server, bare HTTP client reading into memory",
    Row("digest.download_plain_MBps", "download, no digest asked", "MB/s", True),
    Row("digest.download_digest_first_MBps", "download + Repr-Digest, computed", "MB/s", True),
    Row("digest.download_digest_cached_MBps", "download + Repr-Digest, remembered", "MB/s", True),
    "staging: reference client -> our server vs reference client -> reference server",
    Row("transfer.refclient.upload_MBps", "upload (input)", "MB/s", True, 2),
    Row("transfer.refclient.download_MBps", "download (output)", "MB/s", True, 2),
    Row("transfer.refclient.server_rss_growth_upload_MiB", "server RSS growth, upload", "MiB", False, None, 16, compare=False),
    Row("transfer.refclient.server_rss_growth_download_MiB", "server RSS growth, download", "MiB", False, None, 16,
        compare=False),
    "trivial Galaxy-like jobs (each server with its own client)",
    Row("jobs.c1.jobs_per_s", "concurrency 1: throughput", "jobs/s", True),
    Row("jobs.c1.latency_p50_ms", "concurrency 1: latency p50", "ms", False),
    Row("jobs.c1.latency_p90_ms", "concurrency 1: latency p90", "ms", False),
    Row("jobs.c1.server_cpu_ms_per_job", "concurrency 1: server CPU/job", "ms", False),
    Row("jobs.c1.server_system_cpu_ms_per_job", "concurrency 1: ... of which kernel", "ms", False),
    Row("jobs.c1.client_cpu_ms_per_job", "concurrency 1: client CPU/job", "ms", False),
    Row("jobs.c8.jobs_per_s", "concurrency 8: throughput", "jobs/s", True, 7, 100),
    Row("jobs.c8.latency_p50_ms", "concurrency 8: latency p50", "ms", False),
    Row("jobs.c8.latency_p90_ms", "concurrency 8: latency p90", "ms", False),
    Row("jobs.c8.server_cpu_ms_per_job", "concurrency 8: server CPU/job", "ms", False, None, 5),
    Row("jobs.c8.server_system_cpu_ms_per_job", "concurrency 8: ... of which kernel", "ms", False),
    Row("jobs.c8.client_cpu_ms_per_job", "concurrency 8: client CPU/job", "ms", False),
    "job exit -> client sees complete (status polled every 2 ms)",
    Row("exit.exit_to_complete_p50_ms", "p50", "ms", False, None, 10),
    Row("exit.exit_to_complete_p90_ms", "p90", "ms", False),
    "persisted jobs: restart and status",
    Row("persisted.empty_start_s", "start, no jobs", "s", False),
    Row("persisted.restart_s", "restart with N persisted jobs", "s", False, None, 2),
    Row("persisted.status_p50_ms", "status request p50", "ms", False),
    Row("persisted.status_p99_ms", "status request p99", "ms", False, None, 10),
    "input cache: N jobs sharing one input (ours: our client + server; reference: its client + server, both "
    "with their cache)",
    Row("cache.uncached.wire_MB", "ours without the cache: bytes on the wire", "MB", False, compare=False),
    Row("cache.uncached.wall_s", "ours without the cache: wall time", "s", False, compare=False),
    Row("cache.cached.wire_MB", "with the cache: bytes on the wire", "MB", False),
    Row("cache.cached.wall_s", "with the cache: wall time", "s", False),
    "message queue (same RabbitMQ; each server with its own client, driven like Galaxy's PulsarMQJobRunner)",
    Row("mq.exit.exit_to_update_p50_ms", "MQ job exit -> client has terminal update, p50", "ms", False,
        None, 50),
    Row("mq.exit.exit_to_update_p90_ms", "MQ job exit -> client has terminal update, p90", "ms", False),
    Row("mq.c8.jobs_per_s", "MQ trivial jobs c=8: throughput", "jobs/s", True, 5),
    Row("mq.c8.latency_p50_ms", "MQ trivial jobs c=8: submit -> finished, p50", "ms", False),
    Row("mq.c8.published_to_update_p50_ms", "MQ trivial jobs c=8: ... of which setup sent -> update, p50", "ms",
        False),
    Row("mq.c8.server_cpu_ms_per_job", "MQ trivial jobs c=8: server CPU/job", "ms", False),
    Row("mq.c8.client_cpu_ms_per_job", "MQ trivial jobs c=8: client CPU/job", "ms", False),
    Row("mq.c8.job_processes_cpu_ms_per_job", "MQ trivial jobs c=8: the jobs' own processes CPU/job", "ms", False),
    Row("mq.c8.galaxy_cpu_ms_per_job", "MQ trivial jobs c=8: Galaxy files API CPU/job", "ms", False),
    Row("mq.c8.broker_cpu_ms_per_job", "MQ trivial jobs c=8: broker CPU/job (shared)", "ms", False),
    Row("mq.outage.updates_queued", "MQ outage: status updates waiting", "count", True, compare=False),
    Row("mq.outage.rss_before_MiB", "MQ outage: server RSS before", "MiB", False),
    Row("mq.outage.rss_growth_MiB", "MQ outage: server RSS growth as they pile up", "MiB", False,
        None, 16, compare=False),
    Row("mq.outage.drain_s", "MQ outage: broker back -> all delivered", "s", False),
    Row("mq.outage.terminal_lost", "MQ outage: terminal updates lost", "count", False, None, 0,
        compare=False),
    Row("mq.outage.terminal_duplicates", "MQ outage: terminal updates doubled", "count", False, None, 0,
        compare=False),
]


def gain(row: Row, ours: float, reference: float) -> float:
    if any(math.isnan(v) for v in (ours, reference)):
        return float("nan")
    if row.higher_is_better:
        return ours / reference if reference else float("inf")
    return reference / ours if ours else float("inf")


def verdict(row: Row, ours: float, reference: float) -> str:
    if row.min_gain is None and row.bound is None:
        return ""
    if math.isnan(ours):
        return "?"
    checks = []
    if row.min_gain is not None:
        g = gain(row, ours, reference)
        checks.append(None if math.isnan(g) else g >= row.min_gain)
    if row.bound is not None:
        checks.append(ours >= row.bound if row.higher_is_better else ours <= row.bound)
    if any(c is False for c in checks):
        return "MISS"
    if any(c is None for c in checks):
        return "?"
    return "ok"


def format_number(value: Any) -> str:
    """A table cell: '-' for no figure, 3 significant digits, thousands separated."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _sections_with_figures(summary: dict[str, Any], notes: dict[str, str]) -> list[Row | str]:
    """ROWS without the sections that have no figure and no note (workloads not run)."""
    sections: list[list[Row | str]] = []
    for row in ROWS:
        if isinstance(row, str) or not sections:
            sections.append([])
        sections[-1].append(row)
    return [row for section in sections
            if any(isinstance(r, Row) and (r.metric in summary or r.metric in notes) for r in section)
            for row in section]


def render(summary: dict[str, dict[str, Any]], notes: dict[str, str]) -> str:
    """`summary[metric]` has `ours`/`reference` values (or strings such as "pending: ...")."""
    header = ("metric", "ours", "reference", "us/ref", "gain", "target", "met")
    lines: list[tuple[str, ...]] = []
    for row in _sections_with_figures(summary, notes):
        if isinstance(row, str):
            lines.append((f"-- {row}",))
            continue
        entry = summary.get(row.metric, {})
        ours = entry.get("ours", float("nan"))
        reference = entry.get("reference", float("nan"))
        label = f"{row.label} [{row.unit}]"
        if row.metric.startswith("ceiling."):
            lines.append((label, format_number(ours), "", "", "", "", ""))
            continue
        numeric = isinstance(ours, (int, float)) and isinstance(reference, (int, float)) and row.compare
        ratio = ours / reference if numeric and reference else float("nan")
        g = gain(row, ours, reference) if numeric else float("nan")
        met = verdict(row, ours if isinstance(ours, (int, float)) else float("nan"),
                      reference if isinstance(reference, (int, float)) else float("nan"))
        gain_text = (format_number(g) + "x") if not math.isnan(g) else "-"
        lines.append((label, format_number(ours), format_number(reference), format_number(ratio), gain_text,
                      row.target_text(), met))
        if row.metric in notes:
            lines.append((f"   note: {notes[row.metric]}",))
    widths = [max(len(line[i]) for line in [header, *lines] if len(line) > 1 and i < len(line))
              for i in range(len(header))]
    out = []

    def fmt_line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cells[i].rjust(widths[i]) if i < 5 else cells[i].ljust(widths[i]) for i in range(1, len(cells))]
        return "  ".join([first, *rest]).rstrip()

    out.append(fmt_line(header))
    out.append("  ".join("-" * w for w in widths))
    for line in lines:
        out.append(line[0] if len(line) == 1 else fmt_line(line))
    return "\n".join(out)
