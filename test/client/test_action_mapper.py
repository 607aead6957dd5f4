from __future__ import annotations

import json
from pathlib import Path

import pytest

from pulsar.shared import actions
from pulsar.shared.action_mapper import FileActionMapper, PathRule, parse_path_types
from pulsar.shared.actions import ActionError, FileAction


def mapper(**params: object) -> FileActionMapper:
    return FileActionMapper.from_destination_params(params)


def test_default_action_applies_to_default_types_only() -> None:
    m = mapper(default_file_action="transfer")
    assert m.action("/data/x.dat", "input").action_type == "transfer"
    assert m.action("/data/x.dat", "unstructured").action_type == "none"
    assert mapper().action("/x", "output").action_type == "transfer"


@pytest.mark.parametrize("path_type", ["workdir", "jobdir", "metadata", "output_workdir", "output_metadata",
                                       "output_jobdir"])
def test_none_is_forced_to_copy_where_the_server_directories_differ(path_type: str) -> None:
    assert mapper(default_file_action="none").action("/x", path_type).action_type == "copy"


def test_none_stays_none_for_inputs_and_outputs() -> None:
    m = mapper(default_file_action="none")
    assert m.action("/x", "input").action_type == "none"
    assert m.action("/x", "output").action_type == "none"


def test_unknown_action_is_rejected() -> None:
    with pytest.raises(ActionError):
        mapper(default_file_action="teleport")
    with pytest.raises(ActionError):
        mapper(file_actions={"paths": [{"path": "/a", "action": "teleport"}]})


def test_prefix_glob_regex_and_first_match_wins() -> None:
    m = mapper(file_actions={"paths": [
        {"path": "/data/shared", "action": "none"},
        {"path": "/scratch/*.bam", "match_type": "glob", "action": "copy"},
        {"path": r"/refs/hg\d+/", "match_type": "regex", "action": "remote_copy"},
        {"path": "/data", "action": "copy"},
    ]})
    assert m.action("/data/shared/a.dat", "input").action_type == "none"
    assert m.action("/data/sharedness/a.dat", "input").action_type == "none"  # plain prefix, no boundary
    assert m.action("/data/other.dat", "input").action_type == "copy"
    assert m.action("/scratch/deep/x.bam", "input").action_type == "copy"  # glob * crosses "/"
    assert m.action("/scratch/x.sam", "input").action_type == "transfer"
    assert m.action("/refs/hg38/genome.fa", "input").action_type == "remote_copy"
    assert m.action("/other/refs/hg38/genome.fa", "input").action_type == "transfer"  # anchored at start


def test_path_types_tokens() -> None:
    assert "unstructured" not in parse_path_types("*defaults*")
    assert "unstructured" in parse_path_types("*any*")
    assert parse_path_types("input, output") == ("input", "output")
    with pytest.raises(ActionError):
        parse_path_types("inputs")
    m = mapper(file_actions={"paths": [{"action": "none", "path_types": "output"}]})  # type-only rule
    assert m.action("/anything", "output").action_type == "none"
    assert m.action("/anything", "input").action_type == "transfer"


def test_unstructured_rule_with_depth() -> None:
    m = mapper(file_actions={"paths": [{"path": "/idx", "path_types": "unstructured", "depth": 2,
                                        "action": "transfer"}]})
    action = m.action("/idx/bwa/human.fa", "unstructured")
    assert (action.action_type, action.depth) == ("transfer", 2)
    pattern = m.unstructured_patterns("/")[0]
    assert pattern.findall("bwa -x '/idx/bwa/human.fa' --other=/idx/seq,x") == ["/idx/bwa/human.fa", "/idx/seq"]


def test_rewrite_action() -> None:
    m = mapper(file_actions={"paths": [{"path": "/galaxy/data", "action": "rewrite",
                                        "source_directory": "/galaxy/data", "destination_directory": "/mnt/data"}]})
    action = m.action("/galaxy/data/d/1.dat", "input")
    assert not action.staging_needed
    assert action.rewritten_path() == "/mnt/data/d/1.dat"
    with pytest.raises(ActionError):
        mapper(file_actions={"paths": [{"path": "/x", "action": "rewrite"}]})


def test_remote_transfer_gets_files_endpoint_url() -> None:
    m = mapper(default_file_action="remote_transfer", files_endpoint="http://g/api/jobs/1/files?job_key=k")
    action = m.action("/galaxy/files/a b.dat", "input")
    assert action.is_remote
    assert action.url == "http://g/api/jobs/1/files?job_key=k&path=%2Fgalaxy%2Ffiles%2Fa+b.dat&file_type=input"
    with pytest.raises(ActionError):
        mapper(default_file_action="remote_transfer").action("/a", "input")


def test_ssh_actions_need_a_key_and_inherit_destination_defaults() -> None:
    m = mapper(default_file_action="remote_rsync_transfer", ssh_key="KEY", ssh_user="u", ssh_host="h", ssh_port=22)
    action = m.action("/a", "input")
    assert (action.ssh_user, action.ssh_host, action.ssh_port, action.ssh_key) == ("u", "h", 22, "KEY")
    assert "ssh_key" not in action.to_dict()
    with pytest.raises(ActionError):
        mapper(default_file_action="remote_scp_transfer").action("/a", "input")


def test_serialisation_round_trip() -> None:
    m = mapper(default_file_action="remote_transfer", files_endpoint="http://g/f?k=1",
               file_actions={"paths": [{"path": "/idx", "path_types": "unstructured", "depth": 2}]})
    data = m.to_dict()
    assert data["default_action"] == "remote_transfer"
    assert data["paths"] == [{"action": "transfer", "path_types": "unstructured", "match_type": "prefix",
                              "depth": 2, "path": "/idx"}]
    again = FileActionMapper.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    assert again.action("/idx/a", "unstructured").depth == 2


def test_config_files(tmp_path: Path) -> None:
    rules = {"paths": [{"path": "/shared", "action": "none"}]}
    json_file = tmp_path / "actions.json"
    json_file.write_text(json.dumps(rules))
    yaml_file = tmp_path / "actions.yml"
    yaml_file.write_text("paths:\n  - path: /shared\n    action: none\n")
    ini_file = tmp_path / "actions.ini"
    ini_file.write_text("[rule1]\npath = /shared\naction = none\n")
    for path in (json_file, yaml_file, ini_file):
        m = mapper(file_action_config=str(path), file_actions={"paths": [{"path": "/shared", "action": "copy"}]})
        assert m.action("/shared/a", "input").action_type == "none", path  # the file wins


def test_action_dict_forms() -> None:
    action = FileAction("remote_transfer", path="/a", object_store_ref={"dataset_id": 1}, url="http://u")
    data = action.to_dict()
    assert data == {"path": "/a", "source": {"path": "/a", "object_store_ref": {"dataset_id": 1}},
                    "action_type": "remote_transfer", "url": "http://u"}
    assert FileAction.from_dict(data) == FileAction("remote_transfer", path="/a", object_store_ref={"dataset_id": 1},
                                                    url="http://u")
    assert FileAction.from_dict({"path": "/old", "action_type": "remote_copy"}).path == "/old"
    assert actions.message_action("hi").to_dict() == {"contents": "hi", "action_type": "message"}
    with pytest.raises(ActionError):
        FileAction.from_dict({"action_type": "nope"})
    assert PathRule.from_dict({"path": "/x", "ssh_user": "__UNSET__"}).ssh_user is None
