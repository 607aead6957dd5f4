"""pulsar.scripts.config (`pulsar-config`): generated files load, secrets stay private,
nothing is overwritten without --force."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from pulsar.config import load_config, read_server_section
from pulsar.scripts.config import main


def test_writes_a_loadable_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "conf"
    assert main(["--directory", str(target), "--port", "9123", "--host", "0.0.0.0"]) == 0
    assert {p.name for p in target.iterdir()} == {"app.yml", "server.ini", "local_env.sh"}
    assert stat.S_IMODE((target / "app.yml").stat().st_mode) == 0o600
    config = load_config(ini_path=target / "server.ini", environ={})
    assert len(config["private_token"]) >= 32
    assert config["managers"]["_default_"]["type"] == "queued_python"
    assert config["staging_directory"] == str(target / "files" / "staging")
    assert read_server_section(target / "server.ini") == {"host": "0.0.0.0", "port": 9123}
    assert "pulsar -c" in capsys.readouterr().out


def test_each_run_generates_a_new_token(tmp_path: Path) -> None:
    main(["--directory", str(tmp_path / "a")])
    main(["--directory", str(tmp_path / "b")])
    tokens = {yaml.safe_load((tmp_path / d / "app.yml").read_text())["private_token"] for d in "ab"}
    assert len(tokens) == 2


def test_given_token_with_yaml_special_characters(tmp_path: Path) -> None:
    token = "a: b # c 'd\" %(e)s"
    main(["--directory", str(tmp_path), "--private_token", token])
    assert load_config(config_dir=tmp_path, environ={})["private_token"] == token


def test_libdrmaa_path(tmp_path: Path) -> None:
    main(["--directory", str(tmp_path), "--libdrmaa_path", "/opt/drmaa lib/libdrmaa.so"])
    config = load_config(config_dir=tmp_path, environ={})
    assert config["managers"]["_default_"]["type"] == "queued_drmaa"
    assert "export DRMAA_LIBRARY_PATH='/opt/drmaa lib/libdrmaa.so'" in (tmp_path / "local_env.sh").read_text()


def test_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "server.ini").write_text("mine\n")
    assert main(["--directory", str(tmp_path)]) == 1
    assert "server.ini" in capsys.readouterr().err
    assert (tmp_path / "server.ini").read_text() == "mine\n"
    assert not (tmp_path / "app.yml").exists()  # nothing written at all
    assert main(["--directory", str(tmp_path), "--force"]) == 0
    assert "[server:main]" in (tmp_path / "server.ini").read_text()


def test_sample_files_match_generated_shape() -> None:
    root = Path(__file__).resolve().parents[1]
    sample = (root / "server.ini.sample").read_text()
    for line in ("paste.server_runner = pulsar.web.server:server_runner", "paste.app_factory = pulsar.web.wsgi:app_factory",
                 "app_config = %(here)s/app.yml", "port = 8913", "[loggers]"):
        assert line in sample


def test_mq_writes_a_message_queue_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "conf"
    url = "amqps://pulsar:secret@broker.example.org:5671//pulsar"
    assert main(["--directory", str(target), "--mq", "--mq-url", url]) == 0
    config = load_config(ini_path=target / "server.ini", environ={})
    assert config["message_queue_url"] == url
    assert config["amqp_publish_retry"] is True
    out = capsys.readouterr().out
    assert "pulsar -m webless -c" in out
    assert f"jobs_directory: {target / 'files' / 'staging'}" in out


def test_without_mq_no_message_queue_url(tmp_path: Path) -> None:
    main(["--directory", str(tmp_path)])
    assert "message_queue_url" not in yaml.safe_load((tmp_path / "app.yml").read_text())


def test_options_lists_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`pulsar-config --options` prints every option of pulsar.options, refused ones marked."""
    from pulsar import options

    assert main(["--options"]) == 0
    out = capsys.readouterr().out
    for option in options.OPTIONS:
        assert f"\n{option.name}" in "\n" + out, option.name
    assert "job_managers_config (file; app)\n    REFUSED at start: " in out


def test_generated_comments_come_from_the_schema(tmp_path: Path) -> None:
    from pulsar import options

    main(["--directory", str(tmp_path), "--mq"])
    text = (tmp_path / "app.yml").read_text()
    for key in yaml.safe_load(text):
        assert f"# {options.find(key).doc}\n{key}:" in text  # type: ignore[union-attr]
