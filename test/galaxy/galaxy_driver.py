"""Runs Galaxy 26.1.2's own code against our `pulsar` package, inside the Galaxy venv of
test/support/reference.py (`galaxy-app-26.1.2`), our checkout first on PYTHONPATH.

`python -m test.galaxy.galaxy_driver <scenario> [json args]` prints one JSON object: what
Galaxy's code did.  Only what Galaxy needs from its own application is stood in for
(`StubApp`, `StubJobWrapper`: configuration values and the job's bookkeeping); every call
into `pulsar` is made by Galaxy's code, unchanged.  The tests are in test_galaxy_code.py.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import time
from types import SimpleNamespace
from typing import Any, Callable

SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def scenario(function: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    SCENARIOS[function.__name__.replace("_", "-")] = function
    return function


class RecordingHandler(logging.Handler):
    """Galaxy reports many outcomes only in its log (a caught exception, a retry)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += " | " + repr(record.exc_info[1])
        self.records.append(f"{record.levelname} {record.name}: {text}")


LOG = RecordingHandler()
logging.getLogger().addHandler(LOG)
logging.getLogger().setLevel(logging.DEBUG)


def stub_app(**config: Any) -> SimpleNamespace:
    """The attributes of Galaxy's application object that the runners read."""
    defaults = {"redact_email_in_job_name": True, "galaxy_infrastructure_url": "http://galaxy.invalid",
                "data_dir": "/nonexistent", "metadata_strategy": "directory"}
    return SimpleNamespace(config=SimpleNamespace(**{**defaults, **config}), model=SimpleNamespace(context=None))


class StubJobWrapper:
    """A Galaxy job wrapper's bookkeeping: state changes are recorded, nothing is persisted."""

    def __init__(self, job_id: int = 1, state: str = "running", params: dict[str, Any] | None = None,
                 external_id: str | None = None) -> None:
        self.job_id = job_id
        self.app = stub_app()
        self.tool = SimpleNamespace(id="cat1", old_id="cat1", version="1.0.0")
        self.user = None
        self.state = state
        self.changes: list[str] = []
        self.job_destination = SimpleNamespace(params=params or {}, id="test", runner="test")
        self.job = SimpleNamespace(id=job_id, finished=False, destination_params=params or {},
                                   job_runner_external_id=external_id,
                                   get_job_runner_external_id=lambda: external_id)

    def get_id_tag(self) -> str:
        return str(self.job_id)

    def get_state(self) -> str:
        return self.state

    def change_state(self, state: str, **kwargs: Any) -> None:
        self.changes.append(state)

    def check_for_entry_points(self, **kwargs: Any) -> None:
        pass

    def has_limits(self) -> bool:
        return False

    def get_job(self) -> SimpleNamespace:
        return self.job

    def get_destination_configuration(self, key: str, default: Any = None) -> Any:
        return default


def _queued(runner: Any) -> list[str]:
    names: list[str] = []
    while True:
        try:
            method, _ = runner.work_queue.get_nowait()
        except queue.Empty:
            return names
        names.append(method.__name__)


@scenario
def imports(args: dict[str, Any]) -> dict[str, Any]:
    """Import every Galaxy module that imports `pulsar` (they do so at module level)."""
    import galaxy.jobs  # COMMAND_VERSION_FILENAME, unconditionally
    import galaxy.jobs.runners.pulsar as runners_pulsar
    import galaxy.jobs.runners.util.cli.factory as cli_factory
    import galaxy.jobs.runners.util.cli.shell.rsh as rsh
    import galaxy.metadata.set_metadata as set_metadata
    import galaxy.objectstore.pulsar as objectstore_pulsar
    from galaxy.jobs.runners.util.cli import CliInterface
    from galaxy.jobs.runners.util.cli import split_params as galaxy_split_params

    import pulsar
    from pulsar.managers.util.cli import split_params

    sample = {"shell_plugin": "SecureShell", "shell_hostname": "h", "job_plugin": "Slurm", "job_shell_x": "1",
              "shell_job_y": "2", "other": "3"}
    return {
        "split_params_same": split_params(sample) == galaxy_split_params(sample),
        "pulsar_file": pulsar.__file__,
        "pulsar_version": pulsar.__version__,
        "runner_imports": sorted(name for name in vars(runners_pulsar) if getattr(
            getattr(runners_pulsar, name), "__module__", "").startswith("pulsar.")),
        "command_version_filename": galaxy.jobs.COMMAND_VERSION_FILENAME,
        "set_metadata_command_version": getattr(set_metadata, "COMMAND_VERSION_FILENAME", None),
        "rsh_retry_module": rsh.RetryActionExecutor.__module__,
        "cli_shells": sorted(CliInterface().cli_shells),
        "cli_factory_module": cli_factory.CliInterface.__module__,
        "objectstore_client_manager": repr(objectstore_pulsar.ObjectStoreClientManager),
        "errors": [r for r in LOG.records if r.startswith(("ERROR", "WARNING"))],
    }


@scenario
def objectstore(args: dict[str, Any]) -> dict[str, Any]:
    """galaxy.objectstore.pulsar.PulsarObjectStore.__build_pulsar_client: the object store
    Galaxy 26.1 has commented out of its factory; our package has no ObjectStoreClientManager,
    so Galaxy takes its own ImportError branch and refuses with its own message."""
    import xml.etree.ElementTree as ET

    from galaxy.objectstore.pulsar import PulsarObjectStore

    store = PulsarObjectStore.__new__(PulsarObjectStore)
    try:
        store._PulsarObjectStore__build_pulsar_client(ET.fromstring('<object_store url="http://127.0.0.1:1/"/>'))
    except Exception as exc:  # Galaxy raises a bare Exception here
        return {"error": str(exc)}
    return {"error": None}


def _drmaa_runner(runner_class: Any) -> Any:
    runner = runner_class(stub_app(), 1)
    runner.work_queue = queue.Queue()  # the worker threads are not started: what is queued is the result
    runner.watched = []
    return runner


def _template(directory: str, name: str, command: str) -> dict[str, Any]:
    """The job template keys galaxy.jobs.runners.drmaa.DRMAAJobRunner.queue_job passes."""
    import os

    script = os.path.join(directory, f"{name}.sh")
    with open(script, "w") as handle:
        handle.write(f"#!/bin/sh\n{command}\n")
    os.chmod(script, 0o755)
    return {"remoteCommand": script, "jobName": name, "outputPath": f":{directory}/{name}.o",
            "errorPath": f":{directory}/{name}.e", "nativeSpecification": "-q all.q -shell yes"}


def _watch(runner: Any, ajs: Any, timeout: float = 120) -> dict[str, Any]:
    """DRMAAJobRunner.check_watched_items, once a second as its monitor thread does, until the
    job leaves the watch list."""
    from galaxy.jobs.runners.drmaa import DRMAAJobState  # noqa: F401 (type of ajs)

    runner.watched = [ajs]
    seen = []
    deadline = time.monotonic() + timeout
    while runner.watched and time.monotonic() < deadline:
        runner.check_watched_items()
        seen.append(ajs.old_state)
        time.sleep(0.5)
    return {"watched_left": len(runner.watched), "states_seen": sorted({str(s) for s in seen if s}),
            "queued": _queued(runner)}


@scenario
def drmaa_runner(args: dict[str, Any]) -> dict[str, Any]:
    """galaxy.jobs.runners.drmaa.DRMAAJobRunner on the real Grid Engine: __init__
    (DrmaaSessionFactory().get()), run_job with queue_job's template, the monitor's
    check_watched_items/check_watched_item_drmaa until the job is done, again once the job was
    reaped and purged (drmaa.InvalidJobException -> finished OK by default), and stop_job for a
    job already gone and for a running one."""
    from galaxy.jobs.runners.drmaa import DRMAAJobRunner, DRMAAJobState

    runner = _drmaa_runner(DRMAAJobRunner)
    directory = args["directory"]
    result: dict[str, Any] = {}

    done_id = runner.ds.run_job(**_template(directory, "gx_done", "exit 0"))
    wrapper = StubJobWrapper(external_id=done_id)
    ajs = DRMAAJobState(job_wrapper=wrapper, job_destination=wrapper.job_destination, job_id=done_id,
                        files_dir=directory)
    result["done"] = {**_watch(runner, ajs), "changes": wrapper.changes}

    # The job is still known to the session (status did not reap it): reap it as Univa's
    # runner does, then the monitor meets a purged job.
    import drmaa

    info = runner.ds.session.wait(done_id, drmaa.Session.TIMEOUT_NO_WAIT)
    result["wait_exit_status"] = info.exitStatus
    purged = DRMAAJobState(job_wrapper=wrapper, job_destination=wrapper.job_destination, job_id=done_id,
                           files_dir=directory)
    result["purged"] = _watch(runner, purged, timeout=10)
    result["stop_gone"] = _stop(runner, done_id)

    running_id = runner.ds.run_job(**_template(directory, "gx_stop", "sleep 300"))
    deadline = time.monotonic() + 120
    while runner.ds.job_status(running_id) != drmaa.JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.3)
    result["stop_running"] = _stop(runner, running_id)
    while time.monotonic() < deadline:
        try:
            if runner.ds.job_status(running_id) in (drmaa.JobState.DONE, drmaa.JobState.FAILED):
                break
        except drmaa.InvalidJobException:
            break
        time.sleep(0.3)
    else:
        result["stop_running"].append("still alive after stop_job")
    runner.ds.close()  # DRMAAJobRunner.shutdown's call
    result["log"] = [r for r in LOG.records if "galaxy.jobs.runners" in r]
    return result


def _stop(runner: Any, external_id: str) -> list[str]:
    before = len(LOG.records)
    runner.stop_job(StubJobWrapper(external_id=external_id))
    return [r for r in LOG.records[before:] if "galaxy.jobs.runners" in r]


@scenario
def univa_state(args: dict[str, Any]) -> dict[str, Any]:
    """galaxy.jobs.runners.univa.UnivaJobRunner._get_drmaa_state(job_id, ds, waitqacct=True):
    ds.job_status, then ds.session.wait(job_id, TIMEOUT_NO_WAIT) for the exit status of the
    finished job, which works only if job_status did not reap it.  drmaa.Session.wait is
    wrapped to record what it returned, unchanged."""
    import drmaa
    from galaxy.jobs.runners.univa import UnivaJobRunner

    waits: list[dict[str, Any]] = []
    original_wait = drmaa.Session.wait

    def recording_wait(*wait_args: Any, **wait_kwargs: Any) -> Any:  # a static method of drmaa.Session
        info = original_wait(*wait_args, **wait_kwargs)
        waits.append({"exit_status": info.exitStatus, "has_exited": bool(info.hasExited),
                      "resource_keys": sorted(info.resourceUsage)})
        return info

    drmaa.Session.wait = staticmethod(recording_wait)
    runner = _drmaa_runner(UnivaJobRunner)
    job_id = runner.ds.run_job(**_template(args["directory"], "gx_univa", "exit 7"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if runner.ds.job_status(job_id) in (drmaa.JobState.DONE, drmaa.JobState.FAILED):
            break
        time.sleep(0.3)
    extinfo: dict[str, Any] = {}
    try:
        state: Any = runner._get_drmaa_state(job_id, runner.ds, True, extinfo)
    except KeyError as exc:  # a resource-usage name Univa has and Son of Grid Engine lacks
        state = f"KeyError {exc.args[0]}"
    runner.ds.close()
    return {"state": str(state), "waits": waits, "extinfo": {k: str(v) for k, v in extinfo.items()}}


class DatasetPath:
    """The fields of galaxy.model.DatasetPath that get_output_fnames() callers read."""

    def __init__(self, dataset_id: int, path: str) -> None:
        self.dataset_id = dataset_id
        self.real_path = self.false_path = path
        self.false_extra_files_path = path[:-len(".dat")] + "_files"

    def __str__(self) -> str:
        return self.real_path


class LocalPaths:
    """job_wrapper.default_compute_environment(): Galaxy's own paths, no rewriting."""

    def __init__(self, wrapper: GalaxyJob) -> None:
        self.wrapper = wrapper

    def working_directory(self) -> str:
        return self.wrapper.working_directory

    def version_path(self) -> str:
        return self.wrapper.get_version_string_path()

    def input_path_rewrite(self, dataset: Any) -> None:
        return None

    def output_path_rewrite(self, dataset: Any) -> None:
        return None


class Dataset:
    def __init__(self, path: str) -> None:
        self.path = path

    def get_file_name(self) -> str:
        return self.path


class GalaxyJob(StubJobWrapper):
    """A job wrapper for PulsarJobRunner.finish_job / stop_job: its local job directory, one
    declared output, a tool with no discovered outputs; fail() and finish() are recorded."""

    def __init__(self, job_id: int, state: str, params: dict[str, Any], directory: str,
                 external_id: str | None = None) -> None:
        import os

        super().__init__(job_id, state, params, external_id)
        self.working_directory = os.path.join(directory, str(job_id))
        self.tool_working_directory = os.path.join(self.working_directory, "working")
        for sub in ("working", "outputs", "metadata"):
            os.makedirs(os.path.join(self.working_directory, sub), exist_ok=True)
        self.output = os.path.join(directory, f"dataset_{job_id}.dat")
        self.cleanup_job = "onsuccess"
        self.tool = SimpleNamespace(id="cat1", old_id="cat1", version="1.0.0", outputs={}, output_collections={},
                                    output_discover_patterns=[], uses_tool_provided_metadata=False)
        self.job_io = SimpleNamespace(get_output_fnames=lambda: [DatasetPath(job_id, self.output)],
                                      get_output_basenames=lambda: [os.path.basename(self.output)])
        self.job.user = None
        self.job.output_datasets, self.job.output_library_datasets = [], []
        self.job.get_external_output_metadata = lambda: []
        self.job.job_runner_name = "pulsar_rest"
        self.failed: list[str] = []
        self.finished: list[dict[str, Any]] = []

    def default_compute_environment(self) -> LocalPaths:
        return LocalPaths(self)

    def get_version_string_path(self) -> str:
        import os

        return os.path.join(self.working_directory, "outputs", "COMMAND_VERSION")

    def fail(self, message: str, **kwargs: Any) -> None:
        self.failed.append(message)

    def finish(self, stdout: str, stderr: str, exit_code: Any, **kwargs: Any) -> None:
        self.finished.append({"stdout": stdout, "stderr": stderr, "exit_code": exit_code,
                              "job_stdout": kwargs.get("job_stdout")})


ID_SECRET = "contract-test-secret"


@scenario
def encode(args: dict[str, Any]) -> dict[str, Any]:
    """The job_key Galaxy puts into files_endpoint for each job id (a test's fake Galaxy checks it)."""
    from galaxy.security.idencoding import IdEncodingHelper

    helper = IdEncodingHelper(id_secret=ID_SECRET)
    return {str(i): {"encoded": helper.encode_id(i), "job_key": helper.encode_id(i, kind="jobs_files")}
            for i in args["ids"]}


def _rest_runner(args: dict[str, Any]) -> Any:
    from galaxy.jobs.runners.pulsar import PulsarRESTJobRunner
    from galaxy.security.idencoding import IdEncodingHelper

    app = stub_app(galaxy_infrastructure_url="http://127.0.0.1:1/", nginx_upload_job_files_path=None)
    app.security = IdEncodingHelper(id_secret=ID_SECRET)
    runner = PulsarRESTJobRunner(app, 1, **args.get("runner_params", {}))
    runner._init_client_manager()  # start()'s second step: build_client_manager(**Galaxy's kwargs)
    runner.work_queue = queue.Queue()
    return runner


def _submit(client: Any, command: str) -> str:
    """What PulsarJobRunner.queue_job does once Galaxy's job wrapper has built the command:
    setup, Galaxy's version gates, submit_job with a ClientJobDescription (the job wrapper's
    part -- tool, inputs, config files -- is what needs a whole Galaxy)."""
    from galaxy.jobs.runners.pulsar import PulsarJobRunner

    from pulsar.client import ClientJobDescription, ClientOutputs, submit_job

    remote_job_config = client.setup("cat1", "1.0.0", False)
    PulsarJobRunner.check_job_config(remote_job_config, check_features={"remote_metadata": True,
                                                                       "remote_container_handling": False})
    description = ClientJobDescription(command_line=command, client_outputs=ClientOutputs(), env=client.env,
                                       rewrite_paths=False, touch_outputs=[], remote_pulsar_app_config={})
    return submit_job(client, description, remote_job_config)


@scenario
def rest_runner(args: dict[str, Any]) -> dict[str, Any]:
    """galaxy.jobs.runners.pulsar.PulsarRESTJobRunner against our server: _init_client_manager,
    _populate_parameter_defaults, get_client (files/token endpoints, env), check_job_config,
    check_watched_item until the job is finished, finish_job for a job that completed normally
    and for one Galaxy deleted meanwhile (job_completed_normally=False: nothing fetched, remote
    clean-up), stop_job of a running job, url_to_destination, client_manager.shutdown."""
    import os

    from galaxy.jobs import JobDestination
    from galaxy.jobs.runners import AsynchronousJobState

    runner = _rest_runner(args)
    result: dict[str, Any] = {"manager": type(runner.client_manager).__module__}
    for job_id, state in ((101, "ok"), (102, "deleted"), (104, "error")):
        destination = JobDestination(id="pulsar", runner="pulsar_rest",
                                     params={"url": args["url"], "private_token": args["token"],
                                             "remote_metadata": "true"})
        runner._populate_parameter_defaults(destination)
        wrapper = GalaxyJob(job_id, "running", destination.params, args["directory"])
        client = runner.get_client(destination.params, job_id, [])
        command = f"echo out > ../outputs/dataset_{job_id}.dat; echo tool-says-hi > ../metadata/tool_stdout"
        external_id = _submit(client, command)
        job_state = AsynchronousJobState(job_wrapper=wrapper, job_destination=destination, job_id=external_id)
        deadline = time.monotonic() + 60
        while runner.check_watched_item(job_state) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        queued = _queued(runner)
        wrapper.state = state
        runner.finish_job(job_state)
        from galaxy.job_metrics import JobMetrics

        metrics_directory = os.path.join(wrapper.working_directory, "metadata")  # finish_job's job_metrics_directory
        result[state] = {"metrics": JobMetrics().collect_properties("pulsar", job_id, metrics_directory),
                         "external_id": external_id, "queued": queued, "failed": wrapper.failed,
                         "finished": wrapper.finished, "changes": wrapper.changes,
                         "output": open(wrapper.output).read() if os.path.exists(wrapper.output) else None,
                         "status_after": runner.get_client(destination.params, job_id).get_status()}

    destination = JobDestination(id="pulsar", runner="pulsar_rest", params={"url": args["url"],
                                                                          "private_token": args["token"]})
    runner._populate_parameter_defaults(destination)
    client = runner.get_client(destination.params, 103, [])
    external_id = _submit(client, "sleep 300")
    wrapper = GalaxyJob(103, "deleting", destination.params, args["directory"], external_id=external_id)
    runner.stop_job(wrapper)  # the user deleted the running job
    deadline = time.monotonic() + 30
    while client.get_status() != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.2)
    result["stopped_status"] = client.get_status()
    job_state = AsynchronousJobState(job_wrapper=wrapper, job_destination=destination, job_id=external_id)
    result["stopped_watch"] = runner.check_watched_item(job_state)  # cancelled: mark_as_finished
    result["stopped_queued"] = _queued(runner)
    wrapper.state = "deleted"
    runner.finish_job(job_state)
    result["stopped_failed"] = wrapper.failed
    result["stopped_status_after"] = client.get_status()
    result["client_params"] = {k: client.destination_params.get(k) for k in (
        "files_endpoint", "token_endpoint", "default_file_action", "rewrite_parameters", "dependency_resolution")}
    result["url_to_destination"] = runner.url_to_destination("pulsar://secret@http://127.0.0.1:9/").params

    # check_watched_item_state: a server that does not answer raises PulsarClientTransportError,
    # which Galaxy logs and retries next cycle (any other exception would finish the job).
    gone = JobDestination(id="gone", runner="pulsar_rest", params={"url": "http://127.0.0.1:1/"})
    runner._populate_parameter_defaults(gone)
    gone_state = AsynchronousJobState(job_wrapper=GalaxyJob(105, "running", gone.params, args["directory"]),
                                      job_destination=gone, job_id="105")
    result["unreachable_watch_kept"] = runner.check_watched_item(gone_state) is gone_state
    result["unreachable_queued"] = _queued(runner)
    result["unreachable_logged"] = [r for r in LOG.records if "Communication error with Pulsar server" in r]
    LOG.records = [r for r in LOG.records if "Communication error with Pulsar server" not in r]

    # __client_outputs, as finish_job builds it: Galaxy copies DEFAULT_DYNAMIC_COLLECTION_PATTERN
    # and extends it; extended metadata done remotely takes EXTENDED_METADATA_DYNAMIC_COLLECTION_PATTERN.
    outputs = {}
    for strategy, remote in (("directory", "false"), ("extended", "true")):
        params = {**destination.params, "remote_metadata": remote}
        wrapper = GalaxyJob(106, "running", params, args["directory"])
        wrapper.get_destination_configuration = lambda key, default=None, s=strategy: (  # type: ignore[method-assign]
            s if key == "metadata_strategy" else default)
        wrapper.tool.output_discover_patterns = ["extra_(?P<designation>.*)"]
        built = runner._PulsarJobRunner__client_outputs(runner.get_client(params, 106), wrapper,
                                                         {"pulsar_version": "0.15.0"})
        outputs[strategy] = built.to_dict()
    result["client_outputs"] = outputs
    runner.client_manager.shutdown()
    result["errors"] = [r for r in LOG.records if r.startswith("ERROR")]
    return result


@scenario
def mq_runner(args: dict[str, Any]) -> dict[str, Any]:
    """galaxy.jobs.runners.pulsar.PulsarMQJobRunner against our server over the real broker:
    _init_client_manager (amqp_url, manager, persistence_directory), _monitor
    (ensure_has_status_update_callback with Galaxy's __async_update, ensure_has_ack_consumers),
    get_client_from_wrapper, PulsarComputeEnvironment (our PathMapper) for the remote input and
    output paths, Galaxy's __client_outputs, status updates through __async_update until
    mark_as_finished, finish_job, client_manager.shutdown.  The server pulls the input from and
    pushes the output to the test's fake Galaxy files API (remote_transfer)."""
    import os

    from galaxy.jobs import JobDestination
    from galaxy.jobs.handler import JobHandlerQueue
    from galaxy.jobs.runners import AsynchronousJobState
    from galaxy.jobs.runners.pulsar import PulsarComputeEnvironment, PulsarJobRunner, PulsarMQJobRunner
    from galaxy.security.idencoding import IdEncodingHelper

    from pulsar.client import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs, ClientJobDescription, submit_job

    pairs: dict[str, tuple[Any, Any]] = {}

    class Jobs(JobHandlerQueue):  # __async_update asserts the type, then asks for the job
        def __init__(self) -> None:
            pass

        def job_pair_for_id(self, job_id: Any) -> tuple[Any, Any]:
            return pairs[str(job_id)]

    app = stub_app(nginx_upload_job_files_path=None)
    app.model.context = SimpleNamespace(get_transaction=lambda: None)  # check_database_connection
    app.security = IdEncodingHelper(id_secret=ID_SECRET)
    app.job_manager = SimpleNamespace(job_handler=SimpleNamespace(job_queue=Jobs()))
    runner = PulsarMQJobRunner(app, 1, amqp_url=args["amqp_url"], manager=args["manager"],
                               galaxy_url=args["galaxy_url"], persistence_directory=args["persistence"])
    runner._init_client_manager()
    runner.work_queue = queue.Queue()
    runner._monitor()

    job_id = int(args["job_id"])
    destination = JobDestination(id="pulsar_mq", runner="pulsar_mq", params={"jobs_directory": args["jobs_directory"],
                                                                         "remote_metadata": "true"})
    runner._populate_parameter_defaults(destination)
    wrapper = GalaxyJob(job_id, "queued", destination.params, args["directory"])
    wrapper.job_destination = destination
    pairs[str(job_id)] = (wrapper.job, wrapper)
    client = runner.get_client_from_wrapper(wrapper)
    remote_job_config = client.setup("cat1", "1.0.0", False)
    PulsarJobRunner.check_job_config(remote_job_config, check_features={"remote_metadata": True,
                                                                       "remote_container_handling": False})
    compute = PulsarComputeEnvironment(client, wrapper, remote_job_config)
    remote_input = compute.input_path_rewrite(Dataset(args["input"]))
    remote_output = compute.output_path_rewrite(Dataset(wrapper.output))
    command = f"cat {remote_input} > {remote_output}; echo tool-says-hi > ../metadata/tool_stdout"
    client_inputs = ClientInputs([ClientInput(args["input"], CLIENT_INPUT_PATH_TYPES.INPUT_PATH, object_store_ref={
        "dataset_id": 1, "dataset_uuid": "0" * 32, "object_store_id": None})])
    description = ClientJobDescription(
        command_line=command, input_files=None, client_inputs=client_inputs,
        client_outputs=runner._PulsarJobRunner__client_outputs(client, wrapper, remote_job_config),
        working_directory=wrapper.tool_working_directory,
        metadata_directory=os.path.join(wrapper.working_directory, "metadata"), tool=None, config_files=[],
        dependencies_description=None, env=client.env, rewrite_paths=False, arbitrary_files={},
        touch_outputs=compute.output_names(), remote_pulsar_app_config={}, job_directory_files=[], container=None,
        guest_ports=[], tool_directory_required_files=None)
    external_id = submit_job(client, description, remote_job_config)
    wrapper.job.job_runner_external_id = external_id
    wrapper.job.get_job_runner_external_id = lambda: external_id

    deadline = time.monotonic() + 90
    queued: list[str] = []
    while not queued and time.monotonic() < deadline:
        time.sleep(0.2)
        queued = _queued(runner)
    result: dict[str, Any] = {"external_id": external_id, "remote_input": remote_input,
                              "remote_output": remote_output, "queued": queued, "changes": wrapper.changes}
    if queued == ["finish_job"]:
        wrapper.state = "running"
        runner.finish_job(AsynchronousJobState(job_wrapper=wrapper, job_destination=destination, job_id=external_id))
    result.update(failed=wrapper.failed, finished=wrapper.finished,
                  output=open(wrapper.output).read() if os.path.exists(wrapper.output) else None)
    runner.client_manager.shutdown()
    result["errors"] = [r for r in LOG.records if r.startswith("ERROR")]
    return result


@scenario
def embedded_runner(args: dict[str, Any]) -> dict[str, Any]:
    """galaxy.jobs.runners.pulsar.PulsarEmbeddedJobRunner: _init_client_manager builds
    pulsar.core.PulsarApp(**conf) itself (job_metrics = Galaxy's JobMetrics, staging and
    persistence directories under data_dir, galaxy_home) and build_client_manager(pulsar_app=)
    -- the in-process client, default file action `copy` -- then a job through get_client,
    check_watched_item and finish_job, and runner.shutdown's client_manager.shutdown() and
    pulsar_app.shutdown()."""
    import os

    from galaxy.job_metrics import JobMetrics
    from galaxy.jobs import JobDestination
    from galaxy.jobs.runners import AsynchronousJobState
    from galaxy.jobs.runners.pulsar import PulsarEmbeddedJobRunner
    from galaxy.security.idencoding import IdEncodingHelper

    app = stub_app(galaxy_infrastructure_url="http://127.0.0.1:1/", nginx_upload_job_files_path=None,
                   data_dir=args["directory"])
    app.security = IdEncodingHelper(id_secret=ID_SECRET)
    app.job_metrics = JobMetrics()
    runner = PulsarEmbeddedJobRunner(app, 1)
    runner._init_client_manager()
    runner.work_queue = queue.Queue()
    result: dict[str, Any] = {"app": type(runner.pulsar_app).__module__,
                              "staging": sorted(os.listdir(args["directory"]))}
    destination = JobDestination(id="embedded", runner="pulsar_embedded", params={"remote_metadata": "true"})
    runner._populate_parameter_defaults(destination)
    wrapper = GalaxyJob(401, "running", destination.params, os.path.join(args["directory"], "galaxy"))
    client = runner.get_client(destination.params, 401, [])
    command = "echo out > ../outputs/dataset_401.dat; echo tool-says-hi > ../metadata/tool_stdout"
    external_id = _submit(client, command)
    job_state = AsynchronousJobState(job_wrapper=wrapper, job_destination=destination, job_id=external_id)
    deadline = time.monotonic() + 60
    while runner.check_watched_item(job_state) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    result["queued"] = _queued(runner)
    runner.finish_job(job_state)
    result.update(failed=wrapper.failed, finished=wrapper.finished,
                  output=open(wrapper.output).read() if os.path.exists(wrapper.output) else None,
                  default_file_action=client.destination_params.get("default_file_action"))
    runner.client_manager.shutdown()
    runner.pulsar_app.shutdown()
    result["errors"] = [r for r in LOG.records if r.startswith("ERROR")]
    return result


@scenario
def paramiko_shell(args: dict[str, Any]) -> dict[str, Any]:
    """galaxy.jobs.runners.util.cli.shell.rsh.ParamikoShell, built by Galaxy's CliInterface as
    the CLI runner builds its shell: __init__ constructs RetryActionExecutor(max_retries=100,
    interval_max=300), execute() runs the command through its .execute(callable) and reads
    the channel the callable returned."""
    from galaxy.jobs.runners.util.cli import CliInterface

    shell = CliInterface().get_shell_plugin({"plugin": "ParamikoShell", "username": args["username"], **args["sshd"]})
    executor = shell.retry_action_executor
    out = shell.execute("echo hello-from-galaxy; echo err >&2; exit 3")
    return {"executor": f"{type(executor).__module__}.{type(executor).__name__}",
            "stdout": out.stdout, "stderr": out.stderr, "returncode": out.returncode}


def main() -> None:
    """Run one scenario; exit at once afterwards, so a thread Galaxy's code left running (the
    message-queue consumers after a failure, say) cannot keep the process and the test waiting."""
    import os
    import traceback

    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        result = SCENARIOS[sys.argv[1]](args)
        sys.stdout.write("\nRESULT " + json.dumps(result, default=str) + "\n")
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
