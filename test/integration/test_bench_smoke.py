"""`make bench` works from a clean checkout: a small run of bench/run.py against the reference
server and client prints the comparison table and writes its results.  Figures are not
checked (performance is judged from full runs, not in tests); that every workload ran, that
checksums held and that ratios were computed is, and that our /metrics, scraped throughout
(`--scrape-metrics`), parsed every time.  The message-queue section runs against the
real broker when one listens (CI starts it), with a handful of jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test.support.rabbitmq import port_open

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.reference]


def test_quick_bench_prints_ratios_against_the_reference(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "run.py"), "--quick", "--size-mib", "16", "--jobs", "10",
         "--exit-jobs", "5", "--persisted", "200", "--status-requests", "100",
         "--mq-jobs", "8", "--mq-exit-jobs", "3", "--mq-outage-jobs", "20", "--scrape-metrics", "0.5",
         "--cache-mib", "8", "--cache-jobs", "4",
         "--workdir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    table = completed.stdout
    assert "us/ref" in table
    rows = {line.split("]", 1)[0] + "]": line.split("]", 1)[1].split() for line in table.splitlines() if "] " in line}
    for row, with_reference in (("upload (input) [MB/s]", True), ("download (output) [MB/s]", True),
                                ("concurrency 8: throughput [jobs/s]", True),
                                ("restart with N persisted jobs [s]", True),
                                ("with the cache: bytes on the wire [MB]", True),
                                ("ours without the cache: bytes on the wire [MB]", False),
                                ("download + Repr-Digest, computed [MB/s]", False)):
        ours, reference, ratio = rows[row][:3]
        assert ours != "-", f"no figure of ours for {row}"
        if with_reference:
            assert reference != "-" and ratio != "-", f"no reference figure or ratio for {row}"
    [results] = list((tmp_path / "results").glob("*.json"))
    data = json.loads(results.read_text())
    broker = port_open() or os.environ.get("PULSAR_TEST_REQUIRE_SCHEDULERS") == "1"
    if broker:
        for row, compared in (("MQ job exit -> client has terminal update, p50 [ms]", True),
                              ("MQ trivial jobs c=8: throughput [jobs/s]", True),
                              ("MQ outage: server RSS growth as they pile up [MiB]", False)):
            ours, reference, ratio = rows[row][:3]
            assert "-" not in (ours, reference, ratio if compared else ""), f"MQ row {row}: {rows[row]}"
        assert all(result["ok"] for result in data["raw"]["mq"]["outage"].values())
    else:  # no broker here: the section says it was skipped
        assert any("message-queue section skipped" in note for note in data["notes"])
    assert not data["errors"]
    assert data["raw"]["metrics_scrapes"]["scrapes"] > 0 and not data["raw"]["metrics_scrapes"]["errors"]
    cache = data["summary"]
    assert cache["cache.cached.wire_MB"]["ours"] < cache["cache.uncached.wire_MB"]["ours"] / 2  # the input went once
    assert all(run["checksum_ok"] for runs in data["raw"]["transfer"].values() for run in runs)
    assert data["summary"]["transfer.ours.upload_MBps"]["reference"] > 0
