from __future__ import annotations

import pytest
import webob

from pulsar.errors import InvalidArgument
from pulsar.web.args import Args, parse_query


def test_plus_is_space_and_percent_escapes_are_utf8() -> None:
    args = Args.parse("command_line=echo+hello%20world&name=caf%C3%A9+%E2%9C%93")
    assert args["command_line"] == "echo hello world"
    assert args["name"] == "café ✓"


def test_raw_utf8_bytes_in_the_environ_are_decoded() -> None:
    # PEP 3333 servers hand unescaped bytes over as latin-1 text.
    raw = "name=café".encode("utf-8").decode("latin-1")
    assert Args.parse(raw)["name"] == "café"


def test_last_value_wins_and_blank_values_are_kept() -> None:
    args = Args.parse("type=input&type=output&tool_id=")
    assert args["type"] == "output"
    assert args["tool_id"] == ""
    assert args.required("tool_id") == ""


def test_path_variables_beat_query_values() -> None:
    args = Args.parse("job_id=999&name=x", {"job_id": "42"})
    assert args["job_id"] == "42"


def test_token_is_never_an_argument() -> None:
    assert "private_token" in parse_query(webob.Request({"QUERY_STRING": "private_token=abc&job_id=1"}))
    args = Args.parse("private_token=abc&job_id=1")
    assert "private_token" not in args
    assert dict(args) == {"job_id": "1"}


def test_unknown_arguments_are_ignored_and_optional_defaults() -> None:
    args = Args.parse("use_metadata=true&whatever=1")
    assert args.optional("tool_id") is None
    assert args.optional("tool_id", "default") == "default"


def test_missing_required_argument_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as info:
        Args.parse("").required("job_id")
    assert info.value.http_status == 400
    assert "job_id" in info.value.detail


def test_invalid_utf8_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        Args.parse("name=%FF%FE")


def test_semicolons_separate_pairs_as_in_webob_and_the_reference() -> None:
    assert dict(Args.parse("a=1;b=2&c=x%3By")) == {"a": "1", "b": "2", "c": "x;y"}


def test_text_a_server_should_have_sent_as_latin1_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        parse_query(webob.Request({"QUERY_STRING": "name=\u2713"}))
