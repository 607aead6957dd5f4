"""Destination parameters: legacy URL parsing, base URL and manager prefix, submit params."""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping
from urllib.parse import quote

log = logging.getLogger(__name__)

SUBMIT_PREFIX = "submit_"


def url_to_destination_params(url: str) -> dict[str, Any]:
    """Parse a legacy URL destination (`pulsar://TOKEN@host:port/path`) into params.

    The `pulsar://` prefix is dropped, a trailing "/" is ensured and an embedded `TOKEN@`
    becomes `private_token` (removed from the URL).
    """
    if url.startswith("pulsar://"):
        url = url[len("pulsar://"):]
    if not url.endswith("/"):
        url += "/"
    private_token = None
    match = re.match(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)?(?P<token>[^/@]+)@(?P<rest>.*)$", url)
    if match:
        private_token = match.group("token")
        url = (match.group("scheme") or "") + match.group("rest")
    return {"url": url, "private_token": private_token}


def base_url(params: Mapping[str, Any]) -> str:
    """The URL every job route is joined onto: scheme ensured, trailing "/", manager prefix."""
    url = params.get("url")
    if not url:
        raise ValueError("destination has no url")
    url = str(url)
    if url.startswith("pulsar://"):
        url = url[len("pulsar://"):]
    if "://" not in url:
        url = "http://" + url
    if not url.endswith("/"):
        url += "/"
    manager = params.get("manager")
    if manager:
        if "/managers/" in url:
            log.warning("destination url %s already names a manager; ignoring manager=%s", url, manager)
        else:
            url += f"managers/{quote(str(manager), safe='')}/"
    return url


def submit_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Destination params starting with `submit_`, prefix removed (spec 3.5 `params`)."""
    return {k[len(SUBMIT_PREFIX):]: v for k, v in params.items() if k.startswith(SUBMIT_PREFIX) and v is not None}
