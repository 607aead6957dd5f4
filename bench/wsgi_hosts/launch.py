"""Serve OUR WSGI application under a third-party WSGI server.

Runs inside the hosts venv (`bench/wsgi_hosts/venv.py`) with this checkout on PYTHONPATH:

    python launch.py --host {paste,waitress,cheroot,gunicorn} --config-dir DIR --port P [--threads N]

The application is built exactly as `pulsar -c DIR` builds it (`load_config(config_dir=DIR)`,
then `PulsarApp`, then `build_wsgi_app`), so every host serves the same app with the same
`app.yml`.  Host settings: N worker threads everywhere, a listen backlog of 128 (our
server's) instead of Paste's and cheroot's 5, waitress's request-body cap lifted from 1 GiB,
gunicorn's request-line cap lifted from 4 KiB to its maximum (1 MiB): defaults that would
otherwise make large staging jobs fail rather than measure the server.

SIGTERM/SIGINT stops the server and shuts the application down (job state persisted).
gunicorn runs one gthread worker: the application keeps job state in its process, so
several workers would each see only part of it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

BACKLOG = 128
HOSTS = ("paste", "waitress", "cheroot", "gunicorn")

log = logging.getLogger("bench.wsgi_hosts.launch")


def build_app(config_dir: Path) -> tuple[Any, Any]:
    """(PulsarApp, WSGI app) for `config_dir`, as `pulsar.main.serve` builds them."""
    from pulsar.config import load_config
    from pulsar.core import PulsarApp
    from pulsar.web.wsgi import build_wsgi_app

    options = load_config(config_dir=config_dir)
    pulsar_app = PulsarApp(**options)
    return pulsar_app, build_wsgi_app(pulsar_app)


def serve_paste(app: Any, port: int, threads: int) -> tuple[Callable[[], None], Callable[[], None]]:
    from paste import httpserver

    server = httpserver.serve(app, host="127.0.0.1", port=port, start_loop=False, use_threadpool=True,
                              threadpool_workers=threads, request_queue_size=BACKLOG)
    return server.serve_forever, server.server_close


def serve_waitress(app: Any, port: int, threads: int) -> tuple[Callable[[], None], Callable[[], None]]:
    import waitress

    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=threads, backlog=BACKLOG,
                                    max_request_body_size=2**50)
    return server.run, server.close


def serve_cheroot(app: Any, port: int, threads: int) -> tuple[Callable[[], None], Callable[[], None]]:
    from cheroot import wsgi

    server = wsgi.Server(("127.0.0.1", port), app, numthreads=threads, request_queue_size=BACKLOG)
    server.prepare()
    return server.serve, server.stop


def run_gunicorn(config_dir: Path, port: int, threads: int) -> int:
    """gunicorn's own arbiter: it handles the signals; the app is built in the worker."""
    from gunicorn.app.base import BaseApplication

    holder: dict[str, Any] = {}

    class PulsarGunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"127.0.0.1:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": threads,
                "backlog": BACKLOG,
                "limit_request_line": 0,
                "timeout": 300,
                "accesslog": None,
                "worker_exit": lambda server, worker: holder["app"].shutdown() if "app" in holder else None,
            }
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24: no ~/.gunicorn socket
                settings["control_socket_disable"] = True
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            holder["app"], wsgi_app = build_app(config_dir)
            return wsgi_app

    PulsarGunicorn().run()
    return 0


SERVERS = {"paste": serve_paste, "waitress": serve_waitress, "cheroot": serve_cheroot}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", choices=HOSTS, required=True)
    parser.add_argument("--config-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s")
    if args.host == "gunicorn":
        return run_gunicorn(args.config_dir, args.port, args.threads)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    pulsar_app, wsgi_app = build_app(args.config_dir)
    try:
        serve, close = SERVERS[args.host](wsgi_app, args.port, args.threads)
        thread = threading.Thread(target=serve, name=f"{args.host}-server", daemon=True)
        thread.start()
        log.info("%s serving pulsar on 127.0.0.1:%d with %d threads", args.host, args.port, args.threads)
        while thread.is_alive() and not stop.wait(0.5):
            pass
        log.info("stopping %s", args.host)
        closer = threading.Thread(target=close, name="closer", daemon=True)
        closer.start()
        closer.join(10.0)  # a server that cannot stop in time is abandoned (daemon threads)
    finally:
        pulsar_app.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
