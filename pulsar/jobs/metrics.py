"""Job metrics: Galaxy's own instrumentation plugins around the tool's command.

Galaxy shows a job's runtime, cores, memory and host only if the job script ran its job-metrics
plugins: commands before and after the tool that write `__instrument_<plugin>_*` files into the
job's metadata directory.  Galaxy's Pulsar runner downloads those files with the other metadata
(they match its `__instrument_.*` collection pattern) and parses them with the same plugins, so
we generate the commands with Galaxy's library (`galaxy-job-metrics`, the `metrics` extra)
rather than imitating its file formats.

Options, as in the reference: `job_metrics_config_file` (Galaxy's job_metrics_conf.yml or .xml),
or `job_metrics` -- a list of plugin entries in app.yml (`[{type: core}, {type: cpuinfo}]`; `[]`
turns metrics off), or, when Galaxy embeds the server, its `JobMetrics` object.  Neither given:
Galaxy's default (`core`) when the library is installed, nothing otherwise; the start log says
which.  A configured option without the library stops the start.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Mapping, Protocol

from pulsar.config import existing_file
from pulsar.errors import ConfigurationError

log = logging.getLogger(__name__)

INSTALL_HINT = "install galaxy-job-metrics (pip install 'pulsar-app[metrics]')"


class Instrumenter(Protocol):
    """What Galaxy's `JobInstrumenter` offers and the job script needs."""

    def pre_execute_commands(self, job_directory: str) -> str | None: ...

    def post_execute_commands(self, job_directory: str) -> str | None: ...


def build_instrumenter(options: Mapping[str, Any]) -> Instrumenter | None:
    """The instrumenter every job script of this server uses, or None for no metrics."""
    job_metrics = options.get("job_metrics")
    conf_file = options.get("job_metrics_config_file")
    if job_metrics is not None and hasattr(job_metrics, "default_job_instrumenter"):
        log.info("job metrics: the embedding Galaxy's configuration")
        instrumenter: Instrumenter = job_metrics.default_job_instrumenter
        return instrumenter
    try:
        JobMetrics = _job_metrics_class()
    except ImportError:
        if job_metrics is not None or conf_file:
            key = "job_metrics_config_file" if conf_file else "job_metrics"
            raise ConfigurationError(f"{key}: job metrics need Galaxy's plugins: {INSTALL_HINT}") from None
        log.info("job metrics: off (%s to have Galaxy show runtime and cores)", INSTALL_HINT)
        return None
    if conf_file:
        path = existing_file(options, "job_metrics_config_file")
        log.info("job metrics: plugins of %s", path)
        return _instrumenter(JobMetrics(conf_file=path))
    if job_metrics is not None:
        entries = _plugin_entries(job_metrics)
        if not entries:
            log.info("job metrics: off (job_metrics is empty)")
            return None
        log.info("job metrics: plugins %s", ", ".join(str(entry["type"]) for entry in entries))
        return _instrumenter(JobMetrics(conf_dict=entries))
    log.info("job metrics: core (Galaxy's default; set job_metrics or job_metrics_config_file to choose)")
    return _instrumenter(JobMetrics())


def _plugin_entries(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(entry, dict) and entry.get("type") for entry in value):
        raise ConfigurationError("job_metrics: expected a list of plugins such as [{type: core}, {type: cpuinfo}]")
    known = set(_job_metrics_class()().plugin_classes)
    unknown = sorted({str(entry["type"]) for entry in value} - known)
    if unknown:
        raise ConfigurationError(f"job_metrics: unknown plugin {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return value


def _job_metrics_class() -> Any:
    """Galaxy's JobMetrics (untyped, hence Any), or ImportError without the metrics extra."""
    return importlib.import_module("galaxy.job_metrics").JobMetrics


def _instrumenter(metrics: Any) -> Instrumenter:
    instrumenter: Instrumenter = metrics.default_job_instrumenter
    return instrumenter
