"""User authentication and authorisation of jobs (`user_auth`), the reference's plugin lists.

Why: `private_token` says a client may talk to the server; `user_auth` says whose jobs it
runs.  Configured as in the reference::

    user_auth:
      authentication:
        - type: allow_all                 # every job's user is "anonymous"
      authorization:
        - type: userlist
          userlist_allowed_users: [anonymous]

Authentication plugins are tried in order; the first that names the user wins, and a job
none of them names is refused.  The job then runs if any authorisation plugin allows that
user (none listed: every user), as in the reference (observed: `allow_all` next to a
`userlist` that lacks the user lets the job run).  Keys written directly under `user_auth`
are copied into every plugin's options (a plugin's own value wins), as in the reference.
Plugins:

* authentication `allow_all`: the user is `anonymous`;
* authentication `oidc`: the user named by the JWT Galaxy issues for the job
  (`pulsar.jobs.oidc`: `oidc_jwks_url`, `oidc_provider`, `oidc_username_in_token`,
  `oidc_username_template`); it needs the job's `token_endpoint`, which the reference only
  reads over the message queue and this server over HTTP too;
* authorisation `allow_all`: every user;
* authorisation `userlist`: the users listed in `userlist_allowed_users`; it needs an
  authentication plugin to name the user (without one the reference fails every job, here the
  start stops).

The check runs at submit, before anything of the job runs; a refusal is
`pulsar.errors.Refused` (403) with the reason.  Unknown plugin types and keys no configured
plugin reads stop the start (`ConfigurationError`), so no setting is silently ignored.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Mapping, Sequence

from pulsar.errors import ConfigurationError, Refused
from pulsar.jobs import oidc
from pulsar.jobs.oidc import NotAuthenticated
from pulsar.jobs.submit import SubmitRequest

log = logging.getLogger(__name__)

OPTION = "user_auth"
ANONYMOUS = "anonymous"

#: authentication plugin -> the option keys it reads
_AUTHENTICATION_KEYS: dict[str, frozenset[str]] = {"allow_all": frozenset(), "oidc": oidc.KEYS}
#: authorisation plugin -> the option keys it reads
_AUTHORIZATION_KEYS: dict[str, frozenset[str]] = {
    "allow_all": frozenset(),
    "userlist": frozenset({"userlist_allowed_users"}),
}
Authenticator = Callable[[SubmitRequest], str]  # the user's name; NotAuthenticated(reason) if unknown
Authorizer = Callable[["str | None"], "str | None"]  # the reason the user is refused, or None


@dataclasses.dataclass(frozen=True)
class UserAuth:
    """The configured plugins, in order, each as a function (see the module doc)."""

    authentication: Sequence[tuple[str, Authenticator]]
    authorization: Sequence[tuple[str, Authorizer]]

    def authorize(self, request: SubmitRequest) -> str | None:
        """The user the job runs for (None without authentication plugins); `Refused` when
        no authentication plugin names one, or no authorisation plugin allows it."""
        user = None
        failures = []
        for name, authenticate in self.authentication:
            try:
                user = authenticate(request)
                break
            except NotAuthenticated as exc:
                failures.append(f"{name}: {exc}")
        if failures and user is None:
            raise Refused("user_auth: no authentication plugin could identify the user of the job ("
                          + "; ".join(failures) + ")")
        reasons = []
        for name, authorize in self.authorization:
            reason = authorize(user)
            if reason is None:
                return user
            reasons.append(f"{name}: {reason}")
        if reasons:
            raise Refused("user_auth: no authorization plugin allows the job (" + "; ".join(reasons) + ")")
        return user


def _allow_all_authentication(options: Mapping[str, Any]) -> Authenticator:
    return lambda request: ANONYMOUS


def _oidc(options: Mapping[str, Any]) -> Authenticator:
    authenticate = oidc.build_oidc(options)
    return lambda request: authenticate(request.token_endpoint)


def _allow_all_authorization(options: Mapping[str, Any]) -> Authorizer:
    return lambda user: None


def _userlist(options: Mapping[str, Any]) -> Authorizer:
    users = options.get("userlist_allowed_users")
    if not isinstance(users, list) or not all(isinstance(user, str) and user for user in users):
        raise ConfigurationError(f"{OPTION}: the userlist plugin needs userlist_allowed_users, a list of user names")
    allowed = frozenset(users)
    return lambda user: None if user in allowed else f"user {user!r} is not in userlist_allowed_users"


_AUTHENTICATION_FACTORIES: dict[str, Callable[[Mapping[str, Any]], Authenticator]] = {
    "allow_all": _allow_all_authentication,
    "oidc": _oidc,
}
_AUTHORIZATION_FACTORIES: dict[str, Callable[[Mapping[str, Any]], Authorizer]] = {
    "allow_all": _allow_all_authorization,
    "userlist": _userlist,
}


def _plugins(
    section: str, entries: Any, shared: Mapping[str, Any], known: Mapping[str, frozenset[str]],
    factories: Mapping[str, Callable[[Mapping[str, Any]], Any]],
) -> tuple[list[tuple[str, Any]], set[str]]:
    """The plugins of one list, and the shared keys they read."""
    if entries is None:
        return [], set()
    if not isinstance(entries, list):
        raise ConfigurationError(f"{OPTION}.{section} must be a list of plugins, each with a 'type'")
    plugins = []
    used: set[str] = set()
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
            raise ConfigurationError(f"{OPTION}.{section}: every plugin must be a mapping with a 'type', not {entry!r}")
        kind = entry["type"]
        if kind not in known:
            raise ConfigurationError(f"{OPTION}.{section}: unknown plugin type {kind!r} (known: {', '.join(known)})")
        own = set(entry) - {"type"}
        unknown = own - known[kind]
        if unknown:
            raise ConfigurationError(f"{OPTION}.{section}: the {kind} plugin has no option {', '.join(sorted(unknown))}")
        used |= set(shared) & known[kind]
        plugins.append((kind, factories[kind]({**shared, **entry})))
    return plugins, used


def build_user_auth(options: Mapping[str, Any]) -> UserAuth | None:
    """The plugins `user_auth` configures, or None when it is unset.  Raises
    `ConfigurationError` naming the key for anything that would not work as written."""
    config = options.get(OPTION)
    if config in (None, {}):
        return None
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"{OPTION} must be a mapping with 'authentication' and 'authorization' lists")
    shared = {key: value for key, value in config.items() if key not in ("authentication", "authorization")}
    authentication, used_a = _plugins("authentication", config.get("authentication"), shared,
                                      _AUTHENTICATION_KEYS, _AUTHENTICATION_FACTORIES)
    authorization, used_b = _plugins("authorization", config.get("authorization"), shared,
                                     _AUTHORIZATION_KEYS, _AUTHORIZATION_FACTORIES)
    unread = set(shared) - used_a - used_b
    if unread:
        raise ConfigurationError(f"{OPTION}: no configured plugin reads {', '.join(sorted(unread))}")
    if not authentication and any(name == "userlist" for name, _ in authorization):
        raise ConfigurationError(f"{OPTION}: the userlist plugin needs an authentication plugin (e.g. allow_all) "
                                 "to name the user")
    names = (", ".join(n for n, _ in authentication) or "none") + " / " + (", ".join(n for n, _ in authorization) or "none")
    log.info("%s: authentication / authorization plugins: %s", OPTION, names)
    return UserAuth(authentication, authorization)
