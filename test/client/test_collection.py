from __future__ import annotations

import json

from pulsar.client import ClientOutputs, PulsarOutputs
from pulsar.shared.collection import PlannedFetch, RemoteListing, plan_output_collection


def plan(outputs: ClientOutputs, **status: object) -> list[PlannedFetch]:
    return plan_output_collection(outputs.to_dict(), PulsarOutputs.from_status_response(status).listing())


def test_full_plan_in_spec_order() -> None:
    outputs = ClientOutputs(
        working_directory="/g/working", metadata_directory="/g/metadata",
        output_files=["/g/out/dataset_1.dat", "/g/out/dataset_2.dat", "/g/out/dataset_3.dat"],
        work_dir_outputs=[("/g/working/result.txt", "/g/out/dataset_2.dat")],
        version_file="/g/out/COMMAND_VERSION",
        dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}],
    )
    galaxy_json = json.dumps({"filename": "found/custom.txt", "extra_files": "more"})
    result = plan(
        outputs,
        working_directory_contents=["result.txt", "galaxy.json", "found/custom.txt", "more/a", "junk.txt",
                                    "primary_1_x_visible_txt"],
        outputs_directory_contents=["dataset_1.dat", "dataset_1_files/sub/e.txt", "COMMAND_VERSION"],
        metadata_directory_contents=["metadata_abc", "tool_stdout", "job_stdout"],
        system_properties={"separator": "/"},
        realized_dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy", "contents": galaxy_json}],
    )
    assert [(p.name, p.output_type, p.local_path) for p in result] == [
        ("result.txt", "output_workdir", "/g/out/dataset_2.dat"),
        ("dataset_1.dat", "output", "/g/out/dataset_1.dat"),
        ("dataset_1_files/sub/e.txt", "output", "/g/out/dataset_1_files/sub/e.txt"),
        ("COMMAND_VERSION", "output", "/g/out/COMMAND_VERSION"),
        ("galaxy.json", "output_workdir", "/g/working/galaxy.json"),
        ("found/custom.txt", "output_workdir", "/g/working/found/custom.txt"),
        ("more/a", "output_workdir", "/g/working/more/a"),
        ("primary_1_x_visible_txt", "output_workdir", "/g/working/primary_1_x_visible_txt"),
        ("metadata_abc", "output_metadata", "/g/metadata/metadata_abc"),
        ("tool_stdout", "output_metadata", "/g/metadata/tool_stdout"),
    ]
    assert result[0].tolerate_missing and not result[1].tolerate_missing


def test_work_dir_output_directory_and_glob() -> None:
    outputs = ClientOutputs(working_directory="/g/w", work_dir_outputs=[("/g/w/outdir", "/g/o/d1"),
                                                                        ("/g/w/*.csv", "/g/o/d2")])
    result = plan(outputs, working_directory_contents=["outdir/a", "outdir/b/c", "table.csv"])
    assert [(p.name, p.local_path) for p in result] == [
        ("outdir/a", "/g/o/d1/a"), ("outdir/b/c", "/g/o/d1/b/c"), ("table.csv", "/g/o/d2")]


def test_legacy_galaxy_json_and_collectors() -> None:
    outputs = ClientOutputs(
        working_directory="/g/w", dynamic_outputs=[],
        dynamic_file_sources=[{"path": "galaxy.json", "type": "legacy_galaxy"}],
        dataset_collector_descriptions=[{"discover_via": "pattern", "pattern": r"(?P<name>.*)\.tsv",
                                         "directory": "tables", "recurse": False, "match_relative_path": False}],
    )
    contents = "\n".join(json.dumps({"filename": n}) for n in ("a.txt", "b.txt"))
    result = plan(outputs, working_directory_contents=["a.txt", "b.txt", "c.txt", "tables/x.tsv", "tables/d/y.tsv"],
                  realized_dynamic_file_sources=[{"path": "galaxy.json", "type": "legacy_galaxy",
                                                  "contents": contents}])
    assert [p.name for p in result] == ["a.txt", "b.txt", "tables/x.tsv"]


def test_windows_separator() -> None:
    outputs = ClientOutputs(working_directory="/g/w", output_files=["/g/o/dataset_1.dat"])
    listing = RemoteListing(output_directory_contents=["dataset_1.dat", "dataset_1_files\\x\\y.txt"], separator="\\")
    result = plan_output_collection(outputs.to_dict(), listing)
    assert [(p.name, p.local_path) for p in result] == [
        ("dataset_1.dat", "/g/o/dataset_1.dat"), ("dataset_1_files\\x\\y.txt", "/g/o/dataset_1_files/x/y.txt")]
