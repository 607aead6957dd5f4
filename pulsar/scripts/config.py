"""`pulsar-config`: write a working configuration directory.

Writes `app.yml` (with a freshly generated `private_token` unless one is given; mode 0600;
each key commented with its line from the options schema, `pulsar.options`),
`server.ini` (usable by `pulsar -c DIR` and by `paster serve server.ini`) and `local_env.sh`
(sourced by `run.sh`).  Nothing is written if any of them exists, unless `--force`.
`--mq` adds `message_queue_url` (`--mq-url`, default the local broker's guest account) for
the message-queue deployment: start it with `pulsar -m webless -c DIR`, and give Galaxy's
destination a `jobs_directory` equal to the `staging_directory` written here.
`--options` lists every option of the schema instead.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pulsar import options
from pulsar.util.fileio import atomic_write_text

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8913
DEFAULT_MQ_URL = "amqp://guest:guest@localhost:5672//"

APP_YML_HEADER = """\
# Pulsar application configuration, written by pulsar-config.
# Every option is listed by `pulsar-config --options` and described in app.yml.sample;
# relative paths are relative to this directory.  Keep this file readable by the Pulsar
# user only: it holds the token.
"""

#: Extra advice under the option's own doc line (which comes from pulsar.options).
MQ_ADVICE = """\
# Galaxy's destination needs jobs_directory: {staging} (the staging_directory above, as an
# absolute path).  TLS to the broker: use amqps:// and, for a private CA or client
# certificates, amqp_connect_ssl_ca_certs / _certfile / _keyfile (see app.yml.sample).
"""

#: The default manager's options: run jobs on this machine, or through DRMAA (the library
#: from DRMAA_LIBRARY_PATH, see local_env.sh).
LOCAL_MANAGER = {"type": "queued_python", "num_concurrent_jobs": 1}
DRMAA_MANAGER = {"type": "queued_drmaa"}

SERVER_INI = """\
# Pulsar web server configuration, written by pulsar-config.
# `pulsar -c {directory}` reads [server:main] (host, port, ssl_pem, threads) and the logging
# sections; `paster serve server.ini` uses the same file through the `paste.server_runner`
# and `paste.app_factory` lines.

[server:main]
paste.server_runner = pulsar.web.server:server_runner
host = {host}
port = {port}
# A PEM file holding the certificate followed by its private key enables HTTPS:
#ssl_pem = %(here)s/server.pem

[app:main]
paste.app_factory = pulsar.web.wsgi:app_factory
app_config = %(here)s/app.yml

[loggers]
keys = root, pulsar

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[logger_pulsar]
level = INFO
handlers =
qualname = pulsar

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s
"""

LOCAL_ENV = """\
# Sourced by run.sh before Pulsar starts: environment for Pulsar and the jobs it runs.
{drmaa}
# Galaxy installation used by jobs that run Galaxy code (metadata, set_meta):
#export GALAXY_HOME=/path/to/galaxy
#export GALAXY_VIRTUAL_ENV=/path/to/galaxy/.venv
# run.sh activates ./.venv itself; activate another virtualenv here if Pulsar lives elsewhere:
#. /path/to/pulsar-venv/bin/activate
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.options:
        sys.stdout.write(options_listing())
        return 0
    directory = Path(args.directory).resolve()
    files = render(
        directory=directory,
        host=args.host,
        port=args.port,
        token=args.private_token or secrets.token_urlsafe(32),
        libdrmaa_path=args.libdrmaa_path,
        message_queue_url=args.mq_url if args.mq else None,
    )
    existing = [name for name in files if (directory / name).exists()]
    if existing and not args.force:
        print(f"pulsar-config: {', '.join(existing)} already exist in {directory}; use --force to overwrite",
              file=sys.stderr)
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(directory / name, text, mode=FILE_MODES[name])
    print(f"pulsar-config: wrote {', '.join(files)} in {directory}")
    if args.mq:
        print(f"start the server with: pulsar -m webless -c {shlex.quote(str(directory))}")
        print(f"Galaxy's destination needs jobs_directory: {directory / 'files' / 'staging'}")
    else:
        print(f"start the server with: pulsar -c {shlex.quote(str(directory))}")
    return 0


#: app.yml holds the token; local_env.sh is sourced, not executed.
FILE_MODES = {"app.yml": 0o600, "server.ini": 0o644, "local_env.sh": 0o644}


def render(*, directory: Path, host: str, port: int, token: str, libdrmaa_path: str | None,
           message_queue_url: str | None = None) -> dict[str, str]:
    """The generated files by name (pure: writes nothing)."""
    staging = directory / "files" / "staging"
    entries: list[tuple[str, Any]] = [
        ("private_token", token),
        ("staging_directory", "files/staging"),
        ("persistence_directory", "files/persisted_data"),
        ("managers", {"_default_": DRMAA_MANAGER if libdrmaa_path else LOCAL_MANAGER}),
    ]
    if message_queue_url:
        entries += [("message_queue_url", message_queue_url),
                    # status updates also wait in an on-disk outbox, so none is lost either way
                    ("amqp_publish_retry", True)]
    drmaa = (f"export DRMAA_LIBRARY_PATH={shlex.quote(libdrmaa_path)}" if libdrmaa_path
             else "#export DRMAA_LIBRARY_PATH=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0")
    app_yml = APP_YML_HEADER + "".join(_entry(key, value) for key, value in entries)
    if message_queue_url:
        app_yml += "\n" + MQ_ADVICE.format(staging=staging)
    return {
        "app.yml": app_yml,
        "server.ini": SERVER_INI.format(directory=shlex.quote(str(directory)), host=host, port=port),
        "local_env.sh": LOCAL_ENV.format(drmaa=drmaa),
    }


def _entry(key: str, value: Any) -> str:
    """`key: value` preceded by the option's doc line from the schema (one place for it)."""
    option = options.find(key)
    if option is None:
        raise KeyError(f"pulsar-config writes {key!r}, which pulsar.options does not know")
    if isinstance(value, dict):
        body = yaml.safe_dump({key: value}, default_flow_style=False, sort_keys=False, indent=4)
    else:  # json.dumps: a valid YAML scalar whatever characters a token or URL holds
        body = f"{key}: {json.dumps(value)}\n"
    return f"\n# {option.doc}\n{body}"


def options_listing() -> str:
    """`pulsar-config --options`: every option of the schema, one paragraph each."""
    lines = []
    for option in sorted(options.OPTIONS, key=lambda o: (o.refused is not None, o.section, o.name)):
        name = option.name + ("<X>" if option.prefix else "")
        where = option.where if not option.types else f"manager ({', '.join(option.types)})"
        default = "" if option.default is None else f"; default {json.dumps(option.default)}"
        lines.append(f"{name} ({option.type}; {where}{default})")
        lines.append(f"    {'REFUSED at start: ' + option.refused if option.refused else option.doc}")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulsar-config", description="Write a Pulsar configuration directory.")
    parser.add_argument("--directory", default=".", help="where to write the files (default: .)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--private_token", "--private-token", help="shared secret (default: a generated one)")
    parser.add_argument("--libdrmaa_path", "--libdrmaa-path",
                        help="path of libdrmaa.so: configures a queued_drmaa manager")
    parser.add_argument("--mq", action="store_true",
                        help="configure the message-queue mode (Galaxy's PulsarMQJobRunner through a broker)")
    parser.add_argument("--mq-url", "--mq_url", default=DEFAULT_MQ_URL,
                        help=f"broker URL for --mq (default: {DEFAULT_MQ_URL})")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--options", action="store_true", help="list every configuration option and exit")
    return parser


if __name__ == "__main__":
    sys.exit(main())
