from __future__ import annotations

import pytest

from pulsar.client.destination import base_url, submit_params, url_to_destination_params


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://host:8913", {"url": "http://host:8913/", "private_token": None}),
        ("pulsar://host:8913/", {"url": "host:8913/", "private_token": None}),
        ("https://s3cret@host:8913/p", {"url": "https://host:8913/p/", "private_token": "s3cret"}),
        ("pulsar://tok@host/", {"url": "host/", "private_token": "tok"}),
    ],
)
def test_url_to_destination_params(url: str, expected: dict[str, object]) -> None:
    assert url_to_destination_params(url) == expected


def test_base_url_adds_scheme_slash_and_manager() -> None:
    assert base_url({"url": "host:8913"}) == "http://host:8913/"
    assert base_url({"url": "http://h/p", "manager": "big"}) == "http://h/p/managers/big/"
    assert base_url({"url": "http://h/managers/x/", "manager": "big"}) == "http://h/managers/x/"


def test_submit_params_strip_prefix() -> None:
    assert submit_params({"submit_native_specification": "-n 2", "url": "x", "submit_user": None}) == {
        "native_specification": "-n 2"}
