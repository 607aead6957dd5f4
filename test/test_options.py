"""The options schema (pulsar.options): the sample, README and the loader agree with it; keys of
the reference we do not implement stop the start; unknown keys are warnings with a guess."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from pulsar import options
from pulsar.config import load_config
from pulsar.core import PulsarApp
from pulsar.errors import ConfigurationError
from pulsar.shared.amqp.settings import KNOWN_KEYS as AMQP_KEYS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = (ROOT / "app.yml.sample").read_text(encoding="utf-8")
#: `#key:` at the top level, `#    key:` under a manager (manager names are indented by two).
SAMPLE_TOP = set(re.findall(r"^#([a-z_]+):", SAMPLE, re.MULTILINE))
SAMPLE_MANAGER = set(re.findall(r"^# {4}([a-zA-Z_]+):", SAMPLE, re.MULTILINE))


def documented_names() -> set[str]:
    """Options the sample must show: every one (families, launcher keys and refused keys
    excepted), and each `amqp_*` key."""
    return {o.name for o in options.OPTIONS
            if not o.prefix and not o.refused and o.checked_by != "the launcher"} | set(AMQP_KEYS)


def test_every_key_in_the_sample_is_in_the_schema() -> None:
    for key in SAMPLE_TOP:
        option = options.find(key)
        assert option is not None and not option.refused, key
        assert option.where != options.MANAGER or key in ("name", "type"), f"{key} is a manager option at the top"
    for key in SAMPLE_MANAGER:
        option = options.find(key)
        assert option is not None and option.where != options.APP, key


def test_every_option_is_in_the_sample() -> None:
    assert sorted(documented_names() - SAMPLE_TOP - SAMPLE_MANAGER) == []


def test_every_refused_key_is_named_in_the_sample() -> None:
    refused_section = SAMPLE[SAMPLE.index("this Pulsar refuses"):]
    for option in options.OPTIONS:
        if option.refused:
            assert option.name.rstrip("_") in refused_section, option.name


def test_readme_table_is_the_schema() -> None:
    """README's option table is generated: `python -m pulsar.options --rst`."""
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    begin = readme.index(options.README_BEGIN) + len(options.README_BEGIN)
    table = readme[begin:readme.index(options.README_END)].strip("\n") + "\n"
    assert table == options.rst_table()


def test_the_sample_loads_and_every_option_parses_its_default(tmp_path: Path) -> None:
    load_config(config_dir=tmp_path, app_config_path=ROOT / "app.yml.sample", environ={})
    for option in options.OPTIONS:
        if option.parse is not None and option.default is not None and not isinstance(option.default, str):
            assert option.parse(option.default) == option.default, option.name


def _refused_keys() -> list[str]:
    return [option.name + ("x" if option.prefix else "") for option in options.OPTIONS
            if option.refused and option.where != options.MANAGER]


@pytest.mark.parametrize("key", _refused_keys())
def test_a_reference_key_we_do_not_implement_stops_the_start(tmp_path: Path, key: str) -> None:
    app_yml = tmp_path / "app.yml"
    app_yml.write_text(f"private_token: t\nstaging_directory: files\n{key}: something\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(config_dir=tmp_path, environ={})
    message = str(info.value)
    assert message.startswith(f"{app_yml}: {key}: ") and "not supported" in message and "\n" not in message


def test_a_refused_key_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PULSAR_CONFIG_OVERRIDE_SENTRY_DSN: sentry_dsn: .*not supported"):
        load_config(config_dir=tmp_path, environ={"PULSAR_CONFIG_OVERRIDE_SENTRY_DSN": "https://x"})


def test_environment_values_go_through_the_schema(tmp_path: Path) -> None:
    config = load_config(config_dir=tmp_path, environ={"PULSAR_CONFIG_MAX_JOB_ATTEMPTS": "5",
                                                       "PULSAR_CONFIG_OVERRIDE_DEBUG": "true"})
    assert config["max_job_attempts"] == 5 and config["debug"] is True
    with pytest.raises(ConfigurationError, match="PULSAR_CONFIG_MAX_JOB_ATTEMPTS: max_job_attempts: must be at least 1"):
        load_config(config_dir=tmp_path, environ={"PULSAR_CONFIG_MAX_JOB_ATTEMPTS": "0"})


def test_an_unknown_key_warns_with_the_closest_option(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "app.yml").write_text("maximum_stream_sise: 10\n")
    with caplog.at_level(logging.WARNING, logger="pulsar.config"):
        load_config(config_dir=tmp_path, environ={})
    assert "did you mean 'maximum_stream_size'" in caplog.text


def test_a_manager_option_at_the_top_level_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "app.yml").write_text("num_concurrent_jobs: 4\n")
    with pytest.raises(ConfigurationError, match="num_concurrent_jobs: a manager option"):
        load_config(config_dir=tmp_path, environ={})


def app(tmp_path: Path, **extra: object) -> PulsarApp:
    return PulsarApp(staging_directory=str(tmp_path / "staging"), persistence_directory=str(tmp_path / "state"),
                     private_token="t", job_metrics=[], **extra)


@pytest.mark.parametrize(("manager", "message"), [
    ({"type": "queued_python", "native_specification": "-q x"},
     "manager m: native_specification: applies to manager types queued_drmaa, queued_external_drmaa, not queued_python"),
    ({"type": "queued_python", "min_polling_interval": 1}, "manager m: min_polling_interval: not supported"),
    ({"type": "queued_python", "num_concurrent_jobs": "many"}, "manager m: num_concurrent_jobs: expected an integer"),
    ({"type": "queued_python", "private_token": "x"}, "manager m: private_token: an application option"),
    ({"type": "queued_python", "tmp_dir": False}, "manager m: tmp_dir: false is not a tmp directory"),
])
def test_manager_keys_are_checked_at_start(tmp_path: Path, manager: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        app(tmp_path, managers={"m": manager})


def test_an_unknown_manager_key_warns_with_the_closest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pulsar.config"):
        pulsar = app(tmp_path, managers={"m": {"type": "queued_python", "num_concurent_jobs": 2}})
    pulsar.shutdown()
    assert "manager m (queued_python) key 'num_concurent_jobs'" in caplog.text
    assert "did you mean 'num_concurrent_jobs'" in caplog.text


def test_the_embedded_app_types_galaxy_keyword_strings_once(tmp_path: Path) -> None:
    """Galaxy's embedded runner passes its configuration as keyword arguments, strings included:
    the app parses them through the same schema, and managers inherit the typed values."""
    pulsar = app(tmp_path, debug="true", maximum_stream_size="5", galaxy_virtual_env="/opt/venv",
                 managers={"m": {"type": "queued_python", "max_job_attempts": "2", "env_FOO": "bar"}})
    try:
        settings = pulsar.services["m"].settings
        assert settings.debug is True and settings.maximum_stream_size == 5 and settings.max_job_attempts == 2
        assert settings.script.galaxy_virtual_env == "/opt/venv" and settings.script.env == {"FOO": "bar"}
    finally:
        pulsar.shutdown()
