"""Staging a 1 GiB file must not load it into the client's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from test.support.server import subprocess_env

GIB = 1024 * 1024 * 1024
#: Far below the file size; the client streams in 1-4 MiB blocks.
ALLOWED_GROWTH = 64 * 1024 * 1024


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("transport", ["http", "requests", "urllib"])
def test_one_gib_round_trip_keeps_client_memory_flat(pulsar_server: Any, tmp_path: Path, transport: str,
                                                     record_property: Any) -> None:
    source = tmp_path / "big.dat"
    with open(source, "wb") as handle:  # real bytes, not a sparse hole: pages must really be read
        block = os.urandom(4 * 1024 * 1024)
        for _ in range(GIB // len(block)):
            handle.write(block)
    target = tmp_path / "back.dat"
    probe = Path(__file__).with_name("memory_probe.py")
    result = subprocess.run(
        [sys.executable, str(probe), pulsar_server.url, pulsar_server.token, str(source), str(target), transport],
        capture_output=True, text=True, env=subprocess_env(), timeout=800, check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    upload_growth = figures["upload_peak"] - figures["baseline"]
    download_growth = figures["download_peak"] - figures["baseline"]
    record_property("upload_rss_growth_mib", upload_growth / 2**20)
    record_property("download_rss_growth_mib", download_growth / 2**20)
    print(f"{transport}: client RSS growth upload {upload_growth / 2**20:.1f} MiB, "
          f"download {download_growth / 2**20:.1f} MiB (baseline {figures['baseline'] / 2**20:.1f} MiB)")
    assert target.stat().st_size == GIB
    assert upload_growth < ALLOWED_GROWTH
    assert download_growth < ALLOWED_GROWTH
