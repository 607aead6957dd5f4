"""The application object: configuration -> job services (one per manager), token, version.

`PulsarApp(**options)` takes the options of `app.yml` (already merged with server.ini and
the environment by `pulsar.config`), builds every manager and its job service, recovers
unfinished jobs, and starts the back-ends.  It has no HTTP knowledge; `pulsar.web` wraps it.
Galaxy's embedded runners construct it directly with keyword arguments.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pulsar import __version__, protocol
from pulsar.errors import ConfigurationError, NotFound
from pulsar.jobs.authorization import build_user_auth
from pulsar.jobs.dependencies import build_resolver
from pulsar.jobs.file_cache import FileCache
from pulsar.jobs.metrics import build_instrumenter
from pulsar.jobs.script import ScriptOptions
from pulsar.jobs.service import JobService
from pulsar.jobs.settings import ServiceSettings
from pulsar.jobs.ssh_transfer import SshSettings
from pulsar.jobs.store import JobStore
from pulsar.jobs.toolbox import build_tool_policy
from pulsar.managers.environment import JobEnvironment
from pulsar.managers.registry import build_manager
from pulsar.options import app_options, default, manager_options
from pulsar.telemetry import ServerMetrics, build_metrics

if TYPE_CHECKING:
    from pulsar.messaging.bind import MessageQueueBinding

log = logging.getLogger(__name__)

DEFAULT_STAGING_DIRECTORY = "files/staging"
DEFAULT_PERSISTENCE_DIRECTORY = "files/persisted_data"
DEFAULT_MAX_REQUEST_LINE = 1024 * 1024

_SYSTEM_PROPERTY_OPTIONS = (
    "galaxy_home",
    "galaxy_virtual_env",
    "galaxy_config_file",
    "galaxy_dataset_files_path",
    "galaxy_datatypes_config_file",
)


def manager_definitions(options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`managers:` (a map) or `manager:` (one) or the default local queue."""
    managers = options.get("managers")
    single = options.get("manager")
    if managers and single:
        raise ConfigurationError("set either 'managers' or 'manager', not both")
    if managers:
        if not isinstance(managers, Mapping):
            raise ConfigurationError("'managers' must map manager names to their options")
        return {str(name): dict(value or {}) for name, value in managers.items()}
    if single:
        if not isinstance(single, Mapping):
            raise ConfigurationError("'manager' must be a mapping of manager options")
        return {str(single.get("name", protocol.DEFAULT_MANAGER_NAME)): dict(single)}
    return {protocol.DEFAULT_MANAGER_NAME: {"type": "queued_python"}}


def _service_settings(options: Mapping[str, Any], instrumenter: Any = None, resolver: Any = None,
                      access: tuple[Any, Any] = (None, None)) -> ServiceSettings:
    """A manager's job-layer settings from its typed options (`pulsar.options.manager_options`)."""
    staging = Path(os.path.abspath(str(options.get("staging_directory") or DEFAULT_STAGING_DIRECTORY)))
    env = {key[len("env_"):]: str(value) for key, value in options.items() if key.startswith("env_")}
    galaxy_home = options.get("galaxy_home") or os.environ.get("GALAXY_HOME")
    galaxy_virtual_env = options.get("galaxy_virtual_env") or os.environ.get("GALAXY_VIRTUAL_ENV")
    properties = {key: options[key] for key in _SYSTEM_PROPERTY_OPTIONS if options.get(key)}
    if galaxy_home:
        properties["galaxy_home"] = galaxy_home
    if galaxy_virtual_env:
        properties["galaxy_virtual_env"] = galaxy_virtual_env

    def value(key: str) -> Any:
        return options[key] if key in options else default(key)

    return ServiceSettings(
        staging_root=staging,
        assign_ids=value("assign_ids"),
        maximum_stream_size=value("maximum_stream_size"),
        job_directory_mode=options.get("job_directory_mode"),
        debug=value("debug"),
        system_properties=properties,
        script=ScriptOptions(
            env=env,
            galaxy_home=galaxy_home,
            galaxy_virtual_env=galaxy_virtual_env,
            tmp_dir=options.get("tmp_dir"),
            dependency_resolver=resolver,
            instrumenter=instrumenter,
        ),
        job_name_template=value("job_name_template"),
        max_job_attempts=value("max_job_attempts"),
        fsync_uploads=value("fsync_uploads"),
        tool_policy=access[0],
        user_auth=access[1],
    )


def _remote_staging_hooks(name: str, options: Mapping[str, Any], ssh: SshSettings, metrics: ServerMetrics) -> tuple[Any, Any]:
    """Server-side staging bound to the manager's `preprocess_action_*` / `postprocess_action_*`
    retry options, the app's ssh host-key policy and the metrics of bytes moved (imported
    lazily: it pulls in `requests`)."""
    remote_staging = importlib.import_module("pulsar.jobs.remote_staging")
    stage_in = functools.partial(
        remote_staging.stage_in, retry=remote_staging.retry_executor(options, "preprocess_action_"), ssh=ssh,
        transferred=metrics.transfer_observer(name, "in", "remote"),
    )
    stage_out = functools.partial(
        remote_staging.stage_out, retry=remote_staging.retry_executor(options, "postprocess_action_"), ssh=ssh,
        transferred=metrics.transfer_observer(name, "out", "remote"),
    )
    return stage_in, stage_out


class PulsarApp:
    """The server without HTTP.  Construct, then hand to `pulsar.web.wsgi.build_wsgi_app`."""

    def __init__(self, **options: Any):
        # Typed through the options schema (again, when the loader already did: parsing is
        # idempotent; its unknown-key warnings were given then).  Galaxy's embedded runners
        # call this with keyword arguments straight from their configuration.
        options = app_options(options, warn="config_dir" not in options)
        self.options = options
        self.version = __version__
        token = options.get("private_token")
        self.private_token: str | None = str(token) if token not in (None, "") else None
        self.max_request_line = int(options.get("max_request_line") or DEFAULT_MAX_REQUEST_LINE)
        #: `GET /metrics` without the token, for loopback clients (`pulsar.web.app`).
        self.metrics_public = bool(options.get("metrics_public", False))
        self.metrics = build_metrics()
        persistence = options.get("persistence_directory", DEFAULT_PERSISTENCE_DIRECTORY)
        self.persistence_directory = (
            None if persistence in (None, "", "__none__") else Path(os.path.abspath(str(persistence)))
        )
        ssh = SshSettings.from_options(options, self.persistence_directory)  # scp/rsync host keys
        self.services: dict[str, JobService] = {}
        #: The input file cache (`file_cache_dir`), shared by every manager; None: the /cache
        #: routes answer 501.
        self.file_cache: FileCache | None = None
        if options.get("file_cache_dir"):
            self.file_cache = FileCache(Path(os.path.abspath(str(options["file_cache_dir"]))),
                                        options.get("file_cache_max_size"), self._job_holds_inputs)
        #: The environment every job inherits: the server's, minus the token and secret-looking
        #: names (`withheld_environment`); captured once, its withheld names logged once.
        self.job_environment = JobEnvironment.from_options(options)
        self.job_environment.log_withheld()
        #: Message-queue bindings, one per manager, when `message_queue_url` is set.
        self.bindings: list[MessageQueueBinding] = []
        instrumenter = build_instrumenter(options)
        access = (build_tool_policy(options), build_user_auth(options))  # tool allow-list, user_auth
        try:
            for name, definition in manager_definitions(options).items():
                merged = manager_options(name, definition, options)
                stage_in, stage_out = _remote_staging_hooks(name, merged, ssh, self.metrics)
                store_dir = None if self.persistence_directory is None else self.persistence_directory / name
                manager = build_manager(name, merged)
                manager.use_environment(self.job_environment)
                service = JobService(
                    name,
                    manager,
                    JobStore(store_dir),
                    # resolution keys (tool_dependency_dir, conda_*, ...) from the app, a manager's own first
                    _service_settings(merged, instrumenter, build_resolver({**options, **merged}), access),
                    stage_in=stage_in,
                    stage_out=stage_out,
                )
                self.services[name] = service
                self.metrics.add_manager(name)
                service.table.add_observer(self.metrics.observe_jobs(name))
            if options.get("message_queue_url"):
                wiring = importlib.import_module("pulsar.messaging.wiring")  # kombu is an optional extra
                self.bindings = wiring.build_bindings(self.services, options, self.persistence_directory)
            self.metrics.watch(lambda: self.services, lambda: self.bindings)
            for service in self.services.values():  # after the bindings: they hear recovery
                self.metrics.recovered_jobs(service.name, service.start())
            for binding in self.bindings:
                binding.start()
        except BaseException:
            self.shutdown()
            raise

    def _job_holds_inputs(self, manager_name: str, job_id: str) -> bool:
        service = self.services.get(manager_name)
        return service is not None and service.holds_inputs(job_id)

    def service(self, name: str | None) -> JobService:
        key = name or protocol.DEFAULT_MANAGER_NAME
        try:
            return self.services[key]
        except KeyError:
            raise NotFound(f"no manager named {key!r}") from None

    # Names the embedded (in-process) client of Galaxy looks for.
    @property
    def managers(self) -> dict[str, JobService]:
        return self.services

    @property
    def only_manager(self) -> JobService:
        if len(self.services) != 1:
            raise NotFound("more than one manager is configured; name one")
        return next(iter(self.services.values()))

    def wsgi_app(self) -> Any:
        """This app behind its HTTP routes, as a WSGI application: what `pulsar.client` calls
        when Galaxy embeds the server (`pulsar_app=`), so the client need not import `web`."""
        from pulsar.web.wsgi import build_wsgi_app

        return build_wsgi_app(self)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop consuming and publishing first, then the services (jobs keep running).
        `timeout` bounds the wait for each message-queue binding's consumers to finish the
        message in hand (the reference's signature; Galaxy calls it without)."""
        for binding in self.bindings:
            try:
                binding.shutdown(timeout)
            except Exception:
                log.exception("stopping the message-queue binding of manager %s failed", binding.name)
        for service in self.services.values():
            try:
                service.shutdown()
            except Exception:
                log.exception("shutting down manager %s failed", service.name)
