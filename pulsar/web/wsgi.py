"""Entry points that turn configuration into a WSGI application.

`app_factory` is the PasteDeploy `paste.app_factory` named in `[app:main]` of server.ini
(`paste.app_factory = pulsar.web.wsgi:app_factory`); `build_wsgi_app` is for callers that
already hold a `PulsarApp`.
"""

from __future__ import annotations

from typing import Any

from pulsar.config import load_config
from pulsar.core import PulsarApp
from pulsar.web.app import PulsarWsgiApp
from pulsar.web.request import PulsarAppLike


def build_wsgi_app(pulsar_app: PulsarAppLike) -> PulsarWsgiApp:
    """The WSGI callable serving `pulsar_app`'s routes."""
    return PulsarWsgiApp(pulsar_app)


def app_factory(global_conf: dict[str, Any], **local_conf: Any) -> PulsarWsgiApp:
    """PasteDeploy app factory: `global_conf["__file__"]` is the INI path, `local_conf` the
    `[app:main]` keys.  Raises `pulsar.errors.ConfigurationError` for unusable settings."""
    options = load_config(ini_path=global_conf.get("__file__"), app_conf=local_conf)
    return build_wsgi_app(PulsarApp(**options))
