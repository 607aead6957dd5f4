"""Every configuration option, once: name, type, default, where it applies, one-line doc.

This table is the single description of Pulsar's options.  The loader (`pulsar.config`)
and the application (`pulsar.core.PulsarApp`, which Galaxy's embedded runners build with
keyword arguments) parse values through it; `app.yml.sample`, README's option table and
`pulsar-config --options` are checked against it or printed from it
(`python -m pulsar.options --rst` regenerates README's table).

Rules, because an admin moving from the reference copies their app.yml:

* a key of the reference that this Pulsar does not implement (`refused`) stops the start
  with one line naming the key and why -- never accepted and ignored;
* an unknown key is a warning naming the closest known option (managers, plugins and
  Galaxy pass keys we cannot foresee, so it is not an error);
* a value of the wrong type stops the start naming the key (`pulsar.config` adds the file).

`where`: `app` (top level only), `manager` (under a manager; `types` lists the manager types
it applies to, empty for all) or `both` (top level as the default of every manager, which may
set its own).  A `prefix` option is a family (`env_<NAME>`).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from pulsar.errors import ConfigurationError
from pulsar.util.flags import parse_bool

APP = "app"
MANAGER = "manager"
BOTH = "both"

ASSIGN_IDS_CHOICES = ("galaxy", "uuid", "none")
MIN_REQUEST_LINE = 8192
PERSISTENCE_DISABLED = "__none__"


@dataclass(frozen=True)
class Option:
    """One option.  `parse` turns a raw value (a string from INI/environment, or a YAML value)
    into its one type or raises ValueError with the reason; None means the value is checked as
    a group where it is used (`checked_by`).  `default` is what applies when unset, as shown
    to admins (None: unset means off / not used)."""

    name: str
    type: str
    doc: str
    section: str
    where: str = BOTH
    default: Any = None
    parse: Callable[[Any], Any] | None = None
    types: tuple[str, ...] = ()
    prefix: bool = False
    refused: str | None = None
    checked_by: str | None = None
    directory: bool = False

    def matches(self, key: str) -> bool:
        return key.startswith(self.name) and len(key) > len(self.name) if self.prefix else key == self.name


# --- value parsers -------------------------------------------------------------------------
# Each is idempotent: a value it already returned parses to itself (PulsarApp parses the
# loader's result again when Galaxy builds it with keyword arguments).


def _as_int(value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        raise ValueError(f"expected an integer, got {value!r}")
    if number < minimum:
        raise ValueError(f"must be at least {minimum}, got {number}")
    return number


def non_negative_int(value: Any) -> int:
    return _as_int(value, 0)


def positive_int(value: Any) -> int:
    return _as_int(value, 1)


def _retries(value: Any) -> int:
    return _as_int(value, -1)


def _request_line_size(value: Any) -> int:
    return _as_int(value, MIN_REQUEST_LINE)


def _number(value: Any, positive: bool) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not (number > 0 if positive else number >= 0) or number != number or number == float("inf"):
        raise ValueError(f"expected a number {'> 0' if positive else '>= 0'}, got {value!r}")
    return number


def non_negative_number(value: Any) -> float:
    return _number(value, positive=False)


def positive_number(value: Any) -> float:
    return _number(value, positive=True)


def file_mode(value: Any) -> int:
    """An octal string ("0777", "775", "0o775") or an int of mode bits (YAML reads an
    unquoted 0777 as octal already)."""
    if isinstance(value, bool):
        raise ValueError(f"expected an octal mode like \"0775\", got {value!r}")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        try:
            mode = int(text, 8)
        except ValueError:
            raise ValueError(f"expected an octal mode like \"0775\", got {value!r}") from None
    else:
        raise ValueError(f"expected an octal mode like \"0775\", got {value!r}")
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {value!r} is outside 0000-7777")
    return mode


_BYTE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_size(value: Any) -> int:
    """A size in bytes: an integer, or a number with K, M, G or T (binary units, optional B/iB)."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]+)\s*([KMGT]?)(?:i?B)?\s*", value, re.IGNORECASE)
        if match is None:
            raise ValueError(f"expected a size such as 500000000, 512M or 10G, got {value!r}")
        value = int(match.group(1)) * _BYTE_UNITS[match.group(2).upper()]
    return _as_int(value, 1)


def non_empty_string(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string, got {value!r}")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _string(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _private_token(value: Any) -> str | None:
    """`None` or an empty string means: explicitly no token (no authentication)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return non_empty_string(value)


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = non_empty_string(value).lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _url(value: Any) -> str:
    text = non_empty_string(value)
    if "://" not in text:
        raise ValueError(f"expected a URL like amqp://user:pass@host:5672//, got {value!r}")
    return text


def _yaml_value(value: Any, strict: bool = False) -> Any:
    """Any YAML value; a string from INI/environment is read as YAML (text that is not YAML
    stays the string, or is a ValueError when `strict`)."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        if strict:
            raise ValueError(f"not valid YAML: {exc}") from None
        return value


def mapping(value: Any) -> dict[str, Any]:
    parsed = _yaml_value(value, strict=True)
    if not isinstance(parsed, Mapping):
        raise ValueError(f"expected a mapping, got {type(parsed).__name__}")
    return dict(parsed)


def _manager(value: Any) -> dict[str, Any]:
    options = mapping(value)
    _check_manager_type(options)
    return options


def _managers(value: Any) -> dict[str, Any]:
    managers = mapping(value)
    for name, options in managers.items():
        if options is None:
            managers[name] = options = {}
        if not isinstance(options, Mapping):
            raise ValueError(f"manager {name!r}: expected a mapping of options, got {type(options).__name__}")
        try:
            _check_manager_type(options)
        except ValueError as exc:
            raise ValueError(f"manager {name!r}: {exc}") from None
    return managers


def _check_manager_type(options: Mapping[str, Any]) -> None:
    from pulsar.managers.registry import MANAGER_TYPES

    type_name = options.get("type", "queued_python")
    if type_name not in MANAGER_TYPES:
        raise ValueError(f"unknown manager type {type_name!r}; expected one of {', '.join(sorted(MANAGER_TYPES))}")


def _withheld_environment(value: Any) -> list[str]:
    from pulsar.managers.environment import withheld_words

    return list(withheld_words(value))


def _job_metrics(value: Any) -> Any:
    """A list of plugin entries (app.yml) or Galaxy's JobMetrics object (embedded);
    pulsar.jobs.metrics checks the plugin names when the app starts."""
    if isinstance(value, str):
        value = _yaml_value(value)
    if isinstance(value, list) or hasattr(value, "default_job_instrumenter"):
        return value
    raise ValueError("expected a list of job-metrics plugins such as [{type: core}, {type: cpuinfo}]")


def _concurrency(value: Any) -> int | str:
    if value == "*":
        return "*"
    return positive_int(value)


def _tmp_dir(value: Any) -> bool | str:
    """true (a fresh tmp/ per job, the default) or a shell expression for the tmp directory."""
    if isinstance(value, bool):
        if not value:
            raise ValueError("false is not a tmp directory; leave tmp_dir unset for the per-job tmp/")
        return True
    text = non_empty_string(value)
    if text.lower() == "true":
        return True
    if text.lower() == "false":
        raise ValueError("false is not a tmp directory; leave tmp_dir unset for the per-job tmp/")
    return text


def _string_list(value: Any) -> list[str]:
    """A YAML list of strings, or one comma-separated string (the reference's form)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [str(item) for item in value]
    raise ValueError(f"expected a list of strings or a comma-separated string, got {value!r}")


# --- the table -----------------------------------------------------------------------------

_S_AUTH = "Authentication"
_S_WHERE = "Where things live"
_S_JOBS = "Jobs"
_S_POLICY = "Who may run what"
_S_METRICS = "Job metrics"
_S_DEPS = "Tool dependency resolution"
_S_MANAGERS = "Managers"
_S_MQ = "Message queue"
_S_FRAMEWORK = "Set by the launchers"
_S_REFUSED = "Reference options this Pulsar refuses"

_NO_RELAY = "pulsar-relay is not supported by this Pulsar; use message_queue_url with an AMQP broker"
_NO_OBJECT_STORE = "the object-store routes are not supported by this Pulsar (Galaxy 26.1 does not use them)"

OPTIONS: tuple[Option, ...] = (
    # Authentication
    Option("private_token", "string", "Shared secret every request must carry (Galaxy's destination param "
           "private_token); empty: no authentication, loopback only.", _S_AUTH, APP,
           default="generated by `pulsar` into DIR/.pulsar_token", parse=_private_token),
    Option("allow_insecure_bind", "bool", "Serve without a token on a non-loopback address.", _S_AUTH, APP,
           default=False, parse=parse_bool),
    Option("metrics_public", "bool", "GET /metrics without the token, for loopback clients; the launchers "
           "refuse it on a non-loopback bind.", _S_AUTH, APP, default=False, parse=parse_bool),
    # Where things live
    Option("staging_directory", "directory", "Root of the job directories.", _S_WHERE, BOTH,
           default="files/staging", directory=True),
    Option("persistence_directory", "directory", "The server's own state (active jobs, message-queue outbox); "
           "__none__ disables it.", _S_WHERE, APP, default="files/persisted_data", directory=True),
    Option("file_cache_dir", "directory", "Input file cache (the /cache routes): inputs many jobs share are "
           "uploaded once, kept by content sha256, and copied (reflinked where possible) into each job; unset: "
           "the /cache routes answer 501.", _S_WHERE, APP, directory=True),
    Option("file_cache_max_size", "bytes (int, or with K/M/G/T)", "Bound of the input file cache: least recently "
           "used entries no queued or running job holds are evicted; unset: no bound.", _S_WHERE, APP,
           parse=byte_size),
    Option("job_directory_mode", "octal string", "Mode of the directories created for jobs.", _S_WHERE, BOTH,
           parse=file_mode),
    # Jobs
    Option("assign_ids", "galaxy|uuid|none", "Job ids: keep the client's (galaxy) or assign a fresh one.", _S_JOBS,
           BOTH, default="galaxy", parse=_choice(*ASSIGN_IDS_CHOICES)),
    Option("maximum_stream_size", "int >= 0", "Bytes of each of stdout/stderr returned in a job's final status.",
           _S_JOBS, BOTH, default=1048576, parse=non_negative_int),
    Option("debug", "bool", "Keep job directories after clean.", _S_JOBS, BOTH, default=False, parse=parse_bool),
    Option("fsync_uploads", "bool", "fsync every uploaded file before answering.", _S_JOBS, BOTH, default=True,
           parse=parse_bool),
    Option("max_job_attempts", "int >= 1", "Runs of a job killed with the server before it counts as failed.",
           _S_JOBS, BOTH, default=3, parse=positive_int),
    Option("max_request_line", "int >= 8192", "Longest HTTP request line accepted (Galaxy sends command lines "
           "in the URL).", _S_JOBS, APP, default=1024 * 1024, parse=_request_line_size),
    Option("withheld_environment", "list of words", "Server environment variables whose name contains one of "
           "these words are not passed to jobs.", _S_JOBS, APP,
           default="[TOKEN, SECRET, PASSWORD, PASSWD, KEY, CREDENTIAL]", parse=_withheld_environment),
    Option("galaxy_home", "path", "Galaxy installation visible to jobs (also $GALAXY_HOME).", _S_JOBS, BOTH,
           parse=non_empty_string),
    Option("galaxy_virtual_env", "path", "Galaxy's virtualenv, activated in job scripts (also "
           "$GALAXY_VIRTUAL_ENV).", _S_JOBS, BOTH, parse=non_empty_string),
    Option("galaxy_config_file", "path", "Reported to clients in the system properties.", _S_JOBS, BOTH,
           parse=non_empty_string),
    Option("galaxy_dataset_files_path", "path", "Reported to clients in the system properties.", _S_JOBS, BOTH,
           parse=non_empty_string),
    Option("galaxy_datatypes_config_file", "path", "Reported to clients in the system properties.", _S_JOBS, BOTH,
           parse=non_empty_string),
    Option("tmp_dir", "true or shell expression", "Temporary directory of jobs: a fresh tmp/ per job, or this "
           "shell expression.", _S_JOBS, BOTH, default=True, parse=_tmp_dir),
    Option("job_name_template", "string", "Scheduler job name ($job_id substituted).", _S_JOBS, BOTH,
           default="pulsar_$job_id", parse=non_empty_string),
    Option("env_", "string", "env_NAME: VALUE exports NAME=VALUE to every job.", _S_JOBS, BOTH, prefix=True,
           parse=_string),
    # Who may run what
    Option("tool_config_files", "files", "Galaxy tool_conf.xml toolbox files (a list, or comma-separated): only "
           "their tools run, each command line checked by its <command_validator>.", _S_POLICY, APP,
           checked_by="pulsar.jobs.toolbox"),
    Option("tool_config_file", "files", "Alias of tool_config_files.", _S_POLICY, APP,
           checked_by="pulsar.jobs.toolbox"),
    Option("user_auth", "mapping", "Who may run jobs: authentication (allow_all, oidc) and authorization "
           "(allow_all, userlist) plugin lists.", _S_POLICY, APP, parse=mapping, checked_by="pulsar.jobs.authorization"),
    # Job metrics
    Option("job_metrics", "list of plugins", "Galaxy's job-metrics plugins around every job ([] turns metrics "
           "off).", _S_METRICS, APP, default="[{type: core}] when galaxy-job-metrics is installed",
           parse=_job_metrics),
    Option("job_metrics_config_file", "file", "Galaxy's job_metrics_conf.yml/.xml instead of job_metrics.",
           _S_METRICS, APP, parse=non_empty_string),
    # Dependencies
    Option("tool_dependency_dir", "directory", "Base directory of Galaxy's dependency resolvers; resolution is "
           "off unless set.", _S_DEPS, BOTH, directory=True),
    Option("dependency_resolvers_config_file", "file", "Galaxy's dependency_resolvers_conf.xml/.yml.", _S_DEPS,
           BOTH, parse=non_empty_string),
    Option("dependency_resolution", "mapping", "Galaxy's dependency resolution configuration (resolvers list).",
           _S_DEPS, BOTH, parse=mapping),
    Option("use_cached_dependency_manager", "bool", "Galaxy's cached dependency manager.", _S_DEPS, BOTH,
           default=False, parse=parse_bool),
    Option("tool_dependency_cache_dir", "directory", "Cache of the cached dependency manager.", _S_DEPS, BOTH,
           directory=True),
    Option("precache_dependencies", "bool", "Galaxy's precache_dependencies.", _S_DEPS, BOTH, parse=parse_bool),
    Option("conda_auto_init", "bool", "Install conda when missing.", _S_DEPS, BOTH, default=False,
           parse=parse_bool),
    Option("conda_auto_install", "bool", "Install missing packages with conda.", _S_DEPS, BOTH, default=False,
           parse=parse_bool),
    *(Option(f"conda_{name}", kind, f"Galaxy's conda resolver option {name}.", _S_DEPS, BOTH, parse=parse)
      for name, kind, parse in (
          ("prefix", "path", non_empty_string), ("exec", "path", non_empty_string),
          ("debug", "bool", parse_bool), ("ensure_channels", "string", non_empty_string),
          ("use_local", "bool", parse_bool), ("copy_dependencies", "bool", parse_bool),
          ("condarc_override", "path", non_empty_string), ("use_path_exec", "bool", parse_bool))),
    # Managers
    Option("managers", "mapping", "Job back-ends by name: {NAME: {type: ..., options}}.", _S_MANAGERS, APP,
           default="{_default_: {type: queued_python}}", parse=_managers),
    Option("manager", "mapping", "One job back-end (instead of managers).", _S_MANAGERS, APP, parse=_manager),
    Option("type", "manager type", "queued_python, unqueued, queued_drmaa, queued_external_drmaa, queued_cli, "
           "queued_condor.", _S_MANAGERS, MANAGER, default="queued_python", parse=non_empty_string),
    Option("name", "string", "Name of the single `manager:`.", _S_MANAGERS, MANAGER, default="_default_",
           parse=non_empty_string),
    Option("num_concurrent_jobs", "int >= 1 or *", "Jobs run at once (* = CPU count).", _S_MANAGERS, MANAGER,
           default=1, parse=_concurrency, types=("queued_python",)),
    Option("poll_interval", "seconds", "How often the scheduler is asked about jobs.", _S_MANAGERS, MANAGER,
           default=2.0, parse=positive_number,
           types=("queued_drmaa", "queued_external_drmaa", "queued_cli", "queued_condor")),
    Option("native_specification", "string", "DRMAA native specification (wins over the client's).",
           _S_MANAGERS, MANAGER, parse=_string, types=("queued_drmaa", "queued_external_drmaa")),
    Option("sudo", "command", "How the helpers are run as the job's user.", _S_MANAGERS, MANAGER, default="sudo",
           parse=non_empty_string, types=("queued_external_drmaa",)),
    Option("helper_environment", "words", "Variables passed to the sudo helpers.", _S_MANAGERS, MANAGER,
           parse=_string, types=("queued_external_drmaa",)),
    *(Option(name, "path", f"The {what} helper (default: the installed pulsar-{what}).", _S_MANAGERS, MANAGER,
             parse=non_empty_string, types=("queued_external_drmaa",))
      for name, what in (("drmaa_launch_script", "drmaa-launch"), ("drmaa_kill_script", "drmaa-kill"),
                         ("chown_working_directory_script", "chown-working-directory"))),
    Option("shell_plugin", "name", "How scheduler commands run: LocalShell, SecureShell, ParamikoShell, ...",
           _S_MANAGERS, MANAGER, default="LocalShell", parse=non_empty_string, types=("queued_cli",)),
    Option("job_plugin", "name", "Scheduler: Slurm, Torque, SlurmTorque, OpenPBS, LSF.", _S_MANAGERS, MANAGER,
           default="Slurm", parse=non_empty_string, types=("queued_cli",)),
    Option("shell_", "value", "shell_X: parameter X of the shell plugin (hostname, username, ...).", _S_MANAGERS,
           MANAGER, prefix=True, types=("queued_cli",), checked_by="the shell plugin"),
    Option("job_", "value", "job_X: parameter X of the job plugin.", _S_MANAGERS, MANAGER, prefix=True,
           types=("queued_cli",), checked_by="the job plugin"),
    Option("submit_", "value", "submit_X: line X of the HTCondor submit description.", _S_MANAGERS, MANAGER,
           prefix=True, types=("queued_condor",), parse=_string),
    *(Option(f"{stage}_action_{name}", kind, f"Retries of {what} transfers: {doc}.", _S_MANAGERS, BOTH,
             default=default, parse=parse)
      for stage, what in (("preprocess", "input"), ("postprocess", "output"))
      for name, kind, default, parse, doc in (
          ("max_retries", "int >= -1", -1, _retries, "-1 never retries, 0 retries forever"),
          ("interval_start", "seconds", 2.0, non_negative_number, "first pause"),
          ("interval_step", "seconds", 2.0, non_negative_number, "added to the pause after each retry"),
          ("interval_max", "seconds", 30.0, non_negative_number, "longest pause"))),
    # Message queue
    Option("message_queue_url", "URL", "Broker (amqp://, amqps://): Galaxy's PulsarMQJobRunner sends jobs "
           "through it.", _S_MQ, APP, parse=_url),
    Option("message_queue_consume", "bool", "Consume setup/kill/status messages.", _S_MQ, APP, default=True,
           parse=parse_bool),
    Option("message_queue_publish", "bool", "Publish status updates.", _S_MQ, APP, default=True, parse=parse_bool),
    Option("message_queue_cleanup_job", "always|onsuccess|never", "Job directory removal after the final status "
           "is confirmed.", _S_MQ, APP, default="always", parse=_choice("always", "onsuccess", "never")),
    Option("status_outbox_drain_interval", "seconds", "Longest pause between attempts to publish waiting status "
           "updates.", _S_MQ, APP, default=5.0, parse=positive_number),
    Option("ensure_cleanup", "bool", "Wait for the consumers to finish the message in hand at shutdown (always "
           "done).", _S_MQ, APP, default=False, parse=parse_bool),
    Option("amqp_", "see app.yml.sample", "AMQP settings: key prefix, durability, heartbeat, acks, publish "
           "retry, TLS.", _S_MQ, APP, prefix=True, checked_by="pulsar.shared.amqp.settings"),
    # Set by launchers
    *(Option(name, "string", doc, _S_FRAMEWORK, APP, parse=None, checked_by="the launcher")
      for name, doc in (("config_dir", "Base of relative paths (pulsar -c DIR, $PULSAR_CONFIG_DIR)."),
                        ("app_config", "app.yml path given in server.ini's [app:main]."),
                        ("here", "Directory of server.ini (Paste)."), ("__file__", "Path of server.ini (Paste)."),
                        ("use", "Paste's app entry point."), ("paste.app_factory", "Paste's app factory."))),
    # Refused
    Option("job_managers_config", "file", "Legacy INI file of [manager:NAME] sections.", _S_REFUSED, APP,
           refused="the legacy INI manager file is not supported by this Pulsar; move its sections under "
                   "managers: in app.yml"),
    Option("min_polling_interval", "seconds", "The reference's status sweep period.", _S_REFUSED, BOTH,
           refused="not supported: this Pulsar has no status sweep (managers report changes as they "
                   "happen); a manager's poll_interval sets how often a scheduler is asked"),
    Option("sentry_dsn", "URL", "Error reporting to Sentry.", _S_REFUSED, APP,
           refused="Sentry reporting is not supported by this Pulsar; errors go to the log"),
    Option("sentry_event_level", "level", "Sentry event level.", _S_REFUSED, APP,
           refused="Sentry reporting is not supported by this Pulsar; errors go to the log"),
    Option("object_store_", "various", "Object-store routes.", _S_REFUSED, APP, prefix=True,
           refused=_NO_OBJECT_STORE),
    Option("relay_", "various", "pulsar-relay.", _S_REFUSED, APP, prefix=True, refused=_NO_RELAY),
    *(Option(name, "various", "pulsar-relay / outbox credentials.", _S_REFUSED, APP, refused=_NO_RELAY)
      for name in ("message_queue_username", "message_queue_password", "message_queue_credentials_file",
                   "message_queue_publish_capabilities")),
    Option("drmaa_session_factory_class", "class", "Custom DRMAA session.", _S_REFUSED, MANAGER,
           refused="a custom DRMAA session class is not supported by this Pulsar", types=("queued_drmaa",)),
    Option("production", "bool", "Reference's external DRMAA chown mode.", _S_REFUSED, MANAGER,
           refused="not supported: the chown helper always works by job id inside the staging "
                   "directory",
           types=("queued_external_drmaa",)),
    # scp/rsync file actions
    Option("ssh_host_key_checking", "accept-new|pinned|ignore", "Host keys of the scp/rsync file actions: "
           "accept-new trusts a host's key the first time and refuses a changed one, pinned connects only to "
           "hosts in ssh_known_hosts_file, ignore checks nothing (the reference's behaviour).", _S_JOBS, APP,
           default="accept-new", parse=_choice("accept-new", "pinned", "ignore")),
    Option("ssh_known_hosts_file", "file", "known_hosts file of the scp/rsync file actions: where accept-new "
           "records keys, the list pinned allows.", _S_JOBS, APP,
           default="PERSISTENCE_DIRECTORY/ssh_known_hosts", parse=non_empty_string),
)


def find(key: str) -> Option | None:
    """The option `key` is (exact names first, then prefix families)."""
    for option in OPTIONS:
        if not option.prefix and option.name == key:
            return option
    for option in OPTIONS:
        if option.prefix and option.matches(key):
            return option
    return None


def closest(key: str, names: Iterable[str] | None = None) -> str | None:
    """The known option name most like `key` (for "did you mean ...")."""
    pool = list(names) if names is not None else [o.name for o in OPTIONS if not o.prefix and not o.refused]
    found = difflib.get_close_matches(key, pool, n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_message(key: str, where: str, names: Iterable[str] | None = None) -> str:
    guess = closest(key, names)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return f"unknown {where} key {key!r} is not used by Pulsar{hint}"


def parse_value(option: Option, value: Any, config_dir: str | None) -> Any:
    """`value` in the option's type; raises ValueError with the reason."""
    if option.directory:
        if option.name == "persistence_directory" and (value is None or value == PERSISTENCE_DISABLED):
            return None
        text = non_empty_string(value)
        return os.path.join(config_dir, os.path.expanduser(text)) if config_dir else os.path.abspath(
            os.path.expanduser(text))
    if option.parse is None:
        return value
    return option.parse(value)


def refusal(key: str, option: Option) -> str:
    """One line naming the key and why it is refused (each reason says "not supported")."""
    return f"{key}: {option.refused}"


def app_options(
    values: Mapping[str, Any],
    sources: Mapping[str, str] | None = None,
    *,
    warn: bool = True,
) -> dict[str, Any]:
    """The application options, typed (see the module docstring).  `sources` names where each
    key came from (for error messages); `warn`: log unknown keys (the loader does, so that
    PulsarApp, parsing the loader's result again, does not repeat it).  Relative directories
    are taken against `config_dir` (set by the loader)."""
    import logging

    log = logging.getLogger("pulsar.config")
    sources = sources or {}
    config_dir = str(values["config_dir"]) if values.get("config_dir") else None
    if values.get("manager") is not None and values.get("managers") is not None:
        raise ConfigurationError(f"{sources.get('managers', 'configuration')}: managers: give either `manager` "
                                 "(one manager) or `managers` (several), not both")
    result: dict[str, Any] = {}
    top_level = [o.name for o in OPTIONS if o.where in (APP, BOTH) and not o.prefix and not o.refused]
    for key, value in values.items():
        source = sources.get(key, "configuration")
        option = find(key)
        if option is None and key.startswith("message_queue_"):
            known = sorted(o.name for o in OPTIONS if o.name.startswith("message_queue_") and not o.refused)
            raise ConfigurationError(f"{source}: {key}: unknown key; the message-queue keys are {', '.join(known)}")
        if option is None:
            if warn:
                log.warning("%s (from %s)", unknown_message(key, "configuration", top_level), source)
            result[key] = value
            continue
        if option.refused:
            raise ConfigurationError(f"{source}: {refusal(key, option)}")
        if option.where == MANAGER:
            raise ConfigurationError(f"{source}: {key}: a manager option; set it under managers: NAME: "
                                     "(or manager:)")
        if value is None and key != "private_token":
            continue
        try:
            result[key] = parse_value(option, value, config_dir)
        except ValueError as exc:
            raise ConfigurationError(f"{source}: {key}: {exc}") from None
    _check_message_queue(result, sources)
    return result


def _check_message_queue(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """`amqp_*` and `message_queue_*` keys without `message_queue_url` would do nothing: they
    stop the start, as does an unusable `amqp_*` value (named with the file it came from)."""
    url = values.get("message_queue_url")
    mq_keys = sorted(k for k in values if k.startswith(("amqp_", "message_queue_")))
    if not url:
        if mq_keys:
            key = mq_keys[0]
            raise ConfigurationError(f"{sources.get(key, 'configuration')}: {key}: is set but message_queue_url is "
                                     "not, so it would do nothing")
        return
    try:
        from pulsar.shared.amqp.settings import AmqpConfigError, parse_amqp_options
    except ImportError as exc:
        raise ConfigurationError(f"{sources.get('message_queue_url', 'configuration')}: message_queue_url: needs "
                                 f"kombu ({exc}); install pulsar-app[amqp]") from None
    try:
        parse_amqp_options(str(url), values)
    except AmqpConfigError as exc:
        named = [k for k in mq_keys if k in str(exc)]
        source = sources.get(named[0], "configuration") if named else "configuration"
        raise ConfigurationError(f"{source}: {exc}") from None


#: App-level options whose value every manager inherits unless it sets its own.
INHERITED = tuple(o.name for o in OPTIONS if o.where == BOTH and not o.prefix and not o.refused)


def manager_options(name: str, options: Mapping[str, Any], app: Mapping[str, Any]) -> dict[str, Any]:
    """One manager's options, typed: the app's inherited values (and `env_*`), overlaid by the
    manager's own keys.  Refused keys and keys of another manager type stop the start; unknown
    keys are warned about (by the caller's logger) and kept."""
    import logging

    log = logging.getLogger("pulsar.config")
    type_name = str(options.get("type") or "queued_python")
    merged: dict[str, Any] = {key: app[key] for key in INHERITED if key in app}
    merged.update({key: value for key, value in app.items() if key.startswith("env_")})
    applicable = [o.name for o in OPTIONS if o.where in (BOTH, MANAGER) and not o.prefix and not o.refused
                  and (not o.types or type_name in o.types)]
    for key, value in options.items():
        option = find(key)
        where = f"manager {name}"
        if option is None or option.where == APP:
            if option is not None:
                raise ConfigurationError(f"{where}: {key}: an application option; set it at the top of app.yml")
            log.warning("%s", unknown_message(key, f"{where} ({type_name})", applicable))
            merged[key] = value
            continue
        if option.refused:
            raise ConfigurationError(f"{where}: {refusal(key, option)}")
        if option.types and type_name not in option.types:
            raise ConfigurationError(f"{where}: {key}: applies to manager types {', '.join(option.types)}, "
                                     f"not {type_name}")
        if value is None:
            continue
        try:
            merged[key] = parse_value(option, value, app.get("config_dir"))
        except ValueError as exc:
            raise ConfigurationError(f"{where}: {key}: {exc}") from None
    merged["type"] = type_name
    return merged


def default(name: str) -> Any:
    option = find(name)
    if option is None:
        raise KeyError(name)
    return option.default


# --- documentation -------------------------------------------------------------------------


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rst_table() -> str:
    """README's option table (reStructuredText list-table), generated from OPTIONS."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 28 14 18 40", "",
             "   * - option", "     - where", "     - default", "     - what it does"]
    for option in sorted(OPTIONS, key=lambda o: (o.refused is not None, o.section, o.name)):
        name = f"``{option.name}<X>``" if option.prefix else f"``{option.name}``"
        where = option.where if not option.types else f"manager ({', '.join(option.types)})"
        doc = f"**refused at start**: {option.refused}" if option.refused else option.doc
        lines += [f"   * - {name}", f"     - {where}", f"     - {_shown(option.default)}", f"     - {doc}"]
    return "\n".join(lines) + "\n"


README_BEGIN = ".. options-table-begin"
README_END = ".. options-table-end"


if __name__ == "__main__":  # python -m pulsar.options --rst
    import sys

    sys.stdout.write(rst_table())
