"""Run in a subprocess by test_memory.py: stage a big file up and back, report client RSS.

Prints one JSON line: baseline RSS, peak RSS during upload and during download (bytes),
sampled every 10 ms by a thread.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import psutil

from pulsar.client import build_client_manager


def main(url: str, token: str, source: str, target: str, transport: str) -> None:
    process = psutil.Process()
    client = build_client_manager(transport=transport).get_client({"url": url, "private_token": token}, "memory-1")
    client.setup("t", "1")
    baseline = process.memory_info().rss
    peaks = {"upload": 0, "download": 0}
    phase = ["upload"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peaks[phase[0]] = max(peaks[phase[0]], process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    client.put_file(source, "input", name="big.dat")
    phase[0] = "download"
    # the uploaded input is not downloadable as an output; fetch it through the server's
    # outputs by having the job copy it (a tiny job), then download
    client.launch("cp ../inputs/big.dat ../outputs/big_out.dat", remote_staging={})
    while client.get_status() not in ("complete", "failed", "cancelled", "lost"):
        time.sleep(0.2)
    client.fetch_output(target, name="big_out.dat", output_type="output")
    stop.set()
    sampler.join()
    client.clean()
    print(json.dumps({"baseline": baseline, "upload_peak": peaks["upload"], "download_peak": peaks["download"]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
