from pulsar.util import logsafe


def test_control_characters_are_escaped():
    assert logsafe.printable("a\r\nb\x1b[31m\x7f\\") == "a\\x0d\\x0ab\\x1b[31m\\x7f\\\\"


def test_bytes_show_every_byte():
    assert logsafe.printable(b"GET /\x00") == "GET /\\x00"


def test_long_text_is_cut():
    assert logsafe.printable("a" * 1000, limit=10) == "a" * 10 + "..."


def test_token_in_a_target_is_redacted():
    line = logsafe.target("/jobs/1/status?private_token=s3cret&x=1\n")
    assert "s3cret" not in line
    assert line == "/jobs/1/status?private_token=***&x=1\\x0a"
