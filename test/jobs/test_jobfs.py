"""pulsar.jobs.jobfs and the JobDirectory methods built on it: what a job can plant in its
directory (symlinks, FIFOs, sockets, devices, swaps) is refused or skipped, never followed,
never waited on."""

from __future__ import annotations

import io
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from pulsar.errors import InvalidArgument, NotFound
from pulsar.jobs import jobfs, status
from pulsar.jobs.directory import JobDirectory
from pulsar.jobs.trash import Trash
from pulsar.protocol import PathType
from pulsar.util.fileio import PartialFile, TruncatedStream, atomic_write_bytes

SECRET = b"outside secret"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret").write_bytes(SECRET)
    return directory


@pytest.fixture
def dir_fd(tmp_path: Path):
    (tmp_path / "d").mkdir()
    fd = os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_only_regular_files_open(tmp_path, dir_fd, outside):
    d = tmp_path / "d"
    (d / "file").write_bytes(b"data")
    os.symlink(outside / "secret", d / "link")
    os.mkfifo(d / "fifo")
    (d / "dir").mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(d / "sock"))
        with jobfs.open_file(dir_fd, "file") as handle:
            assert handle.read() == b"data"
        started = time.monotonic()
        for name, what in (("link", "symbolic link"), ("fifo", "FIFO"), ("sock", "socket")):
            with pytest.raises(jobfs.NotRegularFile, match=what):
                jobfs.open_regular(dir_fd, name)
        assert time.monotonic() - started < 1.0  # the FIFO did not block
        with pytest.raises(NotFound):
            jobfs.open_regular(dir_fd, "dir")
        with pytest.raises(NotFound):
            jobfs.open_regular(dir_fd, "missing")


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device needs root")
def test_devices_are_refused(tmp_path, dir_fd):
    os.mknod(tmp_path / "d" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with pytest.raises(jobfs.NotRegularFile, match="device"):
        jobfs.open_regular(dir_fd, "null")
    assert jobfs.list_regular_files(dir_fd) == []


def test_directories_are_opened_without_following_links(tmp_path, dir_fd, outside):
    os.symlink(outside, tmp_path / "d" / "linked")
    with pytest.raises(jobfs.NotRegularFile, match="symbolic link"):
        jobfs.open_child_dir(dir_fd, "linked")
    with pytest.raises(jobfs.NotRegularFile):
        jobfs.open_subdir(dir_fd, ["linked"], create=True)
    fd = jobfs.open_subdir(dir_fd, ["a", "b"], create=True)
    os.close(fd)
    assert (tmp_path / "d" / "a" / "b").is_dir()


@pytest.mark.parametrize("name", ["x" * 256, "é" * 128, "a/b", "..", ".", "", "a\x00"])
def test_bad_components(name):
    with pytest.raises(InvalidArgument):
        jobfs.check_component(name)


def test_longest_component_is_fine():
    assert jobfs.check_component("x" * 255) == "x" * 255
    assert jobfs.check_component("é" * 127) == "é" * 127


def test_listing_skips_links_special_files_and_temp_files(tmp_path, dir_fd, outside):
    d = tmp_path / "d"
    (d / "sub").mkdir()
    (d / "sub" / "in.txt").write_text("x")
    (d / "top.txt").write_text("x")
    (d / ".hidden").write_text("x")
    (d / ".top.txt.123.4.part").write_text("partial")
    os.symlink(outside, d / "dirlink")
    os.symlink(outside / "secret", d / "filelink")
    os.symlink(d / "top.txt", d / "innerlink")
    os.mkfifo(d / "fifo")
    assert jobfs.list_regular_files(dir_fd, "/") == [".hidden", "top.txt", "sub/in.txt"]
    assert jobfs.list_names(dir_fd) == [".hidden", "sub", "top.txt"]


def test_stale_temp_files_are_removed_only_by_pattern_and_never_through_links(tmp_path, dir_fd, outside):
    d = tmp_path / "d"
    (d / "sub").mkdir()
    for name in (".a.1.2.part", "sub/.b.c.33.0.tmp"):
        (d / name).write_text("stale")
    for name in ("keep.part", ".x.part", "sub/.y.1.tmp", "sub/z.1.2.part"):
        (d / name).write_text("mine")
    (outside / ".s.1.2.part").write_text("outside")
    os.symlink(outside, d / "linked")
    assert jobfs.remove_temp_files(dir_fd, recursive=True) == 2
    assert sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and not p.is_symlink()) == [
        ".x.part", "keep.part", "sub/.y.1.tmp", "sub/z.1.2.part"]
    assert (outside / ".s.1.2.part").exists()


def test_atomic_write_replaces_a_planted_symlink(tmp_path, dir_fd, outside):
    os.symlink(outside / "secret", tmp_path / "d" / "config")
    atomic_write_bytes("config", b"new", dir_fd=dir_fd)
    assert (outside / "secret").read_bytes() == SECRET
    assert not (tmp_path / "d" / "config").is_symlink()
    assert (tmp_path / "d" / "config").read_bytes() == b"new"


def test_partial_file_in_a_directory_fd(tmp_path, dir_fd):
    d = tmp_path / "d"
    with pytest.raises(TruncatedStream):
        with PartialFile("f", dir_fd=dir_fd) as partial:
            partial.receive(io.BytesIO(b"abc"), 10)
    assert os.listdir(d) == []
    with PartialFile("f", dir_fd=dir_fd) as partial:
        partial.receive(io.BytesIO(b"abc"), 3)
        partial.commit()
    assert os.listdir(d) == ["f"] and (d / "f").read_bytes() == b"abc"
    long_name = "n" * 255
    with PartialFile(long_name, dir_fd=dir_fd) as partial:  # its temp name still fits NAME_MAX
        partial.receive(io.BytesIO(b"x"), 1)
        partial.commit()
    assert (d / long_name).read_bytes() == b"x"


def test_uploads_never_write_through_links(job, outside):
    os.symlink(outside / "secret", job.path / "inputs" / "planted")
    os.symlink(outside, job.path / "inputs" / "dirlink")
    path, result = job.receive(PathType.INPUT, "planted", io.BytesIO(b"upload"), 6)
    assert (outside / "secret").read_bytes() == SECRET
    assert path == job.path / "inputs" / "planted" and path.read_bytes() == b"upload" and not path.is_symlink()
    with pytest.raises(InvalidArgument):
        job.receive(PathType.INPUT, "dirlink/secret", io.BytesIO(b"upload"), 6)
    assert (outside / "secret").read_bytes() == SECRET
    (job.path / "inputs").rename(job.path / "inputs.real")
    os.symlink(outside, job.path / "inputs")
    with pytest.raises(InvalidArgument):
        job.receive(PathType.INPUT, "new", io.BytesIO(b"upload"), 6)
    assert not (outside / "new").exists()


def test_streams_and_dynamic_sources_are_read_through_fds_and_capped(job, outside, monkeypatch):
    os.symlink(outside / "secret", job.path / "metadata" / "tool_stdout")
    os.mkfifo(job.path / "tool_stderr")
    (job.working / "galaxy.json").write_text("{}" + " " * 100)
    os.symlink(outside / "secret", job.working / "linked.json")
    (job.path / "return_code").write_text("0\n")
    monkeypatch.setattr(status, "MAX_DYNAMIC_SOURCE_BYTES", 50)
    document = status.terminal_document(
        job, status.Status.COMPLETE, maximum_stream_size=1000, system_properties={},
        dynamic_file_sources=[{"path": "galaxy.json"}, {"path": "linked.json"}, {"path": "../../outside/secret"}],
    )
    assert document["stdout"] == "" and document["stderr"] == ""
    assert document["realized_dynamic_file_sources"] == []  # one too large, one a link, one outside
    monkeypatch.setattr(status, "MAX_DYNAMIC_SOURCE_BYTES", 500)
    document = status.terminal_document(
        job, status.Status.COMPLETE, maximum_stream_size=1000, system_properties={},
        dynamic_file_sources=[{"path": "galaxy.json"}],
    )
    assert document["realized_dynamic_file_sources"][0]["contents"].startswith("{}")


def test_downloads_under_a_swap_race_never_read_outside(job, outside):
    good = b"good bytes " * 100
    (job.working / "good").write_bytes(good)
    target = job.outputs / "out.dat"
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for make in (lambda: os.link(job.working / "good", target), lambda: os.symlink(outside / "secret", target)):
                try:
                    make()
                    time.sleep(0.0002)  # hold the state (and let the reader run)
                    os.unlink(target)
                except OSError:
                    pass

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    seen = set()
    try:
        for _ in range(3000):
            try:
                with job.open_output(PathType.OUTPUT, "out.dat") as handle:
                    data = handle.read()
                assert data == good
                seen.add("file")
            except jobfs.NotRegularFile:
                seen.add("link")
            except NotFound:
                seen.add("missing")
    finally:
        stop.set()
        swapper.join()
    assert "file" in seen and len(seen) >= 2, seen


def test_a_symlinked_job_directory_is_removed_as_a_link(job, tmp_path, outside):
    other = JobDirectory(job.staging_root, "linked")
    os.symlink(outside, other.path)
    assert not other.exists()
    assert other.list_top() == [] and other.list_files("working") == []
    assert other.read_capped(["secret"], 100) == b""
    trash = Trash(job.staging_root, "test")
    trash.discard(other)
    assert not os.path.lexists(other.path)
    assert (outside / "secret").read_bytes() == SECRET


def test_setup_again_replaces_symlinked_directories_without_touching_their_targets(job, outside):
    (job.path / "configs").rmdir()
    os.symlink(outside, job.path / "configs")
    os.mkfifo(job.path / "outputs.fifo")
    (job.path / "outputs").rmdir()
    os.rename(job.path / "outputs.fifo", job.path / "outputs")
    job.create()
    for name in ("configs", "outputs"):
        assert not (job.path / name).is_symlink() and (job.path / name).is_dir()
    assert os.listdir(outside) == ["secret"] and (outside / "secret").read_bytes() == SECRET
    moved = JobDirectory(job.staging_root, "moved")
    os.symlink(outside, moved.path)
    moved.create()
    assert moved.exists() and os.listdir(outside) == ["secret"]


def test_stale_uploads_are_removed_when_the_service_starts(make_app, tmp_path, outside):
    app = make_app()
    service = app.service(None)
    service.setup("s")
    staging = service.settings.staging_root
    (staging / "s" / "inputs" / "deep").mkdir()
    stale = [staging / "s" / "inputs" / ".big.dat.99.0.part", staging / "s" / "inputs" / "deep" / ".x.1.2.part",
             staging / "s" / ".launch_config.5.6.tmp", staging / "s" / "outputs" / ".o.7.8.part"]
    for path in stale:
        path.write_text("partial")
    (staging / "s" / "inputs" / "real.part").write_text("an input")
    os.symlink(outside, staging / "s" / "unstructured")
    (outside / ".u.1.2.part").write_text("outside")
    assert service.remove_stale_temp_files() == 4
    assert not any(path.exists() for path in stale)
    assert (staging / "s" / "inputs" / "real.part").exists()
    assert (outside / ".u.1.2.part").exists()


def test_deep_trees_are_listed_to_a_bound(job):
    deep = job.working
    for _ in range(jobfs.MAX_DEPTH + 20):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "bottom").write_text("x")
    (job.working / "d" / "top").write_text("x")
    assert job.list_files("working", "/") == ["d/top"]
    assert job.remove()


def test_names_of_temp_files_are_refused(job):
    for path_type in (PathType.INPUT, PathType.OUTPUT):
        with pytest.raises(InvalidArgument, match="temp files"):
            job.receive(path_type, "sub/.data.12.3.part", io.BytesIO(b"x"), 1)
    with pytest.raises(InvalidArgument, match="temp files"):
        job.open_output(PathType.OUTPUT, ".out.1.2.tmp")


def test_remote_staging_never_goes_through_planted_links(job, outside, tmp_path):
    from pulsar.client import ClientOutputs
    from pulsar.jobs.remote_staging import stage_in, stage_out
    from pulsar.shared.action_mapper import FileActionMapper
    from pulsar.shared.actions import message_action

    os.symlink(outside / "secret", job.path / "configs" / "params.json")
    os.symlink(outside, job.path / "inputs" / "dirlink")
    setup = [{"name": "params.json", "type": "config", "action": message_action("staged").to_dict()}]
    stage_in(job, {"setup": setup}, lambda: False)
    assert (outside / "secret").read_bytes() == SECRET
    assert (job.path / "configs" / "params.json").read_text() == "staged"
    with pytest.raises(InvalidArgument):
        stage_in(job, {"setup": [{"name": "dirlink/x", "type": "input", "action": message_action("x").to_dict()}]},
                 lambda: False)
    assert not (outside / "x").exists()
    # an output that is a symlink is not listed, so not sent back; one named explicitly
    # (from_work_dir) fails with the reason; a regular one is sent, from its open fd
    os.symlink(outside / "secret", job.outputs / "dataset_5.dat")
    os.symlink(outside / "secret", job.working / "linked.txt")
    (job.outputs / "dataset_6.dat").write_text("mine")
    back = tmp_path / "galaxy"
    outputs = ClientOutputs(working_directory=str(tmp_path / "w"),
                            output_files=[str(back / "dataset_5.dat"), str(back / "dataset_6.dat")],
                            work_dir_outputs=[(str(tmp_path / "w" / "linked.txt"), str(back / "linked.txt"))])
    mapper = FileActionMapper(default_action="remote_copy")
    failures = stage_out(job, {"action_mapper": mapper.to_dict(), "client_outputs": outputs.to_dict()}, lambda: False)
    assert len(failures) == 1 and "linked.txt" in failures[0] and "symbolic link" in failures[0], failures
    assert not (back / "dataset_5.dat").exists() and not (back / "linked.txt").exists()
    assert (back / "dataset_6.dat").read_text() == "mine"
