import os

import pytest

from pulsar.errors import InvalidArgument, NotFound
from pulsar.jobs.directory import JobDirectory, parse_path_type, relative_parts
from pulsar.protocol import PathType


@pytest.fixture
def job(tmp_path):
    directory = JobDirectory(tmp_path / "staging", "7")
    (tmp_path / "staging").mkdir()
    directory.create()
    return directory


def test_layout_has_the_standard_siblings(job):
    for name in ("inputs", "working", "outputs", "configs", "tool_files", "metadata"):
        assert (job.path / name).is_dir()
    assert job.layout()["unstructured_files_directory"].endswith("/7/unstructured")


@pytest.mark.parametrize(
    "name,nested,expected",
    [("a/b", True, ["a", "b"]), ("/a//./b", True, ["a", "b"]), ("a/../b", True, ["b"]), ("x/y/z", False, ["z"])],
)
def test_relative_parts(name, nested, expected):
    assert relative_parts(name, nested) == expected


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "", "a\x00b", "a\nb", "x" * 5000])
def test_hostile_names_are_rejected(name):
    with pytest.raises(InvalidArgument):
        relative_parts(name, True)


def test_flat_types_keep_only_the_basename(job):
    assert job.upload_target(PathType.CONFIG, "sub/dir/conf.txt") == job.path / "configs" / "conf.txt"
    assert job.upload_target(PathType.JOBDIR, "tool_script.sh") == job.path / "tool_script.sh"
    assert job.upload_target(PathType.WORKDIR, "a/b.txt") == job.working / "b.txt"


def test_nested_types_create_parents(job):
    target = job.upload_target(PathType.INPUT, "dataset_1_files/sub/extra.txt")
    assert target == job.path / "inputs" / "dataset_1_files" / "sub" / "extra.txt"
    assert target.parent.is_dir()
    assert job.upload_target(PathType.UNSTRUCTURED, "abc/idx/x").parent.is_dir()


def test_symlink_planted_by_a_job_cannot_redirect_writes(job, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, job.path / "inputs" / "escape")
    with pytest.raises(InvalidArgument):
        job.upload_target(PathType.INPUT, "escape/file")
    os.symlink(outside / "secret", job.working / "link")
    with pytest.raises(InvalidArgument):
        job.open_output(PathType.OUTPUT_WORKDIR, "link")


def test_symlinked_type_directory_is_refused(job, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (job.path / "outputs").rmdir()
    os.symlink(outside, job.path / "outputs")
    (outside / "f").write_text("x")
    with pytest.raises(InvalidArgument):
        job.open_output(PathType.OUTPUT, "f")


def test_download_of_missing_file_is_not_found(job):
    with pytest.raises(NotFound):
        job.open_output(PathType.OUTPUT, "nothing.dat")
    (job.outputs / "adir").mkdir()
    with pytest.raises(NotFound):
        job.open_output(PathType.OUTPUT, "adir")  # a directory is not a file
    with pytest.raises(InvalidArgument):
        job.open_output(PathType.OUTPUT, "")


def test_outputs_can_be_uploaded(job):
    assert job.upload_target(PathType.OUTPUT_METADATA, "m/x") == job.metadata / "m" / "x"


def test_lookup_path_for_outputs_creates_nothing(job):
    path = job.lookup_path(PathType.OUTPUT, "deep/er/out.dat")
    assert path == job.outputs / "deep" / "er" / "out.dat"
    assert not (job.outputs / "deep").exists()


def test_lookup_output_workdir_glob(job):
    (job.working / "result_1.txt").write_text("1")
    assert job.lookup_path(PathType.OUTPUT_WORKDIR, "result_*.txt") == job.working / "result_1.txt"
    with pytest.raises(NotFound):
        job.lookup_path(PathType.OUTPUT_WORKDIR, "nothing_*.txt")


def test_listing_is_recursive_and_ignores_links_outside(job, tmp_path):
    (job.working / "a").mkdir()
    (job.working / "a" / "b.txt").write_text("b")
    (job.working / "top.txt").write_text("t")
    (tmp_path / "outside.txt").write_text("o")
    os.symlink(tmp_path / "outside.txt", job.working / "out_link")
    os.symlink(tmp_path, job.working / "dir_link")
    assert sorted(job.list_files("working", "/")) == ["a/b.txt", "top.txt"]


def test_remove_deletes_only_the_job(job, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("k")
    os.symlink(keep, job.working / "link")
    assert job.remove()
    assert keep.read_text() == "k"
    assert not job.path.exists()


def test_unknown_type_is_a_client_error():
    with pytest.raises(InvalidArgument):
        parse_path_type("bogus")
    assert parse_path_type(None, PathType.OUTPUT) is PathType.OUTPUT


@pytest.mark.parametrize("job_id", [".", "..", "a/b", "a\\b", "a\x00", "\x01", "x" * 129, "", ".hidden"])
def test_bad_job_ids(tmp_path, job_id):
    with pytest.raises(InvalidArgument):
        JobDirectory(tmp_path, job_id)
