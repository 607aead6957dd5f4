"""Reduce a run's raw repeats to the table's figures (`summarise`) and per-row remarks
(`row_notes`): failures, wrong checksums, wrong statuses, errors."""

from __future__ import annotations

from typing import Any

from bench import mq, report


def summarise(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """metric -> {"ours": median, "reference": median} (ceilings: under "ours")."""
    summary: dict[str, dict[str, Any]] = {}

    def put(metric: str, side: str, values: list[float]) -> None:
        if values:
            summary.setdefault(metric, {})[side] = report.median(values)

    for key in ("loopback_get_MBps", "loopback_post_MBps", "disk_write_MBps", "disk_write_nofsync_MBps",
                "fork_exec_per_s", "sha256_MBps"):
        put(f"ceiling.{key}", "ours", [r.get(key) for r in raw.get("ceilings", []) if r.get(key) is not None])
    for key in ("download_plain_MBps", "download_digest_first_MBps", "download_digest_cached_MBps"):
        put(f"digest.{key}", "ours", [r[key] for r in raw.get("digest", [])])
    xfer = raw.get("transfer", {})
    fields = ("upload_MBps", "download_MBps", "server_rss_growth_upload_MiB", "server_rss_growth_download_MiB",
              "client_peak_rss_upload_MiB", "client_peak_rss_download_MiB")
    for field in fields:
        baseline = [r[field] for r in xfer.get("reference", [])]
        for combo in ("ours", "refclient"):
            put(f"transfer.{combo}.{field}", "ours", [r[field] for r in xfer.get(combo, [])])
            put(f"transfer.{combo}.{field}", "reference", baseline)
    for key, sides in raw.get("jobs", {}).items():
        for side, results in sides.items():
            for field in ("jobs_per_s", "latency_p50_ms", "latency_p90_ms", "server_cpu_ms_per_job",
                          "server_system_cpu_ms_per_job", "client_cpu_ms_per_job"):
                put(f"jobs.{key}.{field}", side, [r[field] for r in results])
    for side, results in raw.get("exit", {}).items():
        for field in ("exit_to_complete_p50_ms", "exit_to_complete_p90_ms"):
            put(f"exit.{field}", side, [r[field] for r in results])
    for side, result in raw.get("persisted", {}).items():
        for field in ("empty_start_s", "restart_s", "status_p50_ms", "status_p99_ms"):
            put(f"persisted.{field}", side, [result[field]])
    cache = raw.get("cache", {})
    for field in ("wire_MB", "wall_s"):
        for combo, side in (("ours", "ours"), ("reference", "reference")):
            put(f"cache.cached.{field}", side, [r[field] for r in cache.get(combo, [])])
        put(f"cache.uncached.{field}", "ours", [r[field] for r in cache.get("uncached", [])])
    mq.summarise(raw, put)
    return summary


def row_notes(raw: dict[str, Any], errors: dict[str, str]) -> dict[str, str]:
    """Per-row remarks: failures, wrong checksums, wrong statuses."""
    notes: dict[str, str] = {}
    for combo, results in raw.get("transfer", {}).items():
        bad = [r for r in results if not r["ok"]]
        if bad:
            notes[f"transfer.{'ours' if combo == 'reference' else combo}.upload_MBps"] = (
                f"{combo}: {len(bad)} run(s) not ok (checksum/status): {bad[0]['detail']}")
    for key, sides in raw.get("jobs", {}).items():
        for side, results in sides.items():
            failed = sum(r["failed"] for r in results)
            if failed:
                example = next((r["failure_examples"] for r in results if r["failure_examples"]), [])
                notes[f"jobs.{key}.jobs_per_s"] = f"{side}: {failed} job(s) failed, e.g. {str(example)[:300]}"
    for side, results in raw.get("exit", {}).items():
        failed = sum(r["failed"] for r in results)
        if failed:
            notes["exit.exit_to_complete_p50_ms"] = f"{side}: {failed} job(s) failed: {results[0]['problems']}"
    for side, result in raw.get("persisted", {}).items():
        if not result["ok"]:
            notes.setdefault("persisted.restart_s", "")
            notes["persisted.restart_s"] += (f"{side}: probe job reported {result['probe_status']!r}, "
                                             f"{result['status_wrong']} status answers not 'complete'. ")
    for combo, results in raw.get("cache", {}).items():
        failed = sum(r["failed"] for r in results)
        if failed:
            metric = "cache.uncached.wall_s" if combo == "uncached" else "cache.cached.wall_s"
            notes[metric] = f"{combo}: {failed} job(s) failed, e.g. {results[0]['problems'][:1]}"
    if any(not r["ok"] for r in raw.get("digest", [])):
        notes["digest.download_digest_first_MBps"] = "Repr-Digest missing or wrong (or sent unasked)"
    for name, message in errors.items():
        metric = {"transfer.digest": "digest.download_digest_first_MBps",
                  "transfer.ours": "transfer.ours.upload_MBps", "transfer.refclient": "transfer.refclient.upload_MBps",
                  "transfer.reference": "transfer.ours.upload_MBps"}.get(name)
        if name.startswith("jobs."):
            metric = f"jobs.{name.split('.')[1]}.jobs_per_s"
        elif name.startswith("exit."):
            metric = "exit.exit_to_complete_p50_ms"
        elif name.startswith("persisted."):
            metric = "persisted.restart_s"
        elif name.startswith("cache"):
            metric = "cache.uncached.wall_s" if name == "cache.uncached" else "cache.cached.wall_s"
        if metric:
            notes[metric] = (notes.get(metric, "") + f" {name} ERROR {message[:300]}").strip()
    notes.update(mq.notes(raw, errors))
    return notes
