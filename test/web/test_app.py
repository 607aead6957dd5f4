"""The WSGI app in process, against the fake service: handlers, auth, errors, logging."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import pytest

from pulsar.web.app import PulsarWsgiApp
from test.web.conftest import TOKEN
from test.web.fakes import FakeApp
from test.web.support import call


def service_calls(app: PulsarWsgiApp, manager: str = "_default_") -> list[tuple[Any, ...]]:
    fake: Any = app.app
    calls: list[tuple[Any, ...]] = fake.services[manager].calls
    return calls


# --- handlers ---------------------------------------------------------------------------


def test_setup_passes_arguments_and_returns_json(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "POST", "/jobs", "job_id=7&tool_id=cat1&tool_version=1.0&use_metadata=true")
    assert result.status == 200
    assert result.json()["job_id"] == "7"
    assert service_calls(wsgi) == [("setup", "7", "cat1", "1.0")]


def test_json_uses_python_default_separators(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "GET", "/jobs/9/status")
    assert result.body == b'{"complete": "false", "status": "lost", "job_id": "9"}'


def test_named_manager_routes_to_its_service(wsgi: PulsarWsgiApp) -> None:
    assert call(wsgi, "PUT", "/managers/cluster/jobs/3/cancel").status == 200
    assert service_calls(wsgi, "cluster") == [("cancel", "3")]
    assert service_calls(wsgi) == []


def test_path_job_id_beats_query_job_id(wsgi: PulsarWsgiApp) -> None:
    call(wsgi, "DELETE", "/jobs/5", "job_id=6")
    assert service_calls(wsgi) == [("clean", "5")]


@pytest.mark.parametrize("method, path", [("POST", "/jobs/1/submit"), ("PUT", "/jobs/1/cancel"), ("DELETE", "/jobs/1")])
def test_ok_replies(wsgi: PulsarWsgiApp, method: str, path: str) -> None:
    result = call(wsgi, method, path, "command_line=true")
    assert (result.status, result.body) == (200, b"OK")


def test_submit_hands_raw_arguments_without_token(secured: PulsarWsgiApp) -> None:
    query = f"command_line=echo+%22a+b%22&env=%5B%5D&job_id=9&private_token={TOKEN}"
    assert call(secured, "POST", "/jobs/3/submit", query).status == 200
    [(name, job_id, args)] = service_calls(secured)
    assert (name, job_id) == ("submit", "3")
    assert args == {"command_line": 'echo "a b"', "env": "[]", "job_id": "3"}


def test_upload_streams_raw_body_regardless_of_content_type(wsgi: PulsarWsgiApp, fake_app: FakeApp) -> None:
    body = b"a=1&b=2&c=%20"
    result = call(wsgi, "POST", "/jobs/1/files", "name=form.txt&type=input", body,
                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert result.status == 200
    document = result.json()
    assert Path(document["path"]).read_bytes() == body
    assert document["size"] == len(body)
    assert document["sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_reads_wsgi_input_in_bounded_blocks(wsgi: PulsarWsgiApp) -> None:
    """The body is never buffered whole (WebOb's `body`, a seekable copy): the server's
    `wsgi.input` itself is read, in blocks no bigger than the streaming block."""
    body = bytes(range(256)) * 40_000  # 10 MB
    reads: list[int | None] = []

    class Recording(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(size)
            return super().read(size)

        def readinto(self, buffer: Any) -> int:
            reads.append(len(buffer))
            return super().readinto(buffer)

        def seek(self, *args: Any) -> int:
            raise AssertionError("the upload body was rewound: something buffered it")

    result = call(wsgi, "POST", "/jobs/1/files", "name=big&type=input", **{"wsgi.input": Recording(body),
                                                                          "CONTENT_LENGTH": str(len(body))})
    assert result.status == 200 and result.json()["size"] == len(body)
    assert reads and all(size is not None and 0 < size <= 4 * 1024 * 1024 for size in reads)


def test_empty_upload_creates_empty_file(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "POST", "/jobs/1/files", "name=empty&type=input", b"")
    assert result.status == 200
    assert Path(result.json()["path"]).read_bytes() == b""
    assert service_calls(wsgi)[-1] == ("upload", "1", "input", "empty", 0)


def test_terminated_body_without_length_reads_to_eof(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "POST", "/jobs/1/files", "name=c&type=input", b"chunked data",
                  content_length=False, **{"wsgi.input_terminated": True})
    assert result.status == 200
    assert Path(result.json()["path"]).read_bytes() == b"chunked data"
    assert service_calls(wsgi)[-1][-1] is None


def test_upload_without_length_is_411(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "POST", "/jobs/1/files", "name=c&type=input", b"data", content_length=False)
    assert result.status == 411
    assert result.json()["error"] == "length_required"


def test_chunked_upload_the_host_did_not_decode_is_411(wsgi: PulsarWsgiApp) -> None:
    """Paste's httpserver hands a chunked body on as CONTENT_LENGTH 0: refuse, never store b""."""
    result = call(wsgi, "POST", "/jobs/1/files", "name=c&type=input", b"5\r\nhello\r\n0\r\n\r\n",
                  headers={"Transfer-Encoding": "chunked"}, CONTENT_LENGTH="0")
    assert result.status == 411
    assert not any(entry[0] == "upload" for entry in service_calls(wsgi))


def test_truncated_upload_body_is_400(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "POST", "/jobs/1/files", "name=c&type=input", b"short", CONTENT_LENGTH="100")
    assert result.status == 400
    assert result.json()["error"] == "incomplete_body"


def test_bad_content_length_is_400(wsgi: PulsarWsgiApp) -> None:
    assert call(wsgi, "POST", "/jobs/1/files", "name=c&type=input", b"x", CONTENT_LENGTH="-1").status == 400


def test_file_path(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "GET", "/jobs/1/files/path", "name=x.dat&type=input")
    assert result.json()["path"].endswith("/1/input/x.dat")


def write_output(fake_app: FakeApp, data: bytes, name: str = "out.dat") -> None:
    path = fake_app.services["_default_"].root / "1" / "output" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_download_whole_file(wsgi: PulsarWsgiApp, fake_app: FakeApp) -> None:
    write_output(fake_app, b"0123456789")
    result = call(wsgi, "GET", "/jobs/1/files", "name=out.dat&type=output")
    assert result.status == 200
    assert result.body == b"0123456789"
    assert result.headers["content-length"] == "10"
    assert result.headers["content-type"] == "application/octet-stream"
    assert result.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    "header, status, body, content_range",
    [
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-2", 206, b"89", "bytes 8-9/10"),
        ("bytes=0-1,3-4", 200, b"0123456789", None),
        ("bytes=-100", 206, b"0123456789", "bytes 0-9/10"),
        ("bytes=-", 200, b"0123456789", None),
    ],
)
def test_download_range(wsgi: PulsarWsgiApp, fake_app: FakeApp, header: str, status: int, body: bytes,
                        content_range: str | None) -> None:
    write_output(fake_app, b"0123456789")
    result = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Range": header})
    assert (result.status, result.body) == (status, body)
    assert result.headers["content-length"] == str(len(body))
    assert result.headers.get("content-range") == content_range


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=-0"])
def test_download_unsatisfiable_range_is_416(wsgi: PulsarWsgiApp, fake_app: FakeApp, header: str) -> None:
    write_output(fake_app, b"0123456789")
    result = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Range": header})
    assert result.status == 416
    assert result.headers["content-range"] == "bytes */10"
    assert result.json()["error"] == "range_not_satisfiable"


def test_download_range_for_another_version_is_the_whole_file_not_416(wsgi: PulsarWsgiApp,
                                                                      fake_app: FakeApp) -> None:
    write_output(fake_app, b"0123456789")
    result = call(wsgi, "GET", "/jobs/1/files", "name=out.dat",
                  headers={"Range": "bytes=10-", "If-Range": '"another-version"'})
    assert (result.status, result.body) == (200, b"0123456789")


def test_download_with_a_matching_if_none_match_is_304(wsgi: PulsarWsgiApp, fake_app: FakeApp,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    write_output(fake_app, b"0123456789")
    etag = call(wsgi, "GET", "/jobs/1/files", "name=out.dat").headers["etag"]
    with caplog.at_level(logging.INFO, logger="pulsar.web.access"):
        result = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"If-None-Match": etag,
                                                                             "Range": "bytes=10-"})
        other = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"If-None-Match": '"other"'})
    assert (result.status, result.body, result.headers["etag"]) == (304, b"", etag)
    assert (other.status, other.body) == (200, b"0123456789")
    lines = [r.getMessage() for r in caplog.records if r.name == "pulsar.web.access"]
    assert '"GET /jobs/1/files?name=out.dat" 304 0 ' in lines[0]  # logged once the body is closed


def test_download_carries_a_strong_etag_and_honours_if_range(wsgi: PulsarWsgiApp, fake_app: FakeApp) -> None:
    write_output(fake_app, b"0123456789")
    etag = call(wsgi, "GET", "/jobs/1/files", "name=out.dat").headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    same = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Range": "bytes=4-", "If-Range": etag})
    assert (same.status, same.body, same.headers["content-range"]) == (206, b"456789", "bytes 4-9/10")
    for stale in ('"another-version"', "W/" + etag, "Sat, 21 Nov 2026 10:00:00 GMT"):
        whole = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Range": "bytes=4-", "If-Range": stale})
        assert (whole.status, whole.body) == (200, b"0123456789")


def test_download_sends_repr_digest_when_asked(wsgi: PulsarWsgiApp, fake_app: FakeApp) -> None:
    write_output(fake_app, b"0123456789")
    expected = "sha-256=:" + base64.b64encode(hashlib.sha256(b"0123456789").digest()).decode() + ":"
    plain = call(wsgi, "GET", "/jobs/1/files", "name=out.dat")
    assert "repr-digest" not in plain.headers  # not asked, not known: no extra read of the file
    asked = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Range": "bytes=2-3",
                                                                         "Want-Repr-Digest": "sha-512=3, sha-256=9"})
    assert (asked.status, asked.body) == (206, b"23")
    assert asked.headers["repr-digest"] == expected  # of the whole file, whatever the range
    refused = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Want-Repr-Digest": "sha-256=0"})
    assert "repr-digest" not in refused.headers


def test_download_uses_file_wrapper_when_offered(wsgi: PulsarWsgiApp, fake_app: FakeApp) -> None:
    write_output(fake_app, b"0123456789")
    wrapped: list[Any] = []

    class Wrapper:
        def __init__(self, filelike: Any, block_size: int):
            wrapped.append((filelike, block_size))
            self.filelike = filelike

        def __iter__(self) -> Any:
            return iter(lambda: self.filelike.read(4), b"")

        def close(self) -> None:
            self.filelike.close()

    result = call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Range": "bytes=1-8"},
                  **{"wsgi.file_wrapper": Wrapper})
    assert result.body == b"12345678"  # a reading wrapper gets no more than the range
    assert wrapped and wrapped[0][1] >= 64 * 1024


def test_download_missing_file_is_404_json(wsgi: PulsarWsgiApp) -> None:
    result = call(wsgi, "GET", "/jobs/1/files", "name=nothing.dat")
    assert result.status == 404
    assert result.json() == {"error": "not_found", "detail": "no output 'nothing.dat'"}


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, query, status, error",
    [
        ("POST", "/jobs", "", 400, "invalid_argument"),  # missing job_id
        ("GET", "/jobs/1/files", "", 400, "invalid_argument"),  # missing name
        ("POST", "/jobs/1/submit", "", 400, "invalid_argument"),  # missing command_line
        ("GET", "/jobs/1/files/path", "name=x&type=bogus", 400, "invalid_argument"),  # service says no
        ("GET", "/jobs/1/status", "x=%FF", 400, "invalid_argument"),
        ("GET", "/nope", "", 404, "not_found"),
        ("GET", "/jobs", "", 404, "not_found"),  # wrong method
        ("GET", "/managers/unknown/jobs/1/status", "", 404, "not_found"),
    ],
)
def test_client_errors(wsgi: PulsarWsgiApp, caplog: pytest.LogCaptureFixture, method: str, path: str,
                       query: str, status: int, error: str) -> None:
    with caplog.at_level(logging.INFO, logger="pulsar.web"):
        result = call(wsgi, method, path, query)
    assert result.status == status
    document = result.json()
    assert set(document) == {"error", "detail"}
    assert document["error"] == error
    warnings = [r for r in caplog.records if r.name == "pulsar.web" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].exc_info is None


def test_request_line_limit_is_414(tmp_path: Path) -> None:
    app = PulsarWsgiApp(FakeApp(tmp_path, max_request_line=1000))
    assert call(app, "GET", "/jobs/1/status", "x=" + "a" * 900).status == 200
    result = call(app, "GET", "/jobs/1/status", "x=" + "a" * 1000)
    assert result.status == 414
    assert result.json()["error"] == "request_line_too_long"


def test_server_fault_is_500_with_traceback_logged(wsgi: PulsarWsgiApp, fake_app: FakeApp,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    def explode(job_id: str) -> None:
        raise RuntimeError("disk on fire")

    fake_app.services["_default_"].cancel = explode  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="pulsar.web"):
        result = call(wsgi, "PUT", "/jobs/1/cancel")
    assert result.status == 500
    assert result.json()["error"] == "server_error"
    assert b"disk on fire" not in result.body
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None


# --- auth ---------------------------------------------------------------------------------


def test_token_in_query(secured: PulsarWsgiApp) -> None:
    assert call(secured, "GET", "/jobs/1/status", f"private_token={TOKEN}").status == 200


def test_token_as_bearer_header(secured: PulsarWsgiApp) -> None:
    assert call(secured, "GET", "/jobs/1/status", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200


@pytest.mark.parametrize(
    "query, headers",
    [
        ("", {}),
        ("private_token=wrong", {}),
        (f"private_token={TOKEN}x", {}),
        ("private_token=", {}),
        ("", {"Authorization": "Bearer wrong"}),
        ("", {"Authorization": f"Basic {TOKEN}"}),
    ],
)
def test_wrong_or_missing_token_is_401(secured: PulsarWsgiApp, query: str, headers: dict[str, str]) -> None:
    result = call(secured, "GET", "/jobs/1/status", query, headers=headers)
    assert result.status == 401
    assert result.json()["error"] == "unauthorized"
    assert service_calls(secured) == []


def test_auth_runs_before_manager_lookup(secured: PulsarWsgiApp) -> None:
    assert call(secured, "GET", "/managers/unknown/jobs/1/status").status == 401


def test_upload_with_bad_token_never_reads_body(secured: PulsarWsgiApp) -> None:
    class Untouchable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("body read before authentication")

    result = call(secured, "POST", "/jobs/1/files", "name=x&type=input", b"abc", **{"wsgi.input": Untouchable()})
    assert result.status == 401


@pytest.mark.parametrize("path", ["/healthz", "/managers/cluster/healthz"])
def test_healthz_needs_no_token_and_answers_only_the_version(secured: PulsarWsgiApp, path: str) -> None:
    result = call(secured, "GET", path)
    assert result.status == 200
    assert result.json() == {"version": "0.17.0.dev0"}


def test_access_log_scrubs_secrets(secured: PulsarWsgiApp, caplog: pytest.LogCaptureFixture) -> None:
    query = f"command_line=rm+-rf+secret_dir&remote_staging=%7B%22ssh_key%22%3A%22KEY%22%7D&private_token={TOKEN}"
    with caplog.at_level(logging.INFO):
        assert call(secured, "POST", "/jobs/77/submit", query).status == 200
        assert call(secured, "POST", "/jobs/77/submit", query.replace(TOKEN, "bad")).status == 401
    text = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (TOKEN, "secret_dir", "KEY", "rm"):
        assert secret not in text
    access = [r.getMessage() for r in caplog.records if r.name == "pulsar.web.access"]
    assert len(access) == 2
    assert '"POST /jobs/77/submit?command_line=***&remote_staging=***&private_token=***" 200 2 ' in access[0]
    assert " 401 " in access[1]


def test_download_access_log_is_written_when_body_is_closed(wsgi: PulsarWsgiApp, fake_app: FakeApp,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    write_output(fake_app, b"x" * 100)
    with caplog.at_level(logging.INFO, logger="pulsar.web.access"):
        call(wsgi, "GET", "/jobs/1/files", "name=out.dat")
        call(wsgi, "GET", "/jobs/1/files", "name=out.dat", headers={"Range": "bytes=90-"})
    first, ranged = [r.getMessage() for r in caplog.records if r.name == "pulsar.web.access"]
    assert '"GET /jobs/1/files?name=out.dat" 200 100 ' in first
    assert '"GET /jobs/1/files?name=out.dat" 206 10 ' in ranged  # what went out, as WebOb framed it


def test_successful_status_polls_are_logged_at_debug(wsgi: PulsarWsgiApp, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pulsar.web.access"):
        call(wsgi, "GET", "/jobs/1/status")
        call(wsgi, "GET", "/healthz")
        call(wsgi, "POST", "/jobs", "job_id=1")
        call(wsgi, "GET", "/jobs/../status")
    levels = [(r.levelname, r.getMessage().split('"')[1].split("?")[0]) for r in caplog.records
              if r.name == "pulsar.web.access"]
    assert levels[:3] == [("DEBUG", "GET /jobs/1/status"), ("DEBUG", "GET /healthz"), ("INFO", "POST /jobs")]
    assert levels[3][0] == "INFO"  # a failed request is never quiet
