"""`pulsar-check`: run one Galaxy-like job against a Pulsar server and verify every file.

It drives the client exactly as Galaxy's REST runner does (setup, `PathMapper`,
`submit_job`, status polling, `finish_job`) with a job that exercises the whole staging
surface: an input with nested extra files and a metadata file, a reference-data tree
staged with `depth`, tool files including a sub-directory, a job-directory script, a
config file, pre-existing working and metadata files, outputs of all three kinds
(outputs/, working/ incl. `from_work_dir` and `galaxy.json` references, metadata/), a
version file and a non-zero exit code.  The tool script checks its inputs on the server;
this program checks the outputs it gets back.  Exit status 0 means every check passed.

It ends with the time each phase took (setup, staging in, submit, wait, staging out, clean),
so a slow deployment shows where the time goes: the network (staging), the scheduler (wait)
or the server itself (setup, submit, clean).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

from pulsar.client import (
    CLIENT_INPUT_PATH_TYPES,
    ClientInput,
    ClientInputs,
    ClientJobDescription,
    ClientOutputs,
    PathMapper,
    PulsarClientTransportError,
    PulsarOutputs,
    build_client_manager,
    finish_job,
    submit_job,
)
from pulsar.client.galaxy_files import JobFilesServer
from pulsar.client.remote_layout import RemoteLayout
from pulsar.protocol import TERMINAL_STATUSES, PathType
from pulsar.shared import actions

EXIT_CODE = 3
TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)

# The tool run on the server.  It gets one argument, the (remote) path of its JSON
# parameter file, checks everything it was promised, and writes the outputs.
TOOL_SCRIPT = r'''
import json, os, sys
params = json.load(open(sys.argv[1]))
problems = []
def expect(path, contents):
    try:
        actual = open(path).read()
    except OSError as exc:
        problems.append("missing %s (%s)" % (path, exc)); return
    if actual != contents:
        problems.append("%s holds %r, expected %r" % (path, actual, contents))
expect(params["input"], "input dataset contents\n")
expect(os.path.join(params["input_extra"], "nested", "deeper", "extra.txt"), "extra file contents\n")
expect(params["input_metadata"], "input metadata contents\n")
expect(os.path.join(os.path.dirname(sys.argv[0]), "lib", "helper.txt"), "helper in a tool sub-directory\n")
expect("preexisting.txt", "already in the working directory\n")
expect(os.path.join("..", "metadata", "params_meta.json"), "{\"from\": \"metadata dir\"}\n")
index_root = os.path.dirname(os.path.dirname(params["index"]))
expect(params["index"], ">chr1\nACGT\n")
for sub, names in (("bwa", ["human.fa", "human.fa.fai"]), ("seq", ["human_full_seqs"])):
    found = sorted(os.listdir(os.path.join(index_root, sub))) if os.path.isdir(os.path.join(index_root, sub)) else []
    if found != names:
        problems.append("index %s holds %s, expected %s" % (sub, found, names))
seen_tmp = bool(os.environ.get("_GALAXY_JOB_TMP_DIR")) and os.path.isdir(os.environ["_GALAXY_JOB_TMP_DIR"])
seen_home = bool(os.environ.get("_GALAXY_JOB_HOME_DIR")) and os.path.isdir(os.environ["_GALAXY_JOB_HOME_DIR"])
out = open(params["output"], "w")
out.write("marker=%s\nindex=%s\ntmp=%s home=%s\n" % (params["marker"], params["index"], seen_tmp, seen_home))
out.close()
os.makedirs(os.path.join(os.path.dirname(params["output"]), "dataset_1_files", "extra"), exist_ok=True)
open(os.path.join(os.path.dirname(params["output"]), "dataset_1_files", "extra", "report.txt"), "w").write("extra output\n")
open("result.txt", "w").write("from the working directory\n")
open("primary_7_sample_visible_txt", "w").write("discovered by pattern\n")
os.makedirs("discovered", exist_ok=True)
open(os.path.join("discovered", "custom_name.txt"), "w").write("discovered via galaxy.json\n")
os.makedirs("discovered_extra", exist_ok=True)
open(os.path.join("discovered_extra", "part1.txt"), "w").write("extra files via galaxy.json\n")
open("galaxy.json", "w").write(json.dumps({"type": "new_primary_dataset", "filename": "discovered/custom_name.txt",
                                           "extra_files": "discovered_extra"}) + "\n")
open(os.path.join("..", "metadata", "metadata_out_check"), "w").write("metadata output\n")
open(params["version"], "w").write("1.0.1\n")
print("check stdout line")
sys.stderr.write("check stderr line\n")
if problems:
    sys.stderr.write("PROBLEMS:\n" + "\n".join(problems) + "\n")
    sys.exit(9)
sys.exit(__EXIT_CODE__)
'''.replace("__EXIT_CODE__", str(EXIT_CODE))


class _RequiredToolFiles:
    """Galaxy's `tool.required_files` shape: `find_required_files(tool_dir)`."""

    def find_required_files(self, tool_directory: str) -> list[str]:
        return ["check_tool.py", "lib/helper.txt"]


class _Tool:
    def __init__(self, tool_dir: str):
        self.id = "pulsar_check"
        self.version = "1.0.1"
        self.tool_dir = tool_dir


def _write(path: str, contents: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(contents)
    return path


class CheckJob:
    """The local (Galaxy-side) tree of one check job, and its verification."""

    def __init__(self, root: str, default_file_action: str, legacy: bool, python: str):
        self.root = root
        self.legacy = legacy
        self.python = python
        self.default_file_action = default_file_action
        j = self.job_dir = os.path.join(root, "galaxy_job")
        self.working = os.path.join(j, "working")
        self.metadata = os.path.join(j, "metadata")
        self.outputs = os.path.join(j, "outputs")
        for d in (self.working, self.metadata, self.outputs):
            os.makedirs(d)
        files = os.path.join(root, "files")
        self.input = _write(os.path.join(files, "dataset_0.dat"), "input dataset contents\n")
        self.input_extra = os.path.join(files, "dataset_0_files")
        _write(os.path.join(self.input_extra, "nested", "deeper", "extra.txt"), "extra file contents\n")
        self.input_metadata = _write(os.path.join(files, "_metadata_files", "meta_0.dat"), "input metadata contents\n")
        self.tool_dir = os.path.join(root, "tool")
        _write(os.path.join(self.tool_dir, "check_tool.py"), TOOL_SCRIPT)
        _write(os.path.join(self.tool_dir, "lib", "helper.txt"), "helper in a tool sub-directory\n")
        idx = os.path.join(root, "refdata", "idx")
        self.index = _write(os.path.join(idx, "bwa", "human.fa"), ">chr1\nACGT\n")
        _write(os.path.join(idx, "bwa", "human.fa.fai"), "chr1\t4\n")
        _write(os.path.join(idx, "seq", "human_full_seqs"), "ACGT\n")
        self.index_root = idx
        _write(os.path.join(self.working, "preexisting.txt"), "already in the working directory\n")
        _write(os.path.join(self.metadata, "params_meta.json"), "{\"from\": \"metadata dir\"}\n")
        self.output = os.path.join(self.outputs, "dataset_1.dat")
        self.work_dir_output = os.path.join(self.outputs, "dataset_2.dat")
        self.version_file = os.path.join(self.outputs, "COMMAND_VERSION")
        self.action_config = _write(os.path.join(root, "file_actions.json"), json.dumps(
            {"paths": [{"path": idx, "path_types": "unstructured", "depth": 2,
                        "action": default_file_action}]}))
        self.config_file = os.path.join(j, "check_params.json")
        self.tool_script = os.path.join(j, "tool_script.sh")
        self.marker = "params marker 42"

    def destination(self, url: str, token: str | None) -> dict[str, Any]:
        return {"url": url, "private_token": token, "default_file_action": self.default_file_action,
                "file_action_config": self.action_config, "rewrite_parameters": str(not self.legacy).lower()}

    def describe(self, client: Any, job_config: dict[str, Any]) -> tuple[ClientJobDescription, ClientOutputs]:
        """Build the command line and config file the way Galaxy would, then the description."""
        layout = RemoteLayout(job_config)
        arbitrary: dict[str, str] = {}
        if self.legacy:
            paths = {"input": self.input, "input_extra": self.input_extra, "input_metadata": self.input_metadata,
                     "index": self.index, "output": self.output, "version": self.version_file}
            tool_dir, config_path, job_dir = self.tool_dir, self.config_file, self.job_dir
        else:
            mapper = PathMapper(client, job_config, self.working)
            types = CLIENT_INPUT_PATH_TYPES
            index_remote, arbitrary = mapper.check_for_arbitrary_rewrite(self.index)
            paths = {
                "input": mapper.remote_input_path_rewrite(self.input, types.INPUT_PATH) or self.input,
                "input_extra": mapper.remote_input_path_rewrite(self.input_extra, types.INPUT_EXTRA_FILES_PATH)
                or self.input_extra,
                "input_metadata": mapper.remote_input_path_rewrite(self.input_metadata, types.INPUT_METADATA_PATH)
                or self.input_metadata,
                "index": index_remote or self.index,
                "output": mapper.remote_output_path_rewrite(self.output) or self.output,
                "version": mapper.remote_version_path_rewrite(self.version_file) or self.version_file,
            }
            action_mapper = client.action_mapper()
            staged = action_mapper.action(os.path.join(self.tool_dir, "check_tool.py"), PathType.TOOL).staging_needed
            tool_dir = layout.directory(PathType.TOOL) if staged else self.tool_dir
            staged = action_mapper.action(self.config_file, PathType.CONFIG).staging_needed
            config_path = layout.path(PathType.CONFIG, os.path.basename(self.config_file)) if staged else self.config_file
            job_dir = layout.directory(PathType.JOBDIR)
        _write(self.config_file, json.dumps({**paths, "marker": self.marker}, indent=1))
        sep = layout.separator if not self.legacy else os.sep
        _write(self.tool_script, f"{self.python} '{tool_dir}{sep}check_tool.py' '{config_path}'\n")
        command_line = (f"bash '{job_dir}{sep}tool_script.sh' > ../metadata/tool_stdout 2> ../metadata/tool_stderr")
        client_outputs = ClientOutputs(
            working_directory=self.working,
            metadata_directory=self.metadata,
            output_files=[self.output, self.work_dir_output],
            work_dir_outputs=[(os.path.join(self.working, "result.txt"), self.work_dir_output)],
            version_file=self.version_file,
            dynamic_file_sources=[{"path": "galaxy.json", "type": "galaxy"}],
        )
        inputs = ClientInputs([
            ClientInput(self.input, CLIENT_INPUT_PATH_TYPES.INPUT_PATH,
                        object_store_ref={"dataset_id": 1, "dataset_uuid": "0" * 32, "object_store_id": None}),
            ClientInput(self.input_extra, CLIENT_INPUT_PATH_TYPES.INPUT_EXTRA_FILES_PATH),
            ClientInput(self.input_metadata, CLIENT_INPUT_PATH_TYPES.INPUT_METADATA_PATH),
        ])
        description = ClientJobDescription(
            command_line=command_line,
            tool=_Tool(self.tool_dir),
            config_files=[self.config_file],
            client_inputs=inputs,
            client_outputs=client_outputs,
            working_directory=self.working,
            metadata_directory=self.metadata,
            env=client.env,
            arbitrary_files=arbitrary,
            job_directory_files=[self.tool_script],
            tool_directory_required_files=_RequiredToolFiles(),
            rewrite_paths=self.legacy,
            touch_outputs=["dataset_1.dat", "dataset_2.dat"],
        )
        return description, client_outputs

    def verify(self, status: dict[str, Any], job_id: str) -> list[str]:
        problems: list[str] = []

        def expect(path: str, contents: str) -> None:
            try:
                with open(path) as handle:
                    actual = handle.read()
            except OSError:
                problems.append(f"{os.path.relpath(path, self.root)} was not collected")
                return
            if actual != contents:
                problems.append(f"{os.path.relpath(path, self.root)} holds {actual!r}, expected {contents!r}")

        if status.get("status") != "complete":
            problems.append(f"final status is {status.get('status')!r}, expected 'complete'")
        if status.get("returncode") != EXIT_CODE:
            problems.append(f"returncode is {status.get('returncode')!r}, expected {EXIT_CODE}")
        if not str(status.get("stdout", "")).startswith("check stdout line"):
            problems.append(f"tool stdout is {status.get('stdout')!r}")
        if "PROBLEMS" in str(status.get("stderr", "")) or "check stderr line" not in str(status.get("stderr", "")):
            problems.append(f"the tool reported: {status.get('stderr')!r}")
        try:
            with open(self.output) as handle:
                output = handle.read()
        except OSError:
            problems.append("outputs/dataset_1.dat was not collected")
            output = ""
        if output:
            if f"marker={self.marker}\n" not in output:
                problems.append(f"dataset_1.dat lacks the config marker: {output!r}")
            if "tmp=True home=True" not in output:
                problems.append(f"the job did not see its tmp and home directories: {output!r}")
            index_line = next((line for line in output.splitlines() if line.startswith("index=")), "")
            staged = self.default_file_action not in (actions.NONE, actions.REWRITE)
            pattern = re.escape(job_id) + r"[/\\]unstructured[/\\][0-9a-f]{32}[/\\]bwa[/\\]human\.fa$"
            if staged and not re.search(pattern, index_line):
                problems.append(f"the index was not staged as unstructured data: {index_line!r}")
        expect(os.path.join(self.outputs, "dataset_1_files", "extra", "report.txt"), "extra output\n")
        expect(self.work_dir_output, "from the working directory\n")
        expect(os.path.join(self.working, "primary_7_sample_visible_txt"), "discovered by pattern\n")
        expect(os.path.join(self.working, "discovered", "custom_name.txt"), "discovered via galaxy.json\n")
        expect(os.path.join(self.working, "discovered_extra", "part1.txt"), "extra files via galaxy.json\n")
        if not os.path.exists(os.path.join(self.working, "galaxy.json")):
            problems.append("working/galaxy.json was not collected")
        expect(os.path.join(self.metadata, "metadata_out_check"), "metadata output\n")
        if not os.path.exists(os.path.join(self.metadata, "tool_stdout")):
            problems.append("metadata/tool_stdout was not collected")
        expect(self.version_file, "1.0.1\n")
        return problems


PHASES = ("setup", "staging in", "submit", "wait", "staging out", "clean")


class PhaseTimer:
    """Laps of one check run: `start(phase)` ends the running phase and starts the next."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self._current: str | None = None
        self._since = 0.0

    def start(self, phase: str | None) -> None:
        """Start `phase` (None: stop timing)."""
        now = self.clock()
        if self._current is not None:
            self.seconds[self._current] = self.seconds.get(self._current, 0.0) + now - self._since
        self._current, self._since = phase, now

    def before(self, method: Callable[..., Any], phase: str) -> Callable[..., Any]:
        """`method`, starting `phase` when it is called (the client's launch and clean
        calls mark where `submit_job` and `finish_job` move from transfers to the server)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.start(phase)
            return method(*args, **kwargs)

        return timed

    def report(self) -> str:
        """One line: every phase in order, `-` for one that did not run."""
        parts = [f"{phase} {self.seconds[phase]:.2f} s" if phase in self.seconds else f"{phase} -" for phase in PHASES]
        parts += [f"{phase} {seconds:.2f} s" for phase, seconds in self.seconds.items() if phase not in PHASES]
        return "phase timings: " + ", ".join(parts) + f"; total {sum(self.seconds.values()):.2f} s"


def run_check(url: str, private_token: str | None = None, transport: str | None = None,
              default_file_action: str = actions.TRANSFER, job_id: str = "123456", disable_cleanup: bool = False,
              test_errors: bool = False, legacy: bool = False, python: str = "python3", timeout: float = 120.0,
              manager_options: dict[str, Any] | None = None, log: Any = print,
              files_server: JobFilesServer | None = None, destination: dict[str, Any] | None = None) -> list[str]:
    """Run the check; return the list of problems (empty on success).

    For remote_transfer a job-files endpoint is started on 127.0.0.1 unless `files_server`
    (serving a root that contains the check's temp directory) is given.  `destination`
    adds destination params (e.g. `jobs_directory` for client-side setup).  The time of
    each phase goes to `log` as one `phase timings:` line, whether the check passed or not."""
    timer = PhaseTimer()
    root = tempfile.mkdtemp(prefix="pulsar-check-", dir=files_server.httpd.root if files_server else None)
    job = CheckJob(root, default_file_action, legacy, python)
    own_files_server = None
    problems: list[str] = []
    try:
        extra: dict[str, Any] = {"env": []}
        if default_file_action in (actions.REMOTE_TRANSFER, actions.REMOTE_TRANSFER_TUS):
            if files_server is None:
                files_server = own_files_server = JobFilesServer(root).start()
            extra["files_endpoint"] = files_server.files_endpoint
        manager = build_client_manager(transport=transport, **(manager_options or {}))
        client = manager.get_client({**job.destination(url, private_token), **(destination or {})}, job_id, **extra)
        timer.start("setup")
        job_config = client.setup("pulsar_check", "1.0.1")
        timer.start("staging in")
        description, client_outputs = job.describe(client, job_config)
        client.launch = timer.before(client.launch, "submit")
        client.clean = timer.before(client.clean, "clean")
        external_id = submit_job(client, description, job_config)
        timer.start("wait")
        log(f"submitted job {external_id}")
        deadline = time.monotonic() + timeout
        status = "unknown"
        while time.monotonic() < deadline:
            try:
                status = client.get_status()
            except PulsarClientTransportError as exc:  # Galaxy polls again next cycle
                log(f"status poll failed, retrying: {exc}")
                status = "unknown"
            if status in TERMINAL:
                break
            time.sleep(0.5)
        else:
            return [f"job did not finish within {timeout}s (last status {status!r})"]
        full_status = client.full_status()
        if test_errors:  # while the job still exists on the server
            timer.start("error checks")
            problems.extend(_check_errors(client, root, log))
        timer.start("staging out")
        failures = finish_job(
            client=client,
            cleanup_job="never" if disable_cleanup else "always",
            job_completed_normally=full_status.get("status") == "complete",
            client_outputs=client_outputs,
            pulsar_outputs=PulsarOutputs.from_status_response(full_status),
        )
        timer.start(None)
        problems.extend(f"collecting outputs failed: {f}" for f in failures)
        problems.extend(job.verify(full_status, str(external_id)))
        manager.shutdown()
    except Exception as exc:  # report, never a traceback, for a command-line tool
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        timer.start(None)
        log(timer.report())
        if own_files_server is not None:
            own_files_server.stop()
        if disable_cleanup:
            log(f"kept client files in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return problems


def _check_errors(client: Any, root: str, log: Any) -> list[str]:
    """A missing output must raise a transport error and leave no file behind.

    Ours answers 404; the reference server answers 500 for the same request."""
    target = os.path.join(root, "never_written.dat")
    try:
        client.fetch_output(path=target, name="no_such_output.dat", output_type="output")
    except PulsarClientTransportError as exc:
        log(f"expected error for a missing output: {exc}")
        problems = [] if exc.status is not None else [f"missing output gave {exc!r}, expected an HTTP error status"]
        if os.path.exists(target):
            problems.append("a failed download left a file behind")
        return problems
    return ["fetching a non-existent output did not fail"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulsar-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:8913/", help="Pulsar server URL")
    parser.add_argument("--private_token", default=None, help="the server's private_token")
    parser.add_argument("--transport", default=None, choices=["requests", "urllib", "curl"],
                        help="HTTP transport (default: requests if installed)")
    parser.add_argument("--default_file_action", default=actions.TRANSFER,
                        choices=sorted(a for a in actions.KNOWN_ACTIONS if a != actions.REWRITE),
                        help="file action for every path (remote_transfer starts a local job-files endpoint)")
    parser.add_argument("--job_id", default="123456", help="client job id")
    parser.add_argument("--disable_cleanup", action="store_true", help="keep client files and the server's job")
    parser.add_argument("--test_errors", action="store_true", help="also check that a missing output is an error")
    parser.add_argument("--legacy", action="store_true",
                        help="legacy mode: the client rewrites paths in the command line and config files")
    parser.add_argument("--python", default="python3", help="python executable on the server (default python3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the job")
    parser.add_argument("--suppress_output", action="store_true", help="print nothing but failures")
    parser.add_argument("--debug", action="store_true", help="log client activity")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)

    def log(message: str) -> None:
        if not args.suppress_output:
            print(message)

    problems = run_check(
        args.url, args.private_token, args.transport, args.default_file_action, args.job_id,
        args.disable_cleanup, args.test_errors, args.legacy, args.python, args.timeout, log=log,
    )
    if problems:
        print("pulsar-check FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    log("pulsar-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
