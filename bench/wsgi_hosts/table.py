"""Medians per host and the Markdown table of `bench/wsgi_servers.py` (ratios against ours)."""

from __future__ import annotations

import math
from typing import Any

from bench.report import format_number, median

#: (metric, label, higher is better, show a ratio)
ROWS = (
    ("upload_MBps", "upload 1 file, MB/s", True, True),
    ("download_MBps", "download 1 file, MB/s", True, True),
    ("server_cpu_s_per_GiB", "server CPU, upload + download, s/GiB", False, True),
    ("server_rss_growth_upload_MiB", "server RSS growth, upload, MiB", False, False),
    ("server_rss_growth_download_MiB", "server RSS growth, download, MiB", False, False),
    ("c1.jobs_per_s", "trivial jobs, c=1, jobs/s", True, True),
    ("c8.jobs_per_s", "trivial jobs, c=8, jobs/s", True, True),
    ("c1.latency_p50_ms", "job latency p50, c=1, ms", False, True),
    ("c1.server_cpu_ms_per_job", "server CPU, c=1, ms/job", False, True),
    ("c8.server_cpu_ms_per_job", "server CPU, c=8, ms/job", False, True),
)
TRANSFER_FIELDS = ("upload_MBps", "download_MBps", "server_cpu_s_per_GiB", "server_rss_growth_upload_MiB",
                   "server_rss_growth_download_MiB")
JOB_FIELDS = ("jobs_per_s", "latency_p50_ms", "latency_p90_ms", "server_cpu_ms_per_job",
              "server_system_cpu_ms_per_job", "client_cpu_ms_per_job")


def summarise(raw: dict[str, Any]) -> dict[str, dict[str, float]]:
    """host -> metric -> median over the repeats that completed."""
    summary: dict[str, dict[str, float]] = {}
    for host, results in raw.get("transfer", {}).items():
        for field in TRANSFER_FIELDS:
            summary.setdefault(host, {})[field] = median([r[field] for r in results if r["ok"] and field in r])
    for key, hosts in raw.get("jobs", {}).items():
        for host, results in hosts.items():
            for field in JOB_FIELDS:
                summary.setdefault(host, {})[f"{key}.{field}"] = median([r[field] for r in results])
    return summary


def cell(value: float | None, base: float | None, show_ratio: bool) -> str:
    """`value (ratio)`; the ratio is value/ours, so 1.00 is ours and > 1 means more."""
    text = format_number(value)
    if (not show_ratio or value is None or base is None or math.isnan(value) or math.isnan(base)
            or base == 0):
        return text
    return f"{text} ({value / base:.2f})"


def render(summary: dict[str, dict[str, float]], hosts: list[str], base: str = "ours") -> str:
    """Markdown: one row per metric, one column per host; ratios against `base`."""
    lines = ["| metric | " + " | ".join(hosts) + " |", "|---|" + "---|" * len(hosts)]
    for metric, label, _higher, ratio in ROWS:
        reference = summary.get(base, {}).get(metric)
        cells = [cell(summary.get(host, {}).get(metric), reference, ratio and host != base) for host in hosts]
        if all(c == "-" for c in cells):
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: (key in the hostile results, column label): the reference polls first, then the crowds.
HOSTILE_COLUMNS = (
    ("quiet", "no crowd"),
    ("slow_heads", "slow heads"),
    ("slow_body", "slow body"),
    ("slow_body_no_token", "slow body, no token"),
    ("silent", "silent connections"),
)


def render_notes(probes: dict[str, dict[str, str]], failures: dict[str, list[str]], hosts: list[str],
                 hostile: dict[str, dict[str, dict[str, Any]]] | None = None) -> str:
    """Markdown: per host, the functional probes, the hostile-client probes (worst poll
    latency while the crowd is there; columns only if any host ran them) and any workload
    failure."""
    columns = ["chunked upload", "Expect: 100-continue", "Range", "64 KiB query"]
    if hostile:
        columns += [label for _key, label in HOSTILE_COLUMNS]
    lines = ["| host | " + " | ".join(columns) + " | workload failures |", "|---|" + "---|" * (len(columns) + 1)]
    for host in hosts:
        results = probes.get(host, {})
        cells = [results.get(name, "not run") for name in ("chunked_upload", "expect_100", "range", "long_query")]
        if hostile:
            crowds = hostile.get(host, {})
            cells += [crowds.get(key, {}).get("cell", "not run") for key, _label in HOSTILE_COLUMNS]
        problems = "; ".join(failures.get(host, [])) or "none"
        lines.append(f"| {host} | " + " | ".join(cells) + f" | {problems} |")
    return "\n".join(lines)
