"""The `oidc` authentication plugin of `user_auth`: the job's user from Galaxy's OIDC token.

Why: `allow_all` calls every user `anonymous`; with `oidc` the server learns who submitted
the job from a token the identity provider signed, so `userlist` can name real users.

For each job (the reference 0.16.0 does the same; observed with a test identity provider):

1. GET `<token_endpoint>&provider=<oidc_provider>` -- Galaxy's per-job token URL, which the
   client sends with the submit -- answers the user's JWT as text;
2. GET `oidc_jwks_url` answers the provider's JSON Web Key Set; the key whose `kid` the token
   names gives, in `x5c[0]`, the certificate whose public key must verify the RS256 signature
   (a key without `x5c`, an unknown `kid` or an expired token is refused; the audience is not
   checked);
3. the claim `oidc_username_in_token` is the user name, cut to what the regular expression
   `oidc_username_template` matches at its start (`re.match`; e.g. `[^@]+` keeps the part
   before the `@`); a claim it does not match is refused.

Needs PyJWT with its crypto extra (`pip install pulsar-app[oidc]`); configuring the plugin
without it stops the start naming the extra.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
from typing import Any, Callable, Mapping

from pulsar.errors import ConfigurationError

#: Seconds to wait for the token endpoint and the key set.
FETCH_TIMEOUT = 30.0
#: Largest token or key set read.
MAX_BYTES = 1024 * 1024

KEYS = frozenset({"oidc_jwks_url", "oidc_provider", "oidc_username_in_token", "oidc_username_template"})


class NotAuthenticated(Exception):
    """The job's user could not be established; the message says why (for the client)."""


def _fetch(url: str, what: str) -> bytes:
    import requests  # here, not at the top: only servers using oidc pay for importing it

    try:
        with requests.get(url, timeout=FETCH_TIMEOUT, stream=True) as response:
            if response.status_code != 200:
                raise NotAuthenticated(f"fetching the {what} answered HTTP {response.status_code}")
            data = response.raw.read(MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise NotAuthenticated(f"fetching the {what} failed: {type(exc).__name__}") from None
    if len(data) > MAX_BYTES:
        raise NotAuthenticated(f"the {what} is larger than {MAX_BYTES} bytes")
    return bytes(data)


def build_oidc(options: Mapping[str, Any]) -> Callable[[str | None], str]:
    """The plugin: a function from the job's `token_endpoint` to its user name, raising
    `NotAuthenticated`.  `ConfigurationError` for a missing or unusable option, or without PyJWT."""
    try:
        jwt = importlib.import_module("jwt")
        x509 = importlib.import_module("cryptography.x509")
    except ImportError:
        raise ConfigurationError("user_auth: the oidc plugin needs PyJWT with cryptography: "
                                 "pip install 'pulsar-app[oidc]'") from None
    for key in sorted(KEYS):
        if not isinstance(options.get(key), str) or not options[key]:
            raise ConfigurationError(f"user_auth: the oidc plugin needs {key}, a non-empty string")
    jwks_url, provider, claim = options["oidc_jwks_url"], options["oidc_provider"], options["oidc_username_in_token"]
    if not jwks_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"user_auth: oidc_jwks_url must be an http(s) URL, not {jwks_url!r}")
    try:
        template = re.compile(options["oidc_username_template"])
    except re.error as exc:
        raise ConfigurationError(f"user_auth: oidc_username_template is not a regular expression: {exc}") from None

    def public_key(token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"the token is not a JWT: {exc}") from None
        try:
            keys = json.loads(_fetch(jwks_url, "key set"))["keys"]
            for entry in keys:
                if entry.get("kid") == kid and entry.get("x5c"):
                    der = base64.b64decode(entry["x5c"][0], validate=True)
                    return x509.load_der_x509_certificate(der).public_key()
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise NotAuthenticated(f"the key set of oidc_jwks_url is unusable: {type(exc).__name__}") from None
        raise NotAuthenticated(f"the key set has no certificate (x5c) for the token's key {kid!r}")

    def authenticate(token_endpoint: str | None) -> str:
        if not token_endpoint:
            raise NotAuthenticated("the job carries no token_endpoint to fetch the user's token from")
        separator = "&" if "?" in token_endpoint else "?"
        token = _fetch(f"{token_endpoint}{separator}provider={provider}", "token").decode("ascii", "replace").strip()
        try:
            claims = jwt.decode(token, public_key(token), algorithms=["RS256"], options={"verify_aud": False})
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"the token does not verify: {exc}") from None
        value = claims.get(claim)
        if not isinstance(value, str):
            raise NotAuthenticated(f"the token has no string claim {claim!r}")
        match = template.match(value)
        if match is None or not match.group(0):
            raise NotAuthenticated(f"the token's {claim} does not match oidc_username_template")
        return match.group(0)

    return authenticate
