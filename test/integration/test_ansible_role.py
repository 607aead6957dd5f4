"""The files and commands of the galaxyproject.pulsar Ansible role work with this Pulsar unchanged.

The role writes `app.yml` (its `pulsar_yaml_config` through `to_nice_yaml`, under a `---`
line), `server.ini` (`[server:main] use = egg:Paste#http`, host and port, `[app:main]` with our
app factory and `app_config`, sections for uWSGI and circus, and logging sections for the
`pulsar` and `galaxy` loggers at `pulsar_log_level`) and `local_env.sh` into
`pulsar_config_dir`, and its systemd unit runs one of

* `pulsar_systemd_runner: paste` (its default): `VENV/bin/python VENV/bin/paster serve CONFIG/server.ini`
* `pulsar_systemd_runner: webless`: `VENV/bin/pulsar -m webless -c CONFIG`

Here those files are rendered as the role would render them for its default variables (our
own rendering, not the role's templates), and each command -- plus `paster serve` with
`pulsar_server_egg: pulsar-app` and our contrib/pulsar.service's `pulsar -c CONFIG` -- starts
from them, serves a job where it has a web server, and stops on
SIGTERM.  The uWSGI runner (`uwsgi --ini-paste`) needs uWSGI, which this project neither ships
nor tests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from test.support.server import free_port, subprocess_env
from test.web.test_real_app import TOKEN, run_a_job

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0

#: The role's server.ini for pulsar_host "localhost", pulsar_log_level DEBUG and no
#: pulsar_ssl_pem / pulsar_uwsgi_socket (the role's defaults); `server_egg` is its
#: pulsar_server_egg (default Paste#http).
ROLE_SERVER_INI = """\
[server:main]
use = egg:{server_egg}
port = {port}
host = localhost

[app:main]
paste.app_factory = pulsar.web.wsgi:app_factory

app_config={config_dir}/app.yml

[uwsgi]
master = True
paste-logger = True
http = localhost:{port}
processes = 1
enable-threads = True

[circus]
endpoint = tcp://127.0.0.1:5555
pubsub_endpoint = tcp://127.0.0.1:5556

[watcher:web]
cmd = chaussette --fd $(circus.sockets.web) paste:server.ini
use_sockets = True
numprocesses = 1

[socket:web]
host = localhost
port = 8913

[loggers]
keys = root,pulsar,galaxy

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[logger_pulsar]
level = DEBUG
handlers = console
qualname = pulsar
propagate = 0

[logger_galaxy]
level = DEBUG
handlers = console
qualname = galaxy
propagate = 0

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = DEBUG
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s][%(threadName)s] %(message)s
"""

ROLE_LOCAL_ENV = """\
## Sourced by run.sh (the role's systemd unit does not read it)
export DRMAA_LIBRARY_PATH=/usr/lib/slurm-drmaa/lib/libdrmaa.so
export GALAXY_HOME=/srv/galaxy/server
"""


def role_yaml_config(root: Path) -> dict[str, object]:
    """A `pulsar_yaml_config` as the role's documentation and Galaxy's training use it, with
    the role's default paths (pulsar_root = `root`)."""
    return {
        "private_token": TOKEN,
        "staging_directory": str(root / "files" / "staging"),          # pulsar_staging_dir
        "persistence_directory": str(root / "files" / "persisted_data"),  # pulsar_persistence_dir
        "tool_dependency_dir": str(root / "dependencies"),              # pulsar_dependencies_dir
        "dependency_resolution": {"resolvers": [{"type": "galaxy_packages"}]},
        "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 1}},
    }


def render_role_files(root: Path, port: int, yaml_config: dict[str, object], server_egg: str = "Paste#http") -> Path:
    """pulsar_config_dir as the role leaves it; returns that directory."""
    config_dir = root / "config"
    config_dir.mkdir(parents=True)
    # app.yml.j2: a document start, a blank line, then to_nice_yaml (indent 4, sorted keys)
    (config_dir / "app.yml").write_text(
        "---\n\n" + yaml.safe_dump(yaml_config, indent=4, sort_keys=True, default_flow_style=False) + "\n")
    (config_dir / "server.ini").write_text(ROLE_SERVER_INI.format(port=port, config_dir=config_dir, server_egg=server_egg))
    (config_dir / "local_env.sh").write_text(ROLE_LOCAL_ENV)
    for directory in ("files/staging", "files/persisted_data", "dependencies"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    return config_dir


def start(argv: list[str], root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=subprocess_env())
    return process, log_path


def wait_for(condition: object, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():  # type: ignore[operator]
        assert process.poll() is None, f"exited {process.returncode}:\n{log_path.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"not up after {START_TIMEOUT}s:\n{log_path.read_text(errors='replace')}"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "healthz", timeout=5) as response:
            return "version" in json.loads(response.read())
    except (urllib.error.URLError, ConnectionError):
        return False


def stop(process: subprocess.Popen[bytes], log_path: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"ignored SIGTERM:\n{log_path.read_text(errors='replace')}") from None


def paster_serve(config: Path) -> list[str]:
    return [sys.executable, str(VENV_BIN / "paster"), "serve", str(config / "server.ini")]


#: runner -> (argv given the config dir, pulsar_server_egg, exit status on SIGTERM)
WEB_RUNNERS = {
    # the role's default unit and server.ini; Paste's httpserver installs no SIGTERM handler
    # and dies of it
    "role paste": (paster_serve, "Paste#http", -signal.SIGTERM),
    # the same with pulsar_server_egg: pulsar-app, our server runner's entry point
    "role paste, our server": (paster_serve, "pulsar-app", 0),
    # contrib/pulsar.service, pointed at the role's config directory
    "contrib unit": (lambda config: [str(VENV_BIN / "pulsar"), "-c", str(config)], "Paste#http", 0),
}


@pytest.mark.parametrize("runner", list(WEB_RUNNERS))
def test_role_files_serve_a_job(tmp_path: Path, runner: str) -> None:
    command, server_egg, exit_status = WEB_RUNNERS[runner]
    port = free_port()
    config_dir = render_role_files(tmp_path, port, role_yaml_config(tmp_path), server_egg)
    process, log_path = start(command(config_dir), tmp_path)
    url = f"http://localhost:{port}/"
    try:
        wait_for(lambda: answers(url), process, log_path)
        run_a_job(url)
    except BaseException:
        process.kill()
        process.wait()
        raise
    assert stop(process, log_path) == exit_status, log_path.read_text(errors="replace")
    staging = tmp_path / "files" / "staging"  # pulsar_staging_dir was used, and the job cleaned
    assert sorted(p.name for p in staging.iterdir()) == [".private", ".trash"]  # the server's own; no job left
    assert list((staging / ".private").iterdir()) == []


def test_role_webless_runner_starts_and_stops(tmp_path: Path) -> None:
    """`pulsar -m webless -c CONFIG` (pulsar_systemd_runner: webless) on the same files; the
    message-queue side of it is covered by the MQ tests."""
    config_dir = render_role_files(tmp_path, free_port(), role_yaml_config(tmp_path))
    process, log_path = start([str(VENV_BIN / "pulsar"), "-m", "webless", "-c", str(config_dir)], tmp_path)
    try:
        wait_for(lambda: "running without a web server" in log_path.read_text(errors="replace"), process, log_path)
    except BaseException:
        process.kill()
        process.wait()
        raise
    assert stop(process, log_path) == 0, log_path.read_text(errors="replace")


def test_min_polling_interval_from_older_examples_is_named_at_start(tmp_path: Path) -> None:
    """The one key of the role's documented examples this Pulsar refuses: the start stops with
    one line naming it (README, "Ansible"), instead of accepting and ignoring it."""
    config_dir = render_role_files(tmp_path, free_port(), {**role_yaml_config(tmp_path), "min_polling_interval": 0.5})
    result = subprocess.run([str(VENV_BIN / "pulsar"), "-c", str(config_dir)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=START_TIMEOUT, env=subprocess_env())
    assert result.returncode == 1
    assert f"{config_dir / 'app.yml'}: min_polling_interval: not supported" in result.stderr
