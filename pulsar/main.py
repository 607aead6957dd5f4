"""The `pulsar` and `pulsar-main` launchers.

`pulsar` serves the web application in the foreground (or, with `--daemon`, in the
background) from a configuration directory:

* `<config_dir>/server.ini` if present: `[server:main]` host/port/ssl_pem/threads,
  `[app:main]`, and the logging sections;
* `<config_dir>/app.yml` if present (see `pulsar.config` for the full precedence);
* otherwise the embedded default: the local queue (`queued_python`), 127.0.0.1:8913 and job
  directories under `<config_dir>/files`.

Without a configured `private_token` a token is generated once and kept in
`<config_dir>/.pulsar_token` (mode 0600).  `private_token` set to an empty value means no
authentication, which is only allowed on a loopback address unless `--allow-insecure` (or
`allow_insecure_bind: true`) says otherwise.

SIGTERM or SIGINT stops accepting connections, shuts the application down (its state is
persisted) and exits 0.  Configuration mistakes exit 1 with a single message naming the key
and the file; refusing an unauthenticated public bind exits 2.

`pulsar-main` (or `pulsar -m webless`) runs the application without a web server, for
message-queue deployments, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import logging.config
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pulsar
from pulsar.config import (
    DEFAULT_INI_NAME,
    SERVER_COUNTS,
    SERVER_TIMINGS,
    InsecureBind,
    check_bind,
    load_config,
    read_server_section,
)
from pulsar.daemon import Daemon, DaemonError, daemonize, stop_daemon
from pulsar.errors import ConfigurationError
from pulsar.protocol import DEFAULT_HOST, DEFAULT_PORT
from pulsar.util.fileio import atomic_write_text

log = logging.getLogger("pulsar.main")

TOKEN_FILE_NAME = ".pulsar_token"
PID_FILE_NAME = "pulsar.pid"
LOG_FILE_NAME = "pulsar.log"
EXIT_CONFIG = 1
EXIT_INSECURE = 2
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"


@dataclasses.dataclass
class Settings:
    """Everything `serve` needs, resolved before any fork so mistakes reach the terminal."""

    config_dir: Path
    ini_path: Path | None
    app_config: dict[str, Any]
    host: str
    port: int
    ssl_pem: str | None
    threads: int | None  # None: the web server's default
    #: keepalive_timeout etc. and max_pending_heads from server.ini (see
    #: `pulsar.config.SERVER_TIMINGS`, `SERVER_COUNTS`), passed to the web server as they are
    server_timings: dict[str, float | int]
    token_file: Path | None  # set when the token was generated or read from the token file


# --- pulsar --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode, rest = _split_mode(argv)
    if mode == "webless":
        return main_webless(rest)
    args = _server_parser().parse_args(rest)
    config_dir = _config_dir(args.config)
    pid_file = Path(args.pid_file) if args.pid_file else config_dir / PID_FILE_NAME
    if args.stop_daemon:
        return _stop(pid_file)
    try:
        settings = resolve_settings(args, config_dir)
    except InsecureBind as exc:
        return _fail(str(exc), EXIT_INSECURE)
    except ConfigurationError as exc:
        return _fail(f"configuration error: {exc}", EXIT_CONFIG)

    return _run(args, config_dir, pid_file, settings.ini_path, "pulsar", lambda daemon: serve(settings, daemon))


def _run(args: argparse.Namespace, config_dir: Path, pid_file: Path, ini_path: Path | None, name: str,
         body: Callable[[Daemon | None], int]) -> int:
    """Daemonize if asked, configure logging, run `body`; every failure is reported once,
    to the terminal and (when daemonized) to the parent waiting for the daemon to be ready."""
    daemon = None
    if args.daemon:
        log_file = Path(args.log_file) if args.log_file else config_dir / LOG_FILE_NAME
        try:
            daemon = daemonize(pid_file, log_file)
        except DaemonError as exc:
            return _fail(str(exc), EXIT_CONFIG)
        os.chdir(config_dir)
    try:
        configure_logging(ini_path)
        return body(daemon)
    except ConfigurationError as exc:
        if daemon is not None:
            daemon.failed(f"configuration error: {exc}")
        return _fail(f"configuration error: {exc}", EXIT_CONFIG)
    except Exception as exc:
        log.exception("%s failed", name)
        if daemon is not None:
            daemon.failed(f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        if daemon is not None:
            daemon.remove_pid_file()


MODES = ("web", "webless")


def _split_mode(argv: list[str]) -> tuple[str, list[str]]:
    """`-m/--mode web|webless` (the reference launcher's switch): webless runs `pulsar-main`
    with the other arguments (`-c`, `--daemon`, `--stop-daemon`, `--pid-file`, `--log-file`)."""
    mode = "web"
    rest: list[str] = []
    items = iter(argv)
    for item in items:
        if item in ("-m", "--mode"):
            mode = next(items, "")
        elif item.startswith("--mode="):
            mode = item.partition("=")[2]
        else:
            rest.append(item)
            continue
        if mode not in MODES:
            _server_parser().error(f"argument -m/--mode: invalid choice {mode!r} (choose from {', '.join(MODES)})")
    return mode, rest


def _server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulsar", description="Serve the Pulsar job server.")
    parser.add_argument("-m", "--mode", choices=MODES, default="web",
                        help="web: HTTP (plus the message queue if message_queue_url is set); "
                             "webless: the message queue only, no port opened (same as pulsar-main)")
    parser.add_argument("-c", "--config", metavar="CONFIG_DIR",
                        help="directory holding server.ini / app.yml (default: $PULSAR_CONFIG_DIR or .)")
    parser.add_argument("--host", help=f"address to listen on (default: server.ini or {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port to listen on (default: server.ini or {DEFAULT_PORT})")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="allow serving without a private_token on a non-loopback address")
    parser.add_argument("--daemon", action="store_true", help="run in the background")
    parser.add_argument("--stop-daemon", action="store_true", help="stop the daemon named in the pid file")
    parser.add_argument("--pid-file", help=f"pid file for --daemon/--stop-daemon (default: CONFIG_DIR/{PID_FILE_NAME})")
    parser.add_argument("--log-file", help=f"log file for --daemon (default: CONFIG_DIR/{LOG_FILE_NAME})")
    parser.add_argument("--version", action="version", version=f"pulsar {pulsar.__version__}")
    return parser


def resolve_settings(args: argparse.Namespace, config_dir: Path) -> Settings:
    """Read the configuration, settle the token and check the bind address."""
    config_dir.mkdir(parents=True, exist_ok=True)
    ini_path = config_dir / DEFAULT_INI_NAME
    ini = ini_path if ini_path.is_file() else None
    app_config = load_config(ini_path=ini, config_dir=config_dir)
    server = read_server_section(ini) if ini is not None else {}
    host = args.host or server.get("host", DEFAULT_HOST)
    port = args.port if args.port is not None else server.get("port", DEFAULT_PORT)
    token_file = None
    if "private_token" not in app_config:
        token_file = config_dir / TOKEN_FILE_NAME
        app_config["private_token"] = ensure_token(token_file)
    allow_insecure = bool(args.allow_insecure or app_config.get("allow_insecure_bind", False))
    app_config["allow_insecure_bind"] = allow_insecure
    check_bind(host, app_config.get("private_token"), allow_insecure,
               "pass --allow-insecure (allow_insecure_bind: true)", metrics_public=bool(app_config.get("metrics_public", False)))
    return Settings(
        config_dir=config_dir,
        ini_path=ini,
        app_config=app_config,
        host=host,
        port=port,
        ssl_pem=server.get("ssl_pem"),
        threads=server.get("threads"),
        server_timings={key: server[key] for key in (*SERVER_TIMINGS, *SERVER_COUNTS) if key in server},
        token_file=token_file,
    )


def ensure_token(token_file: Path) -> str:
    """The token kept in `token_file`, generated (and stored with mode 0600) on first use."""
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    except OSError as exc:
        raise ConfigurationError(f"{token_file}: cannot read the token file: {exc.strerror}") from None
    if token:
        if token_file.stat().st_mode & 0o077:
            os.chmod(token_file, 0o600)
        return token
    token = secrets.token_urlsafe(32)
    try:
        atomic_write_text(token_file, token + "\n", mode=0o600)
    except OSError as exc:
        raise ConfigurationError(f"{token_file}: cannot write the token file: {exc.strerror}") from None
    return token


def configure_logging(ini_path: Path | None) -> None:
    """The INI's logging sections if it has them, else INFO and above to stderr."""
    if ini_path is not None and _has_logging_sections(ini_path):
        try:
            logging.config.fileConfig(
                ini_path,
                defaults={"here": str(ini_path.parent), "__file__": str(ini_path)},
                disable_existing_loggers=False,
            )
        except Exception as exc:  # fileConfig raises KeyError, ValueError, ... for bad sections
            raise ConfigurationError(f"{ini_path}: logging sections: {type(exc).__name__}: {exc}") from None
        return
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)


def _has_logging_sections(ini_path: Path) -> bool:
    with open(ini_path, encoding="utf-8") as handle:
        return any(line.strip().lower() == "[loggers]" for line in handle)


def serve(settings: Settings, daemon: Daemon | None = None) -> int:
    """Build the application and serve it until SIGTERM/SIGINT."""
    from pulsar.core import PulsarApp
    from pulsar.web.server import DEFAULT_THREADS, make_server
    from pulsar.web.wsgi import build_wsgi_app

    allow_insecure = bool(settings.app_config.get("allow_insecure_bind", False))
    # The token itself is never logged: logs are read by more people than should run jobs.
    if settings.token_file is not None:
        log.info("private_token: kept in %s (mode 0600); give it to Galaxy from there", settings.token_file)
    elif settings.app_config.get("private_token"):
        log.info("private_token: from the configuration (%s)", settings.config_dir)
    elif allow_insecure:
        log.warning("no private_token and allow_insecure_bind: every client that can reach %s:%d may run commands",
                    settings.host, settings.port)
    else:
        log.warning("no private_token: only loopback clients are answered")
    stop = _install_stop_handlers()
    pulsar_app = PulsarApp(**settings.app_config)
    try:
        try:
            server = make_server(
                build_wsgi_app(pulsar_app, loopback_only=not allow_insecure),
                host=settings.host,
                port=settings.port,
                ssl_pem=settings.ssl_pem,
                threads=settings.threads or DEFAULT_THREADS,
                max_request_line=pulsar_app.max_request_line,
                **settings.server_timings,
            )
        except OSError as exc:
            message = f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            log.error("%s", message)
            if daemon is not None:
                daemon.failed(message)
            return 1
        scheme = "https" if settings.ssl_pem else "http"
        log.info("pulsar %s serving on %s://%s:%d/ (config %s)", pulsar.__version__, scheme,
                 settings.host, settings.port, settings.config_dir)
        thread = threading.Thread(target=server.serve_forever, name="http-server", daemon=True)
        thread.start()
        if daemon is not None:
            daemon.ready()
        while thread.is_alive() and not stop.wait(1.0):
            pass
        log.info("stopping: no new connections")
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        pulsar_app.shutdown()
    log.info("pulsar stopped")
    return 0


def _install_stop_handlers() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _stop(pid_file: Path) -> int:
    try:
        print(f"pulsar: {stop_daemon(pid_file)}")
    except DaemonError as exc:
        return _fail(str(exc), 1)
    return 0


def _config_dir(option: str | None) -> Path:
    return Path(option or os.environ.get("PULSAR_CONFIG_DIR") or ".").resolve()


def _fail(message: str, code: int) -> int:
    print(f"pulsar: {message}", file=sys.stderr)
    return code


# --- pulsar-main ---------------------------------------------------------------------------


def main_webless(argv: Sequence[str] | None = None) -> int:
    """Run the application without a web server until SIGTERM or SIGINT (both stop it in
    order): the message-queue deployment, which opens no port and talks to Galaxy only
    through the broker of `message_queue_url`."""
    args = _webless_parser().parse_args(argv)
    config_dir = _config_dir(args.config_dir)
    pid_file = Path(args.pid_file) if args.pid_file else config_dir / PID_FILE_NAME
    if args.stop_daemon:
        return _stop(pid_file)
    try:
        app_conf = _decode_base64_config(args.app_conf_base64) if args.app_conf_base64 else None
        ini = Path(args.ini_path) if args.ini_path else None
        if ini is None and (config_dir / DEFAULT_INI_NAME).is_file():
            ini = config_dir / DEFAULT_INI_NAME
        app_config = load_config(ini_path=ini, app_conf=app_conf, config_dir=config_dir,
                                 app_config_path=args.app_conf_path)
    except ConfigurationError as exc:
        return _fail(f"configuration error: {exc}", EXIT_CONFIG)

    def run_app(daemon: Daemon | None) -> int:
        from pulsar.core import PulsarApp

        stop = _install_stop_handlers()
        if not app_config.get("message_queue_url"):
            log.warning("no message_queue_url is configured: without a web server nothing can reach this Pulsar")
        pulsar_app = PulsarApp(**app_config)
        try:
            log.info("pulsar %s running without a web server (config %s)", pulsar.__version__, config_dir)
            if daemon is not None:
                daemon.ready()
            stop.wait()
        finally:
            pulsar_app.shutdown()
        return 0

    return _run(args, config_dir, pid_file, ini, "pulsar-main", run_app)


def _webless_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulsar-main", description="Run Pulsar without a web server.")
    parser.add_argument("-c", "--config_dir", "--config-dir", help="configuration directory (default: .)")
    parser.add_argument("--ini_path", "--ini-path", help="INI file with an [app:main] section")
    parser.add_argument("--app_conf_path", "--app-conf-path", help="app.yml to use")
    parser.add_argument("--app_conf_base64", "--app-conf-base64", help="base64 of a JSON app configuration")
    parser.add_argument("-d", "--daemon", "--daemonize", action="store_true", help="run in the background")
    parser.add_argument("--stop-daemon", action="store_true", help="stop the daemon named in the pid file")
    parser.add_argument("--pid-file", help=f"pid file (default: CONFIG_DIR/{PID_FILE_NAME})")
    parser.add_argument("--log-file", "--daemon-log-file", help=f"log file (default: CONFIG_DIR/{LOG_FILE_NAME})")
    return parser


def _decode_base64_config(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"--app_conf_base64: not base64 of a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError("--app_conf_base64: not base64 of a JSON object")
    return value


if __name__ == "__main__":
    sys.exit(main())
