from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pulsar.client import CLIENT_INPUT_PATH_TYPES, PathMapper
from pulsar.shared.unstructured import remote_name, unstructured_map

JOB_CONFIG = {
    "job_directory": "/srv/s/7", "working_directory": "/srv/s/7/working", "metadata_directory": "/srv/s/7/metadata",
    "outputs_directory": "/srv/s/7/outputs", "configs_directory": "/srv/s/7/configs",
    "tools_directory": "/srv/s/7/tool_files", "inputs_directory": "/srv/s/7/inputs",
    "unstructured_files_directory": "/srv/s/7/unstructured", "system_properties": {"separator": "/"},
}


class FakeClient:
    def __init__(self, **params: Any):
        self.destination_params = params


def tree(tmp_path: Path) -> Path:
    idx = tmp_path / "idx"
    for rel in ("bwa/human.fa", "bwa/human.fa.fai", "seq/human_full_seqs"):
        (idx / rel).parent.mkdir(parents=True, exist_ok=True)
        (idx / rel).write_text(rel)
    return idx


def test_unstructured_depth(tmp_path: Path) -> None:
    idx = tree(tmp_path)
    fasta = str(idx / "bwa" / "human.fa")
    key2 = hashlib.md5(str(idx).encode()).hexdigest()
    assert remote_name(fasta, 2) == f"{key2}/bwa/human.fa"
    assert sorted(unstructured_map(fasta, 2).values()) == sorted(
        [f"{key2}/bwa/human.fa", f"{key2}/bwa/human.fa.fai", f"{key2}/seq/human_full_seqs"])
    key0 = hashlib.md5(str(idx / "bwa").encode()).hexdigest()
    assert unstructured_map(fasta, 0) == {fasta: f"{key0}/human.fa"}
    assert sorted(unstructured_map(fasta, 1).values()) == [f"{key0}/human.fa", f"{key0}/human.fa.fai"]
    assert sorted(unstructured_map(str(idx / "seq"), 0).values()) == [
        hashlib.md5(str(idx).encode()).hexdigest() + "/seq/human_full_seqs"]


def test_path_mapper_transfer() -> None:
    mapper = PathMapper(FakeClient(default_file_action="transfer"), JOB_CONFIG, "/g/job/working")
    assert mapper.remote_input_path_rewrite("/g/files/dataset_1.dat") == "/srv/s/7/inputs/dataset_1.dat"
    assert mapper.remote_input_path_rewrite("/g/files/_metadata_files/m.dat",
                                            CLIENT_INPUT_PATH_TYPES.INPUT_METADATA_PATH) == "/srv/s/7/inputs/metadata_m.dat"
    assert mapper.remote_input_path_rewrite("/g/files/dataset_1_files/",
                                            CLIENT_INPUT_PATH_TYPES.INPUT_EXTRA_FILES_PATH) == "/srv/s/7/inputs/dataset_1_files"
    assert mapper.remote_output_path_rewrite("/g/files/dataset_2.dat") == "/srv/s/7/outputs/dataset_2.dat"
    assert mapper.remote_output_path_rewrite("/g/job/working/out.txt") == "/srv/s/7/working/out.txt"
    assert mapper.remote_version_path_rewrite("/g/job/outputs/COMMAND_VERSION") == "/srv/s/7/outputs/COMMAND_VERSION"
    assert mapper.check_for_arbitrary_rewrite("/ref/x.loc") == (None, {})  # unstructured defaults to none


def test_path_mapper_none_and_rewrite() -> None:
    client = FakeClient(default_file_action="none", file_actions={"paths": [
        {"path": "/g/files/special", "action": "rewrite", "source_directory": "/g/files",
         "destination_directory": "/mnt/galaxy"}]})
    mapper = PathMapper(client, JOB_CONFIG, "/g/job/working")
    assert mapper.remote_input_path_rewrite("/g/files/dataset_1.dat") is None
    assert mapper.remote_input_path_rewrite("/g/files/special/d.dat") == "/mnt/galaxy/special/d.dat"
    assert mapper.remote_output_path_rewrite("/g/files/dataset_2.dat") is None
    # output_workdir is forced to copy: staged even with "none"
    assert mapper.remote_output_path_rewrite("/g/job/working/o.txt") == "/srv/s/7/working/o.txt"


def test_path_mapper_arbitrary_with_depth(tmp_path: Path) -> None:
    idx = tree(tmp_path)
    client = FakeClient(file_actions={"paths": [{"path": str(idx), "path_types": "unstructured", "depth": 2}]})
    mapper = PathMapper(client, JOB_CONFIG, "/g/job/working")
    remote, mapping = mapper.check_for_arbitrary_rewrite(str(idx / "bwa" / "human.fa"))
    key = hashlib.md5(str(idx).encode()).hexdigest()
    assert remote == f"/srv/s/7/unstructured/{key}/bwa/human.fa"
    assert len(mapping) == 3
