"""Every option does what it says: one job (or one setup) per option whose effect no other test
shows, with the option set where admins set it -- the top of app.yml (every manager's default)
or under a manager."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pulsar.jobs.dependencies import build_resolver
from test.managers.conftest import fake_scheduler  # noqa: F401  (fixture)

from .conftest import output_text, wait_terminal


def run(service, job_id: str, command: str) -> dict:
    service.setup(job_id)
    service.submit(job_id, {"command_line": command})
    doc = wait_terminal(service, job_id)
    assert doc["status"] == "complete", doc
    return doc


@pytest.mark.parametrize("where", ["app", "manager"])
def test_env_variables_reach_jobs(make_app, where: str) -> None:
    option = {"env_PULSAR_TEST_VALUE": "from-option"}
    app = make_app(**option) if where == "app" else make_app(managers={"m": {"type": "queued_python", **option}})
    service = app.service(None if where == "app" else "m")
    run(service, "e", "echo $PULSAR_TEST_VALUE > ../outputs/o")
    assert output_text(service, "e", "output", "o") == "from-option\n"


def test_tmp_dir_expression_is_the_jobs_tmp(make_app, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    service = make_app(tmp_dir=f"$(mktemp -d {scratch}/job.XXXXXX)").service(None)
    run(service, "t", "echo $TMPDIR > ../outputs/o")
    assert output_text(service, "t", "output", "o").startswith(f"{scratch}/job.")


def test_galaxy_virtual_env_is_activated(make_app, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f"export VIRTUAL_ENV={venv}\nexport PULSAR_TEST_ACTIVATED=yes\n")
    service = make_app(galaxy_virtual_env=str(venv)).service(None)
    run(service, "v", "echo $PULSAR_TEST_ACTIVATED > ../outputs/o")
    assert output_text(service, "v", "output", "o") == "yes\n"


def test_galaxy_paths_are_reported_and_galaxy_lib_is_set(make_app, tmp_path: Path) -> None:
    home = tmp_path / "galaxy"
    paths = {"galaxy_config_file": "/g/galaxy.yml", "galaxy_dataset_files_path": "/g/objects",
             "galaxy_datatypes_config_file": "/g/datatypes_conf.xml"}
    service = make_app(galaxy_home=str(home), **paths).service(None)
    properties = service.setup("g")["system_properties"]
    assert {key: properties[key] for key in paths} == paths and properties["galaxy_home"] == str(home)
    service.submit("g", {"command_line": "echo $GALAXY_LIB > ../outputs/o"})
    wait_terminal(service, "g")
    assert output_text(service, "g", "output", "o") == f"{home}/lib\n"


def test_job_directory_mode(make_app) -> None:
    service = make_app(job_directory_mode="0700").service(None)
    service.setup("m")
    job_directory = Path(service.settings.staging_root) / "m"
    assert stat.S_IMODE(os.stat(job_directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(job_directory / "working").st_mode) == 0o700


@pytest.mark.parametrize("debug", [True, False])
def test_debug_keeps_job_directories_after_clean(make_app, debug: bool) -> None:
    service = make_app(debug=debug).service(None)
    run(service, "d", "true")
    service.clean("d")
    assert (Path(service.settings.staging_root) / "d").exists() is debug


def test_conda_and_cache_options_reach_galaxys_resolvers(tmp_path: Path) -> None:
    """Conda cannot run here: the options are checked where Galaxy's resolver holds them."""
    resolver = build_resolver({
        "tool_dependency_dir": str(tmp_path), "conda_prefix": str(tmp_path / "conda"), "conda_exec": "/bin/false",
        "conda_auto_init": False, "use_cached_dependency_manager": True,
        "tool_dependency_cache_dir": str(tmp_path / "cache"), "dependency_resolution": {"resolvers": [{"type": "conda"}]},
    })
    assert resolver is not None
    manager = resolver._manager
    conda = manager.dependency_resolvers[0]
    assert type(manager).__name__ == "CachedDependencyManager"
    assert manager.tool_dependency_cache_dir == str(tmp_path / "cache")
    assert conda.conda_context.conda_prefix == str(tmp_path / "conda")
    assert conda.conda_context.conda_exec == "/bin/false"
    assert conda.auto_init is False and conda.disabled  # no conda: off, never installed behind the admin's back
    assert json.dumps(conda.auto_install) == "false"


def test_every_conda_option_reaches_galaxys_conda_context(tmp_path: Path) -> None:
    """The conda_* keys Galaxy documents, each with a value other than Galaxy's default, as
    Galaxy's conda resolver holds them; and precache_dependencies on the dependency manager."""
    resolver = build_resolver({
        "tool_dependency_dir": str(tmp_path), "conda_prefix": str(tmp_path / "conda"), "conda_exec": "/bin/false",
        "conda_auto_install": True, "conda_debug": True, "conda_ensure_channels": "one,two",
        "conda_use_local": True, "conda_copy_dependencies": True, "conda_condarc_override": str(tmp_path / "rc"),
        "conda_use_path_exec": True, "precache_dependencies": False,
        "dependency_resolution": {"resolvers": [{"type": "conda"}]},
    })
    assert resolver is not None
    manager = resolver._manager
    conda = manager.dependency_resolvers[0]
    context = conda.conda_context
    assert conda.auto_install is True
    assert context.debug is True and context.ensure_channels == ["one", "two"]
    assert context.use_local is True and context.copy_dependencies is True
    assert context.condarc_override == str(tmp_path / "rc")
    assert manager.get_resolver_option(conda, "use_path_exec") is True
    assert manager.precache is False


def test_job_name_template_names_the_scheduler_job(make_app, fake_scheduler: Path, monkeypatch) -> None:  # noqa: F811
    """The fake Torque (test/fakes/bin) runs the script it is given; the name is its #PBS -N line."""
    monkeypatch.setenv("FAKE_PBS_FLAVOR", "torque")
    app = make_app(job_name_template="galaxy_$job_id", managers={
        "c": {"type": "queued_cli", "job_plugin": "Torque", "poll_interval": 0.1}})
    service = app.service("c")
    doc = run(service, "n1", "true")
    assert doc["returncode"] == 0
    script = (Path(service.settings.staging_root) / "n1" / "command.sh").read_text()
    assert "#PBS -N galaxy_n1" in script.splitlines()


@pytest.mark.parametrize("prefix", ["preprocess_action_", "postprocess_action_"])
def test_staging_retry_options_shape_the_retry_policy(make_app, prefix: str) -> None:
    """All four retry keys, set under a manager, are the policy of that manager's staging
    (test/messaging/test_delivery.py shows the retries happening against a failing Galaxy)."""
    app = make_app(managers={"m": {"type": "queued_python", f"{prefix}max_retries": 7,
                                   f"{prefix}interval_start": 0.5, f"{prefix}interval_step": 1.5,
                                   f"{prefix}interval_max": 9}})
    service = app.services["m"]
    hook = service._stage_in if prefix.startswith("pre") else service._stage_out
    retry = hook.keywords["retry"]
    assert (retry.max_retries, retry.interval_start, retry.interval_step, retry.interval_max) == (7, 0.5, 1.5, 9.0)


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_uploads(make_app, monkeypatch, fsync: bool) -> None:
    """An upload is fsynced before it is answered unless fsync_uploads is off (the effect of an
    fsync cannot be seen without pulling the power, so the calls are counted)."""
    import io

    app = make_app(fsync_uploads=fsync)
    service = app.only_manager
    service.setup("f1")
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    service.upload("f1", "input", "data.txt", io.BytesIO(b"x" * 1000), 1000)
    assert bool(calls) is fsync


def test_helper_environment_names_what_passes_through_sudo() -> None:
    from pulsar.managers.environment import JobEnvironment
    from pulsar.managers.external_drmaa import ExternalDrmaaManager

    manager = ExternalDrmaaManager("x", {"type": "queued_external_drmaa", "sudo": "sudo -n",
                                         "helper_environment": "SGE_ROOT SITE_VAR"})
    manager.use_environment(JobEnvironment.capture({"SGE_ROOT": "/sge", "SITE_VAR": "v", "DRMAA_LIBRARY_PATH": "/l"}))
    assert manager._sudo("bob") == ["sudo", "-n", "-E", "-u", "bob", "SGE_ROOT=/sge", "SITE_VAR=v"]
