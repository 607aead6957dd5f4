"""Entry points that turn configuration into a WSGI application.

`app_factory` is the PasteDeploy `paste.app_factory` named in `[app:main]` of server.ini
(`paste.app_factory = pulsar.web.wsgi:app_factory`); `build_wsgi_app` is for callers that
already hold a `PulsarApp`.
"""

from __future__ import annotations

import logging
from typing import Any

from pulsar.config import check_bind, load_config, server_hosts
from pulsar.core import PulsarApp
from pulsar.web.app import PulsarWsgiApp
from pulsar.web.request import PulsarAppLike

log = logging.getLogger(__name__)

#: How `paster serve` users allow a token-less public bind.
PASTE_WAY_OUT = "set allow_insecure_bind: true in app.yml (or [app:main])"


def build_wsgi_app(pulsar_app: PulsarAppLike, *, loopback_only: bool = False) -> PulsarWsgiApp:
    """The WSGI callable serving `pulsar_app`'s routes (`loopback_only`: see `PulsarWsgiApp`)."""
    return PulsarWsgiApp(pulsar_app, loopback_only=loopback_only)


def app_factory(global_conf: dict[str, Any], **local_conf: Any) -> PulsarWsgiApp:
    """PasteDeploy app factory: `global_conf["__file__"]` is the INI path, `local_conf` the
    `[app:main]` keys.  Raises `pulsar.errors.ConfigurationError` for unusable settings.

    Secure start under `paster serve`: whichever server the INI names (our `server_runner`
    or Paste's `egg:Paste#http`, which knows nothing of tokens), a `[server:*]` section
    binding a non-loopback address without a token stops the start here, before any job
    service exists, unless `allow_insecure_bind` is set (`pulsar.errors` `InsecureBind`).
    The app also answers only loopback clients while it has no token, which covers a
    server whose address the INI does not show (gunicorn's `--bind`)."""
    ini = global_conf.get("__file__")
    options = load_config(ini_path=ini, app_conf=local_conf)
    allow_insecure = bool(options.get("allow_insecure_bind", False))
    if ini:
        for section, host in server_hosts(ini, global_conf).items():
            check_bind(host, options.get("private_token"), allow_insecure, f"{PASTE_WAY_OUT} ([{section}] host {host})",
                       metrics_public=bool(options.get("metrics_public", False)))
    if not options.get("private_token"):
        log.warning("no private_token configured: %s", "any client may run commands" if allow_insecure
                    else "only loopback clients are answered")
    return build_wsgi_app(PulsarApp(**options), loopback_only=not allow_insecure)
