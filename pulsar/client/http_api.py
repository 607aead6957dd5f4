"""Calls to one Pulsar server: URLs, query arguments, status checks, streaming, retries.

Every argument goes in the query string (spec 2.2), with `private_token` appended when
configured.  A response is accepted only with a 2xx status; anything else raises
`PulsarClientTransportError` carrying the status and the server's error detail.  Transient
failures (no response, timeouts, 408/425/429/500/502/503/504, truncated or corrupted
bodies) are retried with growing pauses; a permanent 4xx fails at once.  Downloads land
in a temp file beside the destination and are renamed only when complete and verified.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import re
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlencode, urljoin

from pulsar.client.exceptions import IntegrityError, OutputNotFound, PulsarClientTransportError
from pulsar.client.transport.base import FileBody, HttpRequest, HttpResponse, Transport
from pulsar.util.fileio import PartialFile, StreamResult, TruncatedStream
from pulsar.util.progress import DEFAULT_PROGRESS, ProgressPolicy
from pulsar.util.retry import RetryActionExecutor

log = logging.getLogger(__name__)
T = TypeVar("T")

ERROR_BODY_LIMIT = 64 * 1024


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    interval_start: float = 0.2
    interval_step: float = 0.5
    interval_max: float = 5.0

    def executor(self) -> RetryActionExecutor:
        return RetryActionExecutor(
            max_retries=self.max_retries if self.max_retries > 0 else -1,  # the policy's 0: no retry
            interval_start=self.interval_start,
            interval_step=self.interval_step,
            interval_max=self.interval_max,
            catch=lambda exc: isinstance(exc, PulsarClientTransportError) and exc.transient,
        )


NO_RETRY = RetryPolicy(max_retries=0)


def _error_detail(response: HttpResponse) -> str:
    try:
        raw = response.read(ERROR_BODY_LIMIT)
    except PulsarClientTransportError:
        return ""
    text = raw.decode("utf-8", "replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        return _plain(text)
    if isinstance(document, Mapping):
        detail = document.get("detail") or document.get("message") or document.get("error")
        if detail:
            error = document.get("error")
            return f"{error}: {detail}" if error and error != detail else str(detail)
    return text[:2000]


def _plain(text: str) -> str:
    """An HTML error page reduced to its words, short enough for a log line."""
    words = re.sub(r"<[^>]*>", " ", text)
    return " ".join(words.split())[:500]


def check_status(response: HttpResponse, url: str) -> None:
    """Raise for a non-2xx response (closing it), with the server's detail in the error."""
    if 200 <= response.status < 300:
        return
    try:
        detail = _error_detail(response)
    finally:
        response.close()
    error_class = OutputNotFound if response.status == 404 else PulsarClientTransportError
    raise error_class(
        PulsarClientTransportError.NOT_200,
        message=f"{url.split('?', 1)[0]} failed",
        transport_code=response.status,
        transport_message=detail,
    )


def _announced_sha256(headers: Callable[[str], str | None]) -> str | None:
    value = headers("sha256")
    if value:
        return value.strip().lower()
    digest = headers("repr-digest") or headers("digest")
    if digest:
        for item in digest.split(","):
            algorithm, _, encoded = item.strip().partition("=")
            if algorithm.strip().lower() in ("sha-256", "sha256"):
                encoded = encoded.strip().strip(":")
                try:
                    return base64.b64decode(encoded).hex()
                except ValueError:
                    return None
    return None


class HttpApi:
    """The HTTP conversation with one server (base URL already includes any manager prefix).

    Uploads and downloads of `progress.threshold` bytes and more log their progress at INFO
    (`pulsar.util.progress`)."""

    def __init__(self, base_url: str, transport: Transport, private_token: str | None = None,
                 retry: RetryPolicy = RetryPolicy(), progress: ProgressPolicy = DEFAULT_PROGRESS):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.transport = transport
        self.private_token = private_token
        self.retry = retry
        self.progress = progress

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if self.private_token:
            query["private_token"] = self.private_token
        url = urljoin(self.base_url, path)
        return url + ("?" + urlencode(query) if query else "")

    def _retrying(self, action: Callable[[], T], retry: bool) -> T:
        if not retry:
            return action()
        return self.retry.executor().execute(action)

    def _exchange(self, method: str, path: str, params: Mapping[str, Any] | None,
                  body: bytes | FileBody | None = None,
                  headers: dict[str, str] | None = None) -> tuple[HttpResponse, str]:
        url = self.url(path, params)
        response = self.transport.send(HttpRequest(method, url, headers=headers or {}, body=body))
        check_status(response, url)
        return response, url

    def _read_all(self, response: HttpResponse) -> bytes:
        try:
            return response.read()
        finally:
            response.close()

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None, *, retry: bool = True) -> bytes:
        """Send a bodiless request; return the raw reply body."""

        def attempt() -> bytes:
            response, _ = self._exchange(method, path, params)
            return self._read_all(response)

        return self._retrying(attempt, retry)

    def call_json(self, method: str, path: str, params: Mapping[str, Any] | None = None, *, retry: bool = True) -> Any:
        raw = self.call(method, path, params, retry=retry)
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise PulsarClientTransportError(
                PulsarClientTransportError.UNKNOWN,
                message=f"{path}: the server's reply is not JSON",
                transport_message=raw[:200].decode("utf-8", "replace"),
            ) from exc

    def upload(self, path: str, params: Mapping[str, Any], *, file_path: str | None = None,
               contents: bytes | None = None) -> Any:
        """POST a file (streamed from disk) or in-memory bytes as the raw body; return the JSON reply."""

        def attempt() -> Any:
            body: bytes | FileBody
            body = contents if contents is not None else FileBody(str(file_path))
            progress = self.progress.start(log, f"upload {params.get('name')}", len(body))
            if isinstance(body, FileBody):
                body.on_progress = progress
            try:
                response, url = self._exchange("POST", path, params, body)
                raw = self._read_all(response)
            finally:
                if isinstance(body, FileBody):
                    body.close()
            progress.finish(len(body))
            reply = json.loads(raw.decode("utf-8")) if raw.strip() else None
            self._verify_upload(reply, body)
            return reply

        return self._retrying(attempt, True)

    def _verify_upload(self, reply: Any, body: bytes | FileBody) -> None:
        if not isinstance(reply, Mapping):
            return
        size = reply.get("size")
        if isinstance(size, int) and size != len(body):
            raise IntegrityError(message="upload size mismatch",
                                 transport_message=f"sent {len(body)}, server stored {size}")
        announced = reply.get("sha256")
        if isinstance(announced, str):
            if isinstance(body, FileBody):
                local = body.sha256
            else:
                local = hashlib.sha256(body).hexdigest()
            if local is not None and local != announced.lower():
                raise IntegrityError(message="upload digest mismatch",
                                     transport_message=f"sent {local}, server stored {announced}")

    def download(self, path: str, params: Mapping[str, Any], destination: str) -> StreamResult:
        """Stream a file into `destination`; the file appears only when complete and verified.

        A transfer that breaks part way is resumed: the retry asks for the rest with `Range`,
        guarded by `If-Range` with the server's `ETag`, and keeps hashing where it stopped, so
        every byte crosses the network and the hash once.  Without a strong `ETag`, or when
        the server answers the whole file, it starts over.  We ask for `Repr-Digest` and check
        the whole file against it when the server sends one.
        """
        directory = os.path.dirname(os.path.abspath(destination))
        if not os.path.isdir(directory):  # one stat in the usual case, not makedirs' three
            os.makedirs(directory, exist_ok=True)
        with PartialFile(destination, suffix=".download") as partial:
            resume = _Resume(partial)

            def attempt() -> StreamResult:
                response, _ = self._exchange("GET", path, params, headers=resume.request_headers())
                try:
                    length = resume.accept(response)
                    progress = self.progress.start(log, f"download {params.get('name')}", resume.total,
                                                   done=partial.received)
                    try:
                        partial.receive(response, length, on_progress=progress)
                    except TruncatedStream as exc:
                        raise PulsarClientTransportError(
                            PulsarClientTransportError.UNKNOWN, message="download truncated",
                            transport_message=str(exc),
                        ) from exc
                finally:
                    response.close()
                announced = _announced_sha256(response.header)
                if announced is not None and announced != partial.sha256:
                    partial.restart()
                    raise IntegrityError(
                        message="download digest mismatch",
                        transport_message=f"server announced {announced}, received {partial.sha256}",
                    )
                result = partial.commit()
                progress.finish(result.size)
                return result

            return self._retrying(attempt, True)


class _Resume:
    """Where a download stands between attempts: what to ask for, and whether the answer
    continues what `partial` holds."""

    def __init__(self, partial: PartialFile):
        self.partial = partial
        self.etag: str | None = None
        self.total: int | None = None

    def request_headers(self) -> dict[str, str]:
        headers = {"Want-Repr-Digest": "sha-256=9"}
        if self.partial.received and self.etag:
            headers["Range"] = f"bytes={self.partial.received}-"
            headers["If-Range"] = self.etag
        return headers

    def accept(self, response: HttpResponse) -> int | None:
        """Check the response against what is held; return how many body bytes to read."""
        etag = response.header("etag")
        self.etag = etag if etag and not etag.startswith("W/") else None
        encoded = bool(response.header("content-encoding"))
        length_header = response.header("content-length")
        length = int(length_header) if length_header and not encoded else None
        if response.status == 206:
            first, total = _content_range_start(response.header("content-range"))
            held = self.partial.received
            if first != held:
                self.partial.restart()
                raise PulsarClientTransportError(
                    PulsarClientTransportError.UNKNOWN, message="download resumed at the wrong offset",
                    transport_message=f"asked from byte {held}, got {first}",
                )
            self.total = total
        else:
            if self.partial.received:
                log.info("download starts over after %d bytes: the file changed on the server", self.partial.received)
                self.partial.restart()
            self.total = length
        return length


def _content_range_start(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, complete length) of `Content-Range: bytes a-b/n`; None where absent."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header or "")
    if match is None:
        return None, None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))
