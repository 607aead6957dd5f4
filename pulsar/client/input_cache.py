"""The client half of the server's input file cache (spec 3.10): the caching variant the
reference calls `InputCachingJobClient`, switched on the same way (client-manager option
`cache`, else env `PULSAR_CACHE_TRANSFERS`; insert threads `transfer_threads`, else env
`PULSAR_CACHE_THREADS`, default 2) and making the same calls:

1. `PUT cache?path=` -- claim the file; `true` means nobody has inserted it: we do,
   `POST cache?path=` with the file as body, on one of the insert threads;
2. `GET cache/status?path=` until `ready`;
3. `POST jobs/<id>/files?name=&type=&cache_token=<token>` with an empty body.

Each call also carries the file's `size` and `mtime`: our server keys its alias on them, so a file changed at the same
path is uploaded again; the reference server ignores unknown arguments.  While waiting we
claim again, so a claim whose uploader died is taken over instead of waited on for ever.
A server without a cache (501) or with no room for the file (507) gets a plain upload.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from pulsar.client.exceptions import PulsarClientTransportError
from pulsar.client.http_api import HttpApi

log = logging.getLogger(__name__)

DEFAULT_TRANSFER_THREADS = 2
#: Longest pause between two `cache/status` polls (the reference waits up to 30 s too).
MAX_POLL_INTERVAL = 30.0
#: Server answers meaning "no cache for this file here": upload it the ordinary way.
NO_CACHE_STATUSES = (501, 507)


def _environ_int(name: str, default: int) -> int:
    """The reference's reading of its integer variables: digits count, anything else is the default."""
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() else default


def cache_enabled(cache: Any) -> bool:
    """`cache` as Galaxy passes it; None defers to `PULSAR_CACHE_TRANSFERS`."""
    if cache is None:
        return _environ_int("PULSAR_CACHE_TRANSFERS", 0) != 0
    return bool(cache)


class InputCacher:
    """Shared by every client of one client manager: the threads that insert files."""

    def __init__(self, transfer_threads: Any = None):
        threads = int(transfer_threads) if transfer_threads is not None else _environ_int(
            "PULSAR_CACHE_THREADS", DEFAULT_TRANSFER_THREADS)
        if threads < 1:
            raise ValueError(f"transfer_threads must be at least 1, got {threads}")
        self.transfer_threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pulsar-cache-insert")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def put_file(self, api: HttpApi, upload_path: str, params: Mapping[str, Any], local_path: str) -> Any:
        """Place `local_path` into the job (upload `params`: job_id, name, type) through the
        cache; the server's JSON reply to the upload."""
        info = os.stat(local_path)
        keys = {"path": local_path, "size": str(info.st_size), "mtime": str(info.st_mtime_ns)}
        try:
            token = self._wait_ready(api, keys, local_path)
        except PulsarClientTransportError as exc:
            if exc.transport_code not in NO_CACHE_STATUSES:
                raise
            log.info("no cache for %s (%s); uploading it directly", local_path, exc)
            return api.upload(upload_path, params, file_path=local_path)
        return api.call_json("POST", upload_path, {**params, "cache_token": token})

    def _wait_ready(self, api: HttpApi, keys: Mapping[str, str], local_path: str) -> str:
        interval = 0.2
        while True:
            if api.call_json("PUT", "cache", keys) is True:
                log.info("inserting %s into the server's file cache", local_path)
                self._pool.submit(api.upload, "cache", keys, file_path=local_path).result()
            available = api.call_json("GET", "cache/status", keys)
            if isinstance(available, Mapping) and available.get("ready"):
                return str(available["token"])
            time.sleep(interval)
            interval = min(interval * 2, MAX_POLL_INTERVAL)
