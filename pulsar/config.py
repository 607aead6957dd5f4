"""Assemble and validate the application configuration (server.ini, app.yml, environment).

Order of precedence, lowest first (spec 7.1):

1. `[app:main]` of the INI file, plus its defaults `here` (the INI's directory) and
   `__file__` (the INI path); or `app_conf` when a caller (e.g. a Paste app factory) already
   parsed that section.
2. The app YAML: `app_config_path` if given, else the `app_config` key (relative to
   `config_dir`; `<path>.sample` is used when only the sample exists), else `app.yml` next to
   the INI, else `<config_dir>/app.yml`.  Its mapping is merged over the INI values.
3. Environment: `PULSAR_CONFIG_OVERRIDE_<KEY>` sets `<key>` unconditionally,
   `PULSAR_CONFIG_<KEY>` only when the key is still unset.

`config_dir` is the explicit argument, else `PULSAR_CONFIG_DIR`, else the INI's directory,
else the current directory.

The result is what `pulsar.core.PulsarApp(**config)` takes: every value parsed through the
options schema (`pulsar.options`) into its one type whatever its source (INI values are
strings), directories absolute (`staging_directory` and `persistence_directory` default to
`<config_dir>/files/staging` and `<config_dir>/files/persisted_data`;
`persistence_directory: __none__` gives `None`).  A key of the reference that this Pulsar
does not implement, or an invalid value, raises `ConfigurationError` naming the key and where
it came from; an unknown key is kept and logged as a warning naming the closest option.
"""

from __future__ import annotations

import configparser
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pulsar import options
from pulsar.errors import ConfigurationError
from pulsar.options import non_empty_string, positive_int

log = logging.getLogger(__name__)

DEFAULT_APP_CONFIG_NAME = "app.yml"
DEFAULT_INI_NAME = "server.ini"
APP_SECTION = "app:main"
SERVER_SECTION = "server:main"
OVERRIDE_PREFIX = "PULSAR_CONFIG_OVERRIDE_"
DEFAULT_PREFIX = "PULSAR_CONFIG_"
CONFIG_DIR_ENV = "PULSAR_CONFIG_DIR"
#: Variables with the PULSAR_CONFIG_ prefix that name files, not options.
NOT_OPTIONS_ENV = frozenset({CONFIG_DIR_ENV, "PULSAR_CONFIG_FILE"})


# --- loading -----------------------------------------------------------------------------


def load_config(
    *,
    ini_path: str | os.PathLike[str] | None = None,
    app_conf: Mapping[str, Any] | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    app_config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the validated application configuration (see the module docstring).

    `app_conf` replaces reading `[app:main]` from `ini_path` (Paste hands the section to its
    app factory already parsed); `ini_path` still locates `app.yml` and `config_dir`.
    Raises `ConfigurationError` for unreadable files and invalid values.
    """
    env = os.environ if environ is None else environ
    ini = Path(ini_path).resolve() if ini_path is not None else None
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    if app_conf is not None:
        _merge(values, sources, app_conf, str(ini) if ini else "the [app:main] section")
    elif ini is not None:
        _merge(values, sources, _read_ini_section(ini, APP_SECTION), str(ini))

    directory = _config_dir(config_dir, env, ini)
    yaml_path = _app_yaml_path(values, sources, directory, ini, app_config_path)
    if yaml_path is not None:
        _merge(values, sources, read_yaml_mapping(yaml_path), str(yaml_path))

    for name, value in env.items():
        if name.startswith(OVERRIDE_PREFIX) and len(name) > len(OVERRIDE_PREFIX):
            key = name[len(OVERRIDE_PREFIX):].lower()
            values[key] = value
            sources[key] = f"environment variable {name}"
    for name, value in env.items():
        if name.startswith(DEFAULT_PREFIX) and not name.startswith(OVERRIDE_PREFIX) and name not in NOT_OPTIONS_ENV:
            key = name[len(DEFAULT_PREFIX):].lower()
            if key and key not in values:
                values[key] = value
                sources[key] = f"environment variable {name}"

    values["config_dir"] = str(directory)
    return _validate(values, sources, directory)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is an empty mapping)."""
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: invalid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ConfigurationError(f"{path}: expected a mapping of options at the top level")
    return {str(key): value for key, value in loaded.items()}


def read_server_section(ini_path: str | os.PathLike[str]) -> dict[str, Any]:
    """`[server:main]` of an INI file: `host` (str), `port` (int), `ssl_pem` (absolute path,
    relative ones taken from the INI's directory), `threads` (int), and the web server's
    seconds `keepalive_timeout`, `keepalive_linger`, `request_timeout`, `header_timeout`,
    `shutdown_timeout` (float) and `max_pending_heads`, `min_body_rate` (int): the same keys
    `paster serve` passes to `pulsar.web.server:server_runner`.
    Only keys present in the file are returned; callers apply their defaults."""
    ini = Path(ini_path).resolve()
    raw = _read_ini_section(ini, SERVER_SECTION)
    parsers: dict[str, Callable[[str], Any]] = {
        "host": non_empty_string,
        "port": _port,
        "ssl_pem": lambda value: str(ini.parent / non_empty_string(value)),
        "threads": positive_int,
        **{key: _seconds for key in SERVER_TIMINGS},
        **{key: positive_int for key in SERVER_COUNTS},
    }
    result: dict[str, Any] = {}
    for key, parse in parsers.items():
        if key not in raw or (key in ("host", "ssl_pem") and not raw[key].strip()):
            continue
        try:
            result[key] = parse(raw[key])
        except ValueError as exc:
            raise ConfigurationError(f"{ini}: [{SERVER_SECTION}] {key}: {exc}") from None
    return result


def server_hosts(ini_path: str | os.PathLike[str], defaults: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The address every `[server:*]` section of an INI binds: its `host`, the hosts of a
    gunicorn-style `bind` (`host:port` words), or 127.0.0.1 (what both our runner and
    Paste's `egg:Paste#http` bind when `host` is unset).  `defaults` are the values
    PasteDeploy interpolates (`paster serve server.ini host=...` passes them).  Every
    section counts because `paster serve --server-name` may pick any of them."""
    ini = Path(ini_path).resolve()
    parser = configparser.ConfigParser(
        defaults={"here": str(ini.parent), "__file__": str(ini),
                  **{str(k): str(v) for k, v in (defaults or {}).items() if isinstance(v, (str, int))}},
        interpolation=configparser.BasicInterpolation(),
        strict=False,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(ini, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise ConfigurationError(f"{ini}: cannot read the server sections: {exc}") from None
    hosts: dict[str, str] = {}
    for section in parser.sections():
        if not section.startswith("server:"):
            continue
        try:
            host = parser.get(section, "host", fallback="").strip()
            bind = parser.get(section, "bind", fallback="").strip()
        except configparser.Error as exc:
            raise ConfigurationError(f"{ini}: [{section}] host: {exc}") from None
        hosts[section] = host or "127.0.0.1"
        for index, word in enumerate(bind.replace(",", " ").split()):
            if word.startswith(("unix:", "fd://")):
                continue  # not a network address
            address = word.rpartition(":")[0] if word.count(":") == 1 or word.startswith("[") else word
            hosts[f"{section} bind {index}"] = address or "0.0.0.0"
    return hosts


#: `[server:main]` keys in seconds, passed to `pulsar.web.server.make_server` as they are.
SERVER_TIMINGS = ("keepalive_timeout", "keepalive_linger", "request_timeout", "header_timeout", "shutdown_timeout")
#: `[server:main]` keys that are counts, passed to `pulsar.web.server.make_server` as they are.
SERVER_COUNTS = ("max_pending_heads", "min_body_rate")


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds >= 0:
        raise ValueError(f"expected a number of seconds >= 0, got {value!r}")
    return seconds


def _port(value: Any) -> int:
    port = positive_int(value)
    if port > 65535:
        raise ValueError(f"port {port} is above 65535")
    return port


def _read_ini_section(ini: Path, section: str) -> dict[str, str]:
    """The section's values, interpolated (`%(here)s` etc.); a missing section is empty."""
    parser = configparser.ConfigParser(
        defaults={"here": str(ini.parent), "__file__": str(ini)},
        interpolation=configparser.BasicInterpolation(),
        strict=False,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case as written
    try:
        with open(ini, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigurationError(f"{ini}: cannot read: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigurationError(f"{ini}: invalid INI syntax: {exc}") from None
    if not parser.has_section(section):
        return {}
    result: dict[str, str] = {}
    for key in parser.options(section):
        try:
            result[key] = parser.get(section, key)
        except configparser.Error as exc:
            raise ConfigurationError(f"{ini}: [{section}] {key}: {exc.message}") from None
    return result


def _merge(values: dict[str, Any], sources: dict[str, str], new: Mapping[str, Any], source: str) -> None:
    for key, value in new.items():
        values[str(key)] = value
        sources[str(key)] = source


def _config_dir(explicit: str | os.PathLike[str] | None, env: Mapping[str, str], ini: Path | None) -> Path:
    if explicit is not None:
        return Path(explicit).resolve()
    if env.get(CONFIG_DIR_ENV):
        return Path(env[CONFIG_DIR_ENV]).resolve()
    if ini is not None:
        return ini.parent
    return Path.cwd()


def _app_yaml_path(
    values: Mapping[str, Any],
    sources: Mapping[str, str],
    config_dir: Path,
    ini: Path | None,
    explicit: str | os.PathLike[str] | None,
) -> Path | None:
    if explicit is not None:
        path = Path(explicit).resolve()
        if not path.exists():
            raise ConfigurationError(f"app config {path} does not exist")
        return path
    if values.get("app_config"):
        path = config_dir / str(values["app_config"])
        if path.exists():
            return path
        sample = path.with_name(path.name + ".sample")
        if sample.exists():
            log.warning("%s does not exist; using %s", path, sample)
            return sample
        raise ConfigurationError(f"{sources['app_config']}: app_config: {path} does not exist")
    base = ini.parent if ini is not None else config_dir
    path = base / DEFAULT_APP_CONFIG_NAME
    return path if path.exists() else None


def _validate(values: dict[str, Any], sources: Mapping[str, str], config_dir: Path) -> dict[str, Any]:
    result = options.app_options(values, sources)
    result.setdefault("staging_directory", str(config_dir / "files" / "staging"))
    result.setdefault("persistence_directory", str(config_dir / "files" / "persisted_data"))
    return result


# --- who may be served without a token ---------------------------------------------------


class InsecureBind(ConfigurationError):
    """Refusing to serve without a token on a non-loopback address (every launcher)."""


def is_loopback(host: str) -> bool:
    """True if every address `host` names is a loopback address (unresolvable: False)."""
    text = host.strip()
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(text, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def existing_file(options: Mapping[str, Any], key: str) -> str:
    """The file an option names, relative paths against the configuration directory (the
    option's value must be set); a missing file stops the start naming the key."""
    path = str(options[key])
    if not os.path.isabs(path) and options.get("config_dir"):
        path = os.path.join(str(options["config_dir"]), path)
    if not os.path.isfile(path):
        raise ConfigurationError(f"{key}: no such file: {path}")
    return path


def check_bind(host: str, private_token: str | bool | None, allow_insecure_bind: bool, launcher: str,
               *, metrics_public: bool = False) -> None:
    """The one secure-start rule, applied by `pulsar`, `paster serve` (our server runner and
    Paste's own server, through the app factory) alike: without a token, only a loopback
    address may be served unless `allow_insecure_bind` says the network is trusted; and
    `metrics_public` (GET /metrics without the token) only on a loopback address, whatever
    else is set.  Raises `InsecureBind` naming the launcher's way out.  `private_token`: the
    token, or whether there is one."""
    if metrics_public and not is_loopback(host):
        raise InsecureBind(
            f"refusing to serve on {host} with metrics_public: it opens /metrics without the token and is meant "
            "for a loopback bind only. Remove metrics_public and give Prometheus the token (authorization: credentials_file)."
        )
    if private_token or allow_insecure_bind or is_loopback(host):
        return
    raise InsecureBind(
        f"refusing to serve on {host} without a private_token: anyone who can reach it could run "
        f"commands. Set private_token in app.yml, or {launcher} if the network is trusted."
    )
