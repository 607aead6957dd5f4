"""`decode_body`: why a message is refused, in one line (no broker)."""

from __future__ import annotations

import pytest

from pulsar.shared.amqp import MAX_BODY_BYTES, MalformedMessage, decode_body


@pytest.mark.parametrize(
    "body, content_type, encoding, reason",
    [
        (b'{"a": 1}', "text/plain", None, "content type 'text/plain'"),
        (b'{"a": 1}', None, None, "content type None"),
        (b'{"a": 1}', "application/json", "latin-1", "content encoding"),
        (b"\xff", "application/json", "utf-8", "not UTF-8"),
        (b"{", "application/json", None, "invalid JSON"),
        (b"null", "application/json", None, "JSON NoneType is not an object"),
        (b"true", "application/json", None, "JSON bool is not an object"),
        (b"[1]", "application/json", None, "JSON list is not an object"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", None, "nests deeper than 100 levels"),
        (b'{"a": ' + b"[" * 101 + b"]" * 101 + b"}", "application/json", None, "nests deeper than 100 levels"),
    ],
)
def test_decode_body_reasons(body: bytes, content_type: str | None, encoding: str | None, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason.replace("(", r"\(")):
        decode_body(body, content_type, encoding)


def test_decode_body_accepts_json_objects() -> None:
    assert decode_body('{"a": "é"}', "application/json; charset=utf-8", "utf-8") == {"a": "é"}
    assert decode_body(b"{}", "application/json", None) == {}
    assert decode_body(b'{"a": ' + b"[" * 99 + b'"]]]"' + b"]" * 99 + b"}", "application/json", None)["a"]


def test_decode_body_refuses_oversized_bodies_before_parsing() -> None:
    with pytest.raises(MalformedMessage, match="exceeds the 67108864 byte limit"):
        decode_body(b"{" * (MAX_BODY_BYTES + 1), "application/json", None)
