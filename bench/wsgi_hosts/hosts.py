"""The servers under comparison, all hosting our WSGI application with the same app.yml.

* `ours`: `python -m pulsar.main -c DIR --port P` (bench/servers.py's `OurServer`);
* `paster`: `paster serve server.ini` with `paste.server_runner = pulsar.web.server:server_runner`
  (our server again, started the PasteDeploy way: checks that `paster serve` keeps working);
* `paste`, `waitress`, `cheroot`, `gunicorn`: `launch.py --host NAME` in the hosts venv.

Each is a `bench.servers.BenchServer`, so the existing workloads (`transfer.run_transfer`,
`jobs.run_trivial_jobs`) drive them unchanged, and `ServerSet` stops them on every exit path.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.servers import BenchServer, OurServer
from test.support.server import subprocess_env

LAUNCHER = Path(__file__).resolve().parent / "launch.py"

#: name -> one-line description for the table header.
DESCRIPTIONS = {
    "ours": "python -m pulsar.main (our stdlib HTTP/1.1 server)",
    "paster": "paster serve server.ini -> pulsar.web.server:server_runner (our server via PasteDeploy)",
    "paste": "paste.httpserver.serve, thread pool",
    "waitress": "waitress.create_server",
    "cheroot": "cheroot.wsgi.Server",
    "gunicorn": "gunicorn -k gthread -w 1",
}
THIRD_PARTY = ("paste", "waitress", "cheroot", "gunicorn")
ALL_HOSTS = ("ours", "paster", *THIRD_PARTY)


class LaunchedServer(BenchServer):
    """Our application under a third-party WSGI server, run by `launch.py` in the hosts venv."""

    def __init__(self, root: Path, host: str, venv: Path, threads: int):
        self.kind = host
        self.venv = venv
        self.threads = threads
        super().__init__(root)

    def write_config(self) -> None:
        write_app_yml(self)

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "python"), str(LAUNCHER), "--host", self.kind,
                "--config-dir", str(self.config_dir), "--port", str(self.port), "--threads", str(self.threads)]

    def env(self) -> dict[str, str]:
        return subprocess_env()


class PasterServer(BenchServer):
    """Our own server started by `paster serve` (PasteScript) from a server.ini."""

    kind = "paster"

    def __init__(self, root: Path, venv: Path, threads: int):
        self.venv = venv
        self.threads = threads
        super().__init__(root)

    def write_config(self) -> None:
        write_app_yml(self)
        (self.config_dir / "server.ini").write_text(
            "[server:main]\n"
            "paste.server_runner = pulsar.web.server:server_runner\n"
            f"host = 127.0.0.1\nport = {self.port}\nthreads = {self.threads}\n\n"
            "[app:main]\n"
            "paste.app_factory = pulsar.web.wsgi:app_factory\n"
            "app_config = %(here)s/app.yml\n\n"
            "[loggers]\nkeys = root\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = generic\n\n"
            "[logger_root]\nlevel = INFO\nhandlers = console\n\n"
            "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n\n"
            "[formatter_generic]\nformat = %(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s\n"
        )

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "paster"), "serve", str(self.config_dir / "server.ini")]

    def env(self) -> dict[str, str]:
        return subprocess_env()


class OursWithThreads(OurServer):
    """`python -m pulsar.main`, with `threads` set in a server.ini beside the app.yml."""

    def __init__(self, root: Path, threads: int):
        self.threads = threads
        super().__init__(root)

    def write_config(self) -> None:
        super().write_config()
        (self.config_dir / "server.ini").write_text(
            f"[server:main]\nhost = 127.0.0.1\nport = {self.port}\nthreads = {self.threads}\n\n"
            "[app:main]\napp_config = %(here)s/app.yml\n")


def write_app_yml(server: BenchServer) -> None:
    """The app.yml every host gets (bench/servers.py's settings for our server)."""
    (server.config_dir / "app.yml").write_text(yaml.safe_dump(server.app_options(), sort_keys=True))


def make_server(host: str, root: Path, venv: Path, threads: int) -> BenchServer:
    if host == "ours":
        return OursWithThreads(root, threads)
    if host == "paster":
        return PasterServer(root, venv, threads)
    return LaunchedServer(root, host, venv, threads)
