"""The `oidc` authentication plugin against a real identity provider on loopback: a JWKS URL
with an RSA key's certificate (x5c) and Galaxy's per-job token URL answering a signed JWT.
The cases are those observed with the reference 0.16.0 (same claims, same outcome)."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pulsar.core import PulsarApp
from pulsar.errors import ConfigurationError, Refused
from pulsar.jobs.authorization import build_user_auth

from .conftest import wait_terminal

App = Callable[..., PulsarApp]


def _key_and_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-idp")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, certificate.public_bytes(serialization.Encoding.DER)


class IdentityProvider:
    """`/jwks`: one key, `k1`, with its certificate in x5c; `/token?...`: a JWT of `claims`,
    signed by `signer` (default: k1's key) with header kid `kid`.  Requests are recorded."""

    def __init__(self) -> None:
        self.key, certificate = _key_and_certificate()
        self.signer = self.key
        self.kid = "k1"
        self.claims: dict[str, Any] = {}
        self.key_entry: dict[str, Any] = {"kid": "k1", "kty": "RSA", "alg": "RS256",
                                          "x5c": [base64.b64encode(certificate).decode()]}
        self.paths: list[str] = []
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                provider.paths.append(self.path)
                if self.path == "/jwks":
                    body = json.dumps({"keys": [provider.key_entry]}).encode()
                else:
                    pem = provider.signer.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption())
                    claims = {"exp": int(time.time()) + 600, **provider.claims}
                    body = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": provider.kid}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.stop()


def oidc_auth(idp: IdentityProvider, allowed: list[str], template: str = ".*") -> dict[str, Any]:
    return {
        "authentication": [{"type": "oidc", "oidc_jwks_url": f"{idp.url}/jwks", "oidc_provider": "myprov",
                            "oidc_username_in_token": "preferred_username", "oidc_username_template": template}],
        "authorization": [{"type": "userlist", "userlist_allowed_users": allowed}],
    }


def submit(service: Any, job_id: str, token_endpoint: str | None) -> None:
    service.setup(job_id)
    args = {"command_line": "echo ran > ../outputs/o"}
    if token_endpoint is not None:
        args["token_endpoint"] = json.dumps({"token_endpoint": token_endpoint})  # as the reference client sends it
    service.submit(job_id, args)


@pytest.mark.parametrize("claims, template, allowed", [
    ({"preferred_username": "alice@example.org"}, ".*", ["alice@example.org"]),
    ({"preferred_username": "alice@example.org"}, "(.*)@example.org", ["alice@example.org"]),  # the whole match
    ({"preferred_username": "alice@example.org"}, "alice", ["alice"]),  # re.match: a prefix
    ({"preferred_username": "alice@example.org", "aud": "galaxy"}, ".*", ["alice@example.org"]),  # aud not checked
])
def test_the_token_names_an_allowed_user(make_app: App, idp: IdentityProvider, claims: dict[str, Any],
                                         template: str, allowed: list[str]) -> None:
    idp.claims = claims
    service = make_app(user_auth=oidc_auth(idp, allowed, template)).service(None)
    submit(service, "o1", f"{idp.url}/api/jobs/ENC/oidc-tokens?job_key=K")
    assert wait_terminal(service, "o1")["status"] == "complete"
    assert idp.paths == ["/api/jobs/ENC/oidc-tokens?job_key=K&provider=myprov", "/jwks"]


def test_a_user_the_list_lacks_is_refused(make_app: App, idp: IdentityProvider) -> None:
    idp.claims = {"preferred_username": "alice@example.org"}
    service = make_app(user_auth=oidc_auth(idp, ["alice"], "(.*)@example.org")).service(None)
    with pytest.raises(Refused, match="user 'alice@example.org' is not in userlist_allowed_users"):
        submit(service, "o2", f"{idp.url}/token?job_key=K")
    assert service.status("o2")["outputs_directory_contents"] == []


@pytest.mark.parametrize("change, reason", [
    (lambda idp: setattr(idp, "claims", {"preferred_username": "alice@example.org", "exp": 1000}),
     "the token does not verify: Signature has expired"),
    (lambda idp: setattr(idp, "kid", "other"), "no certificate (x5c) for the token's key 'other'"),
    (lambda idp: idp.key_entry.pop("x5c"), "no certificate (x5c) for the token's key 'k1'"),
    (lambda idp: setattr(idp, "signer", _key_and_certificate()[0]), "the token does not verify: Signature verification"),
    (lambda idp: setattr(idp, "claims", {"sub": "x"}), "the token has no string claim 'preferred_username'"),
    (lambda idp: setattr(idp, "claims", {"preferred_username": "bob@elsewhere"}),
     "preferred_username does not match oidc_username_template"),
])
def test_tokens_that_do_not_establish_the_user_are_refused(make_app: App, idp: IdentityProvider,
                                                           change: Callable[[IdentityProvider], Any],
                                                           reason: str) -> None:
    idp.claims = {"preferred_username": "alice@example.org"}
    change(idp)
    service = make_app(user_auth=oidc_auth(idp, ["alice@example.org", "bob@elsewhere"], "alice")).service(None)
    with pytest.raises(Refused, match="no authentication plugin could identify the user") as caught:
        submit(service, "o3", f"{idp.url}/token?job_key=K")
    assert reason in caught.value.detail and "job_key" not in caught.value.detail


def test_a_job_without_token_endpoint_is_refused(make_app: App, idp: IdentityProvider) -> None:
    service = make_app(user_auth=oidc_auth(idp, ["alice"])).service(None)
    with pytest.raises(Refused, match="carries no token_endpoint"):
        submit(service, "o4", None)
    assert idp.paths == []


@pytest.mark.parametrize("plugin, message", [
    ({"type": "oidc"}, "the oidc plugin needs oidc_jwks_url"),
    ({"type": "oidc", "oidc_jwks_url": "file:///etc/keys", "oidc_provider": "p", "oidc_username_in_token": "u",
      "oidc_username_template": ".*"}, "must be an http(s) URL"),
    ({"type": "oidc", "oidc_jwks_url": "https://x", "oidc_provider": "p", "oidc_username_in_token": "u",
      "oidc_username_template": "("}, "not a regular expression"),
    ({"type": "oidc", "oidc_jwks_url": "https://x", "oidc_provider": "p", "oidc_username_in_token": "u",
      "oidc_username_template": ".*", "oidc_audience": "g"}, "the oidc plugin has no option oidc_audience"),
])
def test_unusable_oidc_options_stop_the_start(plugin: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_user_auth({"user_auth": {"authentication": [plugin]}})
