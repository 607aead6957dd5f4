"""Jobs inherit the server's environment without its secrets, on every manager we can run.

The attack: an admin exports a secret under some name (or the token itself) in the
environment Pulsar starts with; the job is untrusted code and prints its environment.
The unit tests pin the filter; the integration test starts a real server with such an
environment and runs `env` as a job under each manager (local processes, Slurm through
`sbatch` -- which exports the submitter's environment -- locally and over SSH, DRMAA with and
without Grid Engine's `-V`, external DRMAA through sudo)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from pulsar.config import load_config
from pulsar.errors import ConfigurationError
from pulsar.managers.drmaa import DrmaaManager, export_all_replaced, job_template
from pulsar.managers.environment import DEFAULT_WITHHELD, JobEnvironment, withheld_words
from pulsar.managers.external_drmaa import ExternalDrmaaManager
from pulsar.managers.local import UnqueuedManager
from test.managers.harness import RecordingEvents, make_job
from test.managers.test_http_end_to_end import Setup, _options
from test.support.http import Api
from test.support.server import DEFAULT_TOKEN, start_server

SERVER_ENV = {
    "AWS_SECRET_ACCESS_KEY": "leak-1-aws",
    "db_password": "leak-2-db",
    "GITHUB_TOKEN": "leak-3-gh",
    "MY_PASSWD": "leak-4-pw",
    "SSH_KEY_FILE": "leak-5-key",
    "CLOUD_CREDENTIALS": "leak-6-cred",
    "UPSTREAM_AUTH": DEFAULT_TOKEN,  # the token under an innocent name
    "PULSAR_CONFIG_OVERRIDE_DEBUG": "false",
    "SITE_MODULE_PATH": "/opt/site/modules",
}
SECRET_NAMES = sorted(set(SERVER_ENV) - {"SITE_MODULE_PATH"})
SECRET_VALUES = [value for name, value in SERVER_ENV.items() if name in SECRET_NAMES and name != "PULSAR_CONFIG_OVERRIDE_DEBUG"]


def test_names_that_look_secret_and_the_token_are_withheld() -> None:
    environment = JobEnvironment.capture({**SERVER_ENV, "PATH": "/bin"}, DEFAULT_WITHHELD, [DEFAULT_TOKEN])
    assert sorted(environment.variables) == ["PATH", "SITE_MODULE_PATH"]
    assert list(environment.withheld) == sorted(SECRET_NAMES)


def test_the_word_list_is_an_option() -> None:
    env = {"MONKEY_BUSINESS": "1", "VAULT_ADDR": "2", "PATH": "/bin"}
    assert sorted(JobEnvironment.capture(env, withheld_words(None)).variables) == ["PATH", "VAULT_ADDR"]
    assert sorted(JobEnvironment.capture(env, withheld_words(["vault"])).variables) == ["MONKEY_BUSINESS", "PATH"]
    assert sorted(JobEnvironment.capture(env, withheld_words("")).variables) == sorted(env)
    assert withheld_words("token, secret key") == ("TOKEN", "SECRET", "KEY")


def test_from_options_withholds_the_configured_token_by_value() -> None:
    environment = JobEnvironment.from_options({"private_token": "s3cr3t", "withheld_environment": []},
                                              {"A": "xx-s3cr3t-yy", "B": "fine"})
    assert environment.variables == {"B": "fine"}
    assert environment.withheld == ("A",)


def test_the_broker_password_is_withheld_by_value() -> None:
    environment = JobEnvironment.from_options(
        {"message_queue_url": "amqp://pulsar:br%40ker-pw@mq:5672//", "withheld_environment": []},
        {"BROKER_URL": "amqp://pulsar:br%40ker-pw@mq:5672//", "PLAIN": "br@ker-pw", "OK": "1"})
    assert environment.variables == {"OK": "1"}


def test_withheld_names_are_logged_once_without_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    JobEnvironment.capture(SERVER_ENV, DEFAULT_WITHHELD, [DEFAULT_TOKEN]).log_withheld()
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert all(name in message for name in SECRET_NAMES)
    assert not any(value in message for value in SECRET_VALUES + [DEFAULT_TOKEN])


def test_config_validates_the_option(tmp_path: Path) -> None:
    (tmp_path / "app.yml").write_text("withheld_environment: [vault, token]\n")
    assert load_config(config_dir=tmp_path, environ={})["withheld_environment"] == ["VAULT", "TOKEN"]
    (tmp_path / "app.yml").write_text("withheld_environment: {a: 1}\n")
    with pytest.raises(ConfigurationError, match="withheld_environment"):
        load_config(config_dir=tmp_path, environ={})


def test_drmaa_export_all_is_replaced_by_the_job_environment(job_root: Path) -> None:
    assert export_all_replaced("-q all.q -V -l h_rt=10") == ("-q all.q -l h_rt=10", True)
    assert export_all_replaced("-q all.q") == ("-q all.q", False)
    assert export_all_replaced(None) == (None, False)
    spec = make_job(job_root, "jt", "true", UnqueuedManager("u", {}))
    template = job_template(spec, "-q all.q", {"PATH": "/bin"})
    assert template["jobEnvironment"] == {"PATH": "/bin"}


# --- DRMAA in process and through the sudo helpers, with a recording session -------------

FILTERED = JobEnvironment.capture({"PATH": "/usr/bin:/bin", "SITE": "kept", "X_SECRET": "leak-7",
                                   "ALIAS": DEFAULT_TOKEN}, DEFAULT_WITHHELD, [DEFAULT_TOKEN])


class RecordingSession:
    def __init__(self) -> None:
        self.templates: list[dict[str, Any]] = []

    def run_job(self, **attrs: Any) -> str:
        self.templates.append(attrs)
        return str(100 + len(self.templates))

    def poll(self, external_id: str) -> str:
        return "running"

    def terminate(self, external_id: str) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingFactory:
    def __init__(self) -> None:
        self.session = RecordingSession()

    def get(self, **kwargs: Any) -> RecordingSession:
        return self.session


@pytest.mark.parametrize("manager_spec,client_spec", [("-q all.q -V", None), (None, "-V -l h_rt=60")])
def test_drmaa_minus_v_becomes_the_filtered_job_environment(job_root: Path, manager_spec: str | None,
                                                            client_spec: str | None) -> None:
    factory = RecordingFactory()
    options = {"type": "queued_drmaa", "poll_interval": 30}
    if manager_spec:
        options["native_specification"] = manager_spec
    manager = DrmaaManager("d", options, session_factory=factory)  # type: ignore[arg-type]
    manager.use_environment(FILTERED)
    manager.bind(RecordingEvents())
    manager.start()
    try:
        params = {"native_specification": client_spec} if client_spec else {}
        manager.submit(make_job(job_root, "dv", "true", manager, params))
    finally:
        manager.shutdown()
    (template,) = factory.session.templates
    assert "-V" not in template["nativeSpecification"].split()
    assert template["jobEnvironment"] == {"PATH": "/usr/bin:/bin", "SITE": "kept"}


def test_drmaa_without_minus_v_passes_no_environment(job_root: Path) -> None:
    factory = RecordingFactory()
    manager = DrmaaManager("d", {"native_specification": "-q all.q", "poll_interval": 30},
                           session_factory=factory)  # type: ignore[arg-type]
    manager.use_environment(FILTERED)
    manager.bind(RecordingEvents())
    manager.start()
    try:
        manager.submit(make_job(job_root, "dn", "true", manager))
    finally:
        manager.shutdown()
    assert "jobEnvironment" not in factory.session.templates[0]


def test_external_drmaa_helpers_run_with_the_filtered_environment(job_root: Path, tmp_path: Path) -> None:
    """`sudo -E` hands the caller's environment to the chown and launch helpers (and the
    launch helper's DRMAA session may export it to the job): a stand-in sudo records it."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    fake_sudo = tmp_path / "fake-sudo"
    fake_sudo.write_text(f"#!/bin/sh\nenv > {dumps}/$$.env\necho 4242\n")
    fake_sudo.chmod(0o755)
    manager = ExternalDrmaaManager("x", {"type": "queued_external_drmaa", "poll_interval": 30, "sudo": str(fake_sudo),
                                         "drmaa_launch_script": "launch", "drmaa_kill_script": "kill",
                                         "chown_working_directory_script": "chown"},
                                   session_factory=RecordingFactory())  # type: ignore[arg-type]
    manager.use_environment(FILTERED)
    manager.bind(RecordingEvents())
    manager.start()
    try:
        manager.submit(make_job(job_root, "xd", "true", manager, {"user": "nobody"}))
    finally:
        manager.shutdown()
    seen = [path.read_text() for path in dumps.iterdir()]
    assert len(seen) >= 2  # chown, then launch
    for text in seen:
        names = {line.partition("=")[0] for line in text.splitlines()}
        assert "SITE" in names and "X_SECRET" not in names and "ALIAS" not in names
        assert "leak-7" not in text and DEFAULT_TOKEN not in text


# --- a real server, a job that prints its environment -----------------------------------

#: kinds whose jobs inherit the server's environment (DRMAA without -V gets the DRM's own;
#: sbatch over SSH exports the remote login shell's environment, which never held the server's)
INHERITING = {"queued_python", "unqueued", "slurm_local", "drmaa_export_all",
              "fake_torque", "fake_lsf", "fake_condor"}
KINDS = ["queued_python", "unqueued", "slurm_local", "slurm_ssh", "drmaa", "drmaa_export_all", "external_drmaa",
         "fake_torque", "fake_lsf", "fake_condor"]
#: The fake qsub/bsub/condor_submit of test/fakes/bin run the job with the environment they
#: were started with, as sbatch (and qsub -V, condor getenv) do.
FAKES = {"fake_torque": {"type": "queued_cli", "job_plugin": "Torque"},
         "fake_lsf": {"type": "queued_cli", "job_plugin": "LSF"},
         "fake_condor": {"type": "queued_condor"}}


@pytest.fixture(params=KINDS)
def env_setup(request: pytest.FixtureRequest, job_root: Path) -> Iterator[tuple[str, Setup, dict[str, str]]]:
    kind = request.param
    extra_env: dict[str, str] = {}
    if kind in FAKES:
        state = request.getfixturevalue("fake_scheduler")
        manager: dict[str, Any] = {**FAKES[kind], "poll_interval": 0.2}
        params: dict[str, Any] = {}
        extra_env = {"PATH": os.environ["PATH"], "FAKE_SCHEDULER_DIR": str(state), "FAKE_PBS_FLAVOR": "torque"}
    else:
        manager, params = _options(request, "drmaa" if kind == "drmaa_export_all" else kind)
    if kind == "drmaa_export_all":
        manager["native_specification"] = "-q all.q -V"
    setup = Setup(job_root, manager, params)
    yield kind, setup, extra_env
    if setup.server is not None:
        setup.server.stop()


@pytest.mark.integration
def test_job_environment_has_no_server_secrets(env_setup: tuple[str, Setup, dict[str, str]]) -> None:
    kind, setup, extra_env = env_setup
    setup.server = start_server(setup.root / "config", app_config=setup.config, env={**SERVER_ENV, **extra_env})
    api = Api(setup.server.url, setup.server.token)
    api.setup("envjob")
    setup.submit(api, "envjob", "env > ../metadata/tool_stdout; echo END-OF-ENV >> ../metadata/tool_stdout")
    status = api.poll_until_terminal("envjob", timeout=180)
    printed: str = status["stdout"]
    assert "END-OF-ENV" in printed, status
    names = {line.partition("=")[0] for line in printed.splitlines() if "=" in line}
    assert "PATH" in names
    leaked = [name for name in SECRET_NAMES if name in names]
    leaked += [value for value in SECRET_VALUES + [DEFAULT_TOKEN] if value in printed]
    assert leaked == [], f"{kind}: job saw {leaked}"
    if kind in INHERITING:
        assert "SITE_MODULE_PATH=/opt/site/modules" in printed.splitlines(), f"{kind}: site environment not inherited"
    log_text = setup.server.log_text()
    assert DEFAULT_TOKEN not in log_text
    assert not [value for value in SECRET_VALUES if value in log_text]
    withheld_lines = [line for line in log_text.splitlines() if "do not inherit" in line]
    assert len(withheld_lines) == 1 and all(name in withheld_lines[0] for name in SECRET_NAMES)
