"""pulsar.config: precedence of INI / app.yml / environment, validation, error messages."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from pulsar.config import load_config, read_server_section
from pulsar.errors import ConfigurationError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ini(tmp_path: Path, app_lines: str = "", server_lines: str = "") -> Path:
    return write(tmp_path / "server.ini", f"[server:main]\n{server_lines}\n[app:main]\n{app_lines}\n")


def test_embedded_defaults_put_state_under_config_dir(tmp_path: Path) -> None:
    config = load_config(config_dir=tmp_path, environ={})
    assert config["config_dir"] == str(tmp_path)
    assert config["staging_directory"] == str(tmp_path / "files" / "staging")
    assert config["persistence_directory"] == str(tmp_path / "files" / "persisted_data")
    assert "private_token" not in config


def test_ini_app_section_gives_keys_here_and_file(tmp_path: Path) -> None:
    path = ini(tmp_path, "private_token = fromini\nstaging_directory = %(here)s/stage\n")
    config = load_config(ini_path=path, environ={})
    assert config["private_token"] == "fromini"
    assert config["staging_directory"] == str(tmp_path / "stage")
    assert config["here"] == str(tmp_path)
    assert config["__file__"] == str(path)
    assert config["config_dir"] == str(tmp_path)


def test_app_yml_next_to_ini_overrides_ini(tmp_path: Path) -> None:
    path = ini(tmp_path, "private_token = fromini\nassign_ids = uuid\n")
    write(tmp_path / "app.yml", "private_token: fromyaml\n")
    config = load_config(ini_path=path, environ={})
    assert config["private_token"] == "fromyaml"
    assert config["assign_ids"] == "uuid"


def test_app_config_key_is_relative_to_config_dir(tmp_path: Path) -> None:
    path = ini(tmp_path / "etc", "app_config = conf/pulsar.yml\n")
    write(tmp_path / "cfg" / "conf" / "pulsar.yml", "debug: true\n")
    config = load_config(ini_path=path, config_dir=tmp_path / "cfg", environ={})
    assert config["debug"] is True


def test_app_config_falls_back_to_sample(tmp_path: Path) -> None:
    path = ini(tmp_path, "app_config = %(here)s/app.yml\n")
    write(tmp_path / "app.yml.sample", "maximum_stream_size: 10\n")
    assert load_config(ini_path=path, environ={})["maximum_stream_size"] == 10


def test_missing_app_config_names_key_and_file(tmp_path: Path) -> None:
    path = ini(tmp_path, "app_config = %(here)s/nope.yml\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(ini_path=path, environ={})
    assert "app_config" in str(info.value) and str(path) in str(info.value)


def test_explicit_app_config_path(tmp_path: Path) -> None:
    yml = write(tmp_path / "other.yml", "assign_ids: none\n")
    assert load_config(config_dir=tmp_path, app_config_path=yml, environ={})["assign_ids"] == "none"


def test_app_conf_replaces_ini_section(tmp_path: Path) -> None:
    path = ini(tmp_path, "private_token = fromini\n")
    config = load_config(ini_path=path, app_conf={"private_token": "given", "debug": "false"}, environ={})
    assert config["private_token"] == "given"
    assert config["debug"] is False


def test_environment_overrides(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "private_token: fromyaml\nassign_ids: galaxy\n")
    environ = {
        "PULSAR_CONFIG_OVERRIDE_PRIVATE_TOKEN": "fromenv",
        "PULSAR_CONFIG_ASSIGN_IDS": "uuid",  # only fills unset keys: ignored here
        "PULSAR_CONFIG_DEBUG": "yes",  # fills an unset key
    }
    config = load_config(config_dir=tmp_path, environ=environ)
    assert config["private_token"] == "fromenv"
    assert config["assign_ids"] == "galaxy"
    assert config["debug"] is True


def test_pulsar_config_dir_environment(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "maximum_stream_size: 5\n")
    config = load_config(environ={"PULSAR_CONFIG_DIR": str(tmp_path)})
    assert config["config_dir"] == str(tmp_path)
    assert config["maximum_stream_size"] == 5


def test_relative_directories_are_made_absolute_against_config_dir(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "staging_directory: jobs\npersistence_directory: state\ntool_dependency_dir: deps\n")
    config = load_config(config_dir=tmp_path, environ={})
    assert config["staging_directory"] == str(tmp_path / "jobs")
    assert config["persistence_directory"] == str(tmp_path / "state")
    assert config["tool_dependency_dir"] == str(tmp_path / "deps")


def test_persistence_can_be_disabled(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "persistence_directory: __none__\n")
    assert load_config(config_dir=tmp_path, environ={})["persistence_directory"] is None


@pytest.mark.parametrize(
    ("raw", "mode"),
    [('"0777"', 0o777), ("'750'", 0o750), ("0o700", 0o700), ("0755", 0o755)],  # unquoted 0755: YAML octal
)
def test_job_directory_mode(tmp_path: Path, raw: str, mode: int) -> None:
    write(tmp_path / "app.yml", f"job_directory_mode: {raw}\n")
    assert load_config(config_dir=tmp_path, environ={})["job_directory_mode"] == mode


def test_values_from_ini_strings_are_typed(tmp_path: Path) -> None:
    path = ini(tmp_path, "debug = true\nmaximum_stream_size = 2048\njob_directory_mode = 0770\n")
    config = load_config(ini_path=path, environ={})
    assert config["debug"] is True
    assert config["maximum_stream_size"] == 2048
    assert config["job_directory_mode"] == 0o770


def test_managers_mapping(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "managers:\n  _default_: {}\n  cluster:\n    type: queued_drmaa\n")
    managers = load_config(config_dir=tmp_path, environ={})["managers"]
    assert set(managers) == {"_default_", "cluster"}


def test_empty_token_means_no_authentication(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "private_token: ''\n")
    config = load_config(config_dir=tmp_path, environ={})
    assert "private_token" in config and config["private_token"] is None


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("assign_ids: sometimes\n", "assign_ids"),
        ("debug: maybe\n", "debug"),
        ("maximum_stream_size: -1\n", "maximum_stream_size"),
        ("maximum_stream_size: lots\n", "maximum_stream_size"),
        ("job_directory_mode: rwx\n", "job_directory_mode"),
        ('job_directory_mode: "99999"\n', "job_directory_mode"),
        ("managers: [a, b]\n", "managers"),
        ("managers:\n  x:\n    type: teleport\n", "managers"),
        ("manager:\n  type: teleport\n", "manager"),
        ("message_queue_url: localhost\n", "message_queue_url"),
        ("max_request_line: 10\n", "max_request_line"),
        ("staging_directory: ''\n", "staging_directory"),
    ],
)
def test_bad_values_name_key_and_file(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = write(tmp_path / "app.yml", yaml_text)
    with pytest.raises(ConfigurationError) as info:
        load_config(config_dir=tmp_path, environ={})
    message = str(info.value)
    assert key in message
    assert str(path) in message


def test_bad_ini_value_names_ini(tmp_path: Path) -> None:
    path = ini(tmp_path, "assign_ids = sometimes\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(ini_path=path, environ={})
    assert "assign_ids" in str(info.value) and str(path) in str(info.value)


def test_bad_environment_value_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(config_dir=tmp_path, environ={"PULSAR_CONFIG_OVERRIDE_DEBUG": "perhaps"})
    assert "PULSAR_CONFIG_OVERRIDE_DEBUG" in str(info.value) and "debug" in str(info.value)


def test_manager_and_managers_together_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "manager: {}\nmanagers:\n  a: {}\n")
    with pytest.raises(ConfigurationError, match="manager"):
        load_config(config_dir=tmp_path, environ={})


@pytest.mark.parametrize("text", ["- a\n- b\n", "key: [unclosed\n"])
def test_malformed_yaml_names_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "app.yml", text)
    with pytest.raises(ConfigurationError, match=str(path)):
        load_config(config_dir=tmp_path, environ={})


def test_malformed_ini_names_file(tmp_path: Path) -> None:
    path = write(tmp_path / "server.ini", "this is not ini\n")
    with pytest.raises(ConfigurationError, match=str(path)):
        load_config(ini_path=path, environ={})


def test_unknown_key_is_a_warning_not_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "app.yml", "stagng_directory: typo\nmessage_queue_url: amqp://h//\namqp_publish_retry: true\n")
    with caplog.at_level(logging.WARNING, logger="pulsar.config"):
        config = load_config(config_dir=tmp_path, environ={})
    assert config["stagng_directory"] == "typo"
    warnings = " ".join(record.getMessage() for record in caplog.records)
    assert "stagng_directory" in warnings
    assert "amqp_publish_retry" not in warnings


def test_empty_app_yml_is_fine(tmp_path: Path) -> None:
    write(tmp_path / "app.yml", "# nothing set\n")
    assert load_config(config_dir=tmp_path, environ={})["config_dir"] == str(tmp_path)


def test_app_yml_sample_in_repository_loads(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "app.yml.sample"
    config = load_config(config_dir=tmp_path, app_config_path=sample, environ={})
    assert config["staging_directory"].startswith(str(tmp_path))


def test_read_server_section(tmp_path: Path) -> None:
    path = ini(tmp_path, server_lines="host = 0.0.0.0\nport = 9000\nssl_pem = cert.pem\nthreads = 4\n"
                                      "keepalive_timeout = 30\nkeepalive_linger = 0\n")
    assert read_server_section(path) == {
        "host": "0.0.0.0",
        "port": 9000,
        "ssl_pem": str(tmp_path / "cert.pem"),
        "threads": 4,
        "keepalive_timeout": 30.0,
        "keepalive_linger": 0.0,
    }


def test_read_server_section_absent_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "server.ini", "[app:main]\n")
    assert read_server_section(path) == {}


@pytest.mark.parametrize(("line", "key"), [("port = http", "port"), ("port = 70000", "port"), ("threads = 0", "threads"),
                                             ("request_timeout = -1", "request_timeout"),
                                             ("shutdown_timeout = soon", "shutdown_timeout")])
def test_read_server_section_errors(tmp_path: Path, line: str, key: str) -> None:
    path = ini(tmp_path, server_lines=line + "\n")
    with pytest.raises(ConfigurationError) as info:
        read_server_section(path)
    assert key in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("amqp_publish_retry: true\n", "amqp_publish_retry: is set but message_queue_url is not"),
        ("message_queue_publish: false\n", "message_queue_publish: is set but message_queue_url is not"),
        ("message_queue_url: amqp://g:pw@h//\namqp_republish_time: 3\n", "did you mean amqp_ack_republish_time"),
        ("message_queue_url: amqp://g:pw@h//\namqp_heartbeat: often\n", "amqp_heartbeat"),
        ("message_queue_url: amqp://g:pw@h//\nmessage_queue_cleanup: never\n", "message_queue_cleanup: unknown key"),
        ("message_queue_url: https://relay.example.org\n", "pulsar-relay is not supported"),
        ("relay_url: https://relay.example.org\n", "relay_url: pulsar-relay is not supported"),
    ],
)
def test_message_queue_keys_do_something_or_stop_the_start(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "app.yml", text)
    with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
        load_config(config_dir=tmp_path, environ={})
    assert str(path) in str(info.value)
    assert "pw@" not in str(info.value)


def test_message_queue_keys_from_the_environment_name_the_variable(tmp_path: Path) -> None:
    env = {"PULSAR_CONFIG_MESSAGE_QUEUE_URL": "amqp://h//", "PULSAR_CONFIG_AMQP_DURABLE": "maybe"}
    with pytest.raises(ConfigurationError, match="PULSAR_CONFIG_AMQP_DURABLE"):
        load_config(config_dir=tmp_path, environ=env)


@pytest.mark.parametrize("value,expected", [("[a, b]", ["A", "B"]), ("'token secret'", ["TOKEN", "SECRET"]),
                                            ("[]", [])])
def test_withheld_environment_values(tmp_path: Path, value: str, expected: list[str]) -> None:
    write(tmp_path / "app.yml", f"withheld_environment: {value}\n")
    assert load_config(config_dir=tmp_path, environ={})["withheld_environment"] == expected


def test_server_hosts_of_every_server_section(tmp_path: Path) -> None:
    from pulsar.config import server_hosts

    ini = tmp_path / "server.ini"
    write(ini, "[server:main]\nuse = egg:Paste#http\nport = 1\n[server:public]\nhost = %(addr)s\n"
               "[server:gunicorn]\nbind = 0.0.0.0:8000 unix:/tmp/x.sock [::1]:9\n[app:main]\nhost = 0.0.0.0\n")
    assert server_hosts(ini, {"addr": "192.0.2.1"}) == {
        "server:main": "127.0.0.1", "server:public": "192.0.2.1", "server:gunicorn": "127.0.0.1",
        "server:gunicorn bind 0": "0.0.0.0", "server:gunicorn bind 2": "[::1]"}


@pytest.mark.parametrize("host,token,allow,refused", [
    ("0.0.0.0", None, False, True), ("192.0.2.1", None, False, True), ("0.0.0.0", "t", False, False),
    ("0.0.0.0", None, True, False), ("127.0.0.1", None, False, False), ("localhost", None, False, False)])
def test_check_bind(host: str, token: str | None, allow: bool, refused: bool) -> None:
    from pulsar.config import InsecureBind, check_bind

    if refused:
        with pytest.raises(InsecureBind, match=host):
            check_bind(host, token, allow, "say so")
    else:
        check_bind(host, token, allow, "say so")


@pytest.mark.parametrize("key", ["fsync_uploads", "debug", "allow_insecure_bind"])
def test_a_misspelt_boolean_stops_the_start(tmp_path: Path, key: str) -> None:
    """One strict boolean parser (pulsar.util.flags): `ture` is an error naming the key, not false."""
    write(tmp_path / "app.yml", f"{key}: ture\n")
    with pytest.raises(ConfigurationError, match=f"{key}.*expected true or false"):
        load_config(config_dir=tmp_path)


def test_flags_parser() -> None:
    from pulsar.util.flags import parse_bool

    assert [parse_bool(v) for v in (True, 1, "Yes", " on ", "1")] == [True] * 5
    assert [parse_bool(v) for v in (False, 0, "NO", "off", "0")] == [False] * 5
    for bad in ("ture", "", None, 2, "y"):
        with pytest.raises(ValueError, match="expected true or false"):
            parse_bool(bad, "k")
