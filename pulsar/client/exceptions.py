"""Errors the client raises.

Galaxy's runner distinguishes exactly one category: `PulsarClientTransportError` means
"the server could not be reached or answered with an error; try again later" (the status
poll retries it next cycle, job preparation fails the job).  Everything else means the
job itself is broken.  So every HTTP-level failure surfaces as a transport error, carrying
the HTTP status, the server's error detail and whether a retry could help.
"""

from __future__ import annotations


class PulsarClientTransportError(Exception):
    """The request did not produce a usable answer.

    `code` is one of the class constants; `transport_code` is the HTTP status when there was
    one; `transport_message` is the server's error detail (or the low-level error text).
    """

    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    NOT_200 = "not_200"
    UNKNOWN = "unknown"

    messages = {
        TIMEOUT: "Connection timed out",
        CONNECTION_REFUSED: "Connection refused",
        NOT_200: "Request failed, the server answered with an HTTP error status",
        UNKNOWN: "Unknown transport error",
    }

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        transport_code: int | str | None = None,
        transport_message: str | None = None,
    ):
        self.code = code or self.UNKNOWN
        self.message = message or self.messages.get(self.code, self.messages[self.UNKNOWN])
        self.transport_code = transport_code
        self.transport_message = transport_message
        text = self.message
        if transport_code is not None:
            text += f" (HTTP {transport_code})"
        if transport_message:
            text += f": {transport_message}"
        super().__init__(text)

    @property
    def status(self) -> int | None:
        """The HTTP status, if the server answered at all."""
        return self.transport_code if isinstance(self.transport_code, int) else None

    @property
    def transient(self) -> bool:
        """Whether repeating the same request could succeed."""
        status = self.status
        if status is None:
            return True
        return status in TRANSIENT_HTTP_STATUSES


#: HTTP statuses worth retrying; every other 4xx/5xx is permanent.
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class PulsarClientError(Exception):
    """The client was asked to do something it cannot do (bad destination, missing file)."""


class UnsupportedClientMode(PulsarClientError, ValueError):
    """A destination or manager option selects a mode this client does not implement."""


class OutputNotFound(PulsarClientTransportError):
    """The server has no such output file (HTTP 404 on download)."""


#: The reference's name for it, exported by its `pulsar.client`; one class, two names.
OutputNotFoundException = OutputNotFound


class IntegrityError(PulsarClientTransportError):
    """Transferred bytes did not match the size or digest the other side announced."""
