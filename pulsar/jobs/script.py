"""The job script, `command.sh`: everything a job needs around the tool's command line.

The script, not the back-end, records the tool's exit code (in `<job>/return_code`,
written atomically), so the code survives the server, a scheduler that forgets finished
jobs, and a restart.  It snapshots `working`, `outputs` and `configs` before the first run
and restores them before every later run, so a job killed together with the server can be
run again from the state it was submitted in.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any, Mapping, Sequence

from pulsar import protocol
from pulsar.jobs.directory import JobDirectory
from pulsar.jobs.submit import SubmitRequest
from pulsar.managers.base import LaunchSpec

SNAPSHOT_DIRECTORIES = (protocol.WORKING_DIR, protocol.OUTPUTS_DIR, protocol.CONFIGS_DIR)
INTEGRITY_CHECK_VARIABLE = "ABC_TEST_JOB_SCRIPT_INTEGRITY_XYZ"


@dataclasses.dataclass(frozen=True)
class ScriptOptions:
    """Manager-level settings that shape every job script."""

    env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # from `env_<NAME>` options
    galaxy_home: str | None = None
    galaxy_virtual_env: str | None = None
    tmp_dir: str | bool | None = None  # None/True: per-job tmp/; a string: shell expression
    #: Galaxy's dependency resolvers (`pulsar.jobs.dependencies`), or None: no resolution.
    dependency_resolver: Any = None
    #: Galaxy's job-metrics instrumenter (`pulsar.jobs.metrics`), or None for no metrics.
    instrumenter: Any = None


def _q(value: object) -> str:
    return shlex.quote(str(value))


def env_statements(env: Sequence[Mapping[str, Any]], manager_env: Mapping[str, str]) -> list[str]:
    """Shell lines for the client's env descriptors, then the manager's `env_*` options.

    Non-raw values are double-quoted so `$VAR` references still expand, as Galaxy's
    destination env entries expect; raw values are emitted verbatim.
    """
    lines = []
    for entry in env:
        if "file" in entry:
            lines.append(f". {_q(entry['file'])}")
        elif "execute" in entry:
            lines.append(str(entry["execute"]))
        else:
            value = "" if entry.get("value") is None else str(entry["value"])
            if not entry.get("raw"):
                value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"export {entry['name']}={value}")
    for name, value in manager_env.items():
        lines.append(f"export {name}={_q(value)}")
    return lines


def instrument_commands(instrumenter: Any, metadata_directory: str) -> tuple[list[str], list[str]]:
    """Galaxy's job-metrics commands before and after the tool: they write the
    `__instrument_*` files into the metadata directory, which Galaxy collects."""
    if instrumenter is None:
        return [], []
    guard = f"[ -d {_q(metadata_directory)} ] && [ ! -L {_q(metadata_directory)} ]"
    commands = []
    for text in (instrumenter.pre_execute_commands(metadata_directory),
                 instrumenter.post_execute_commands(metadata_directory)):
        # Not through a metadata directory the job replaced by a symlink: the job could
        # write there itself, but the files would not be ours to collect.
        commands.append([f"if {guard}; then\n{text}\nfi"] if text else [])
    return commands[0], commands[1]


_SLOTS = r"""
if [ -n "$SLURM_CPUS_ON_NODE" ]; then GALAXY_SLOTS="$SLURM_CPUS_ON_NODE"
elif [ -n "$SLURM_NTASKS" ] && [ -n "$SLURM_CPUS_PER_TASK" ]; then GALAXY_SLOTS=$((SLURM_NTASKS * SLURM_CPUS_PER_TASK))
elif [ -n "$NSLOTS" ]; then GALAXY_SLOTS="$NSLOTS"
elif [ -n "$NCPUS" ]; then GALAXY_SLOTS="$NCPUS"
elif [ -n "$PBS_NCPUS" ]; then GALAXY_SLOTS="$PBS_NCPUS"
elif [ -f "$PBS_NODEFILE" ]; then GALAXY_SLOTS=$(wc -l < "$PBS_NODEFILE")
elif [ -n "$LSB_DJOB_NUMPROC" ]; then GALAXY_SLOTS="$LSB_DJOB_NUMPROC"
elif [ -n "$GALAXY_SLOTS" ]; then :
else GALAXY_SLOTS=1; GALAXY_SLOTS_UNSET=1
fi
[ -z "$GALAXY_SLOTS_UNSET" ] && export GALAXY_SLOTS_CONFIGURED=1
export GALAXY_SLOTS
if [ -n "$SLURM_MEM_PER_NODE" ]; then GALAXY_MEMORY_MB="$SLURM_MEM_PER_NODE"
elif [ -n "$SLURM_MEM_PER_CPU" ]; then GALAXY_MEMORY_MB=$((SLURM_MEM_PER_CPU * GALAXY_SLOTS))
fi
if [ -n "$GALAXY_MEMORY_MB" ]; then
    export GALAXY_MEMORY_MB
    export GALAXY_MEMORY_MB_PER_SLOT=$((GALAXY_MEMORY_MB / GALAXY_SLOTS))
fi
"""


def _snapshot_lines(job_dir: str) -> list[str]:
    """Snapshot before the first run, restore before every later run.

    `<dir>.orig.done` marks a complete snapshot (an empty directory needs no copy); without
    it the job never ran, so the directory is still as submitted.  Emptiness is tested with
    a glob, not a command, so a trivial job forks nothing here.
    """
    lines = [f"cd {job_dir} || exit 1", "shopt -s nullglob dotglob"]
    for name in SNAPSHOT_DIRECTORIES:
        orig, done = f"{name}.orig", f"{name}.orig.done"
        lines.append(
            f"if [ -e {done} ]; then rm -rf {name}; "
            f"if [ -d {orig} ]; then cp -a {orig} {name}; else mkdir {name}; fi; "
            f"else [ -e {orig} ] && rm -rf {orig}; _entries=({name}/*); "
            f"if (( ${{#_entries[@]}} )); then cp -a {name} {orig} && : > {done}; else : > {done}; fi; fi"
        )
    lines.append("shopt -u nullglob dotglob")
    return lines


def custom_tmp_expression(options: ScriptOptions) -> str | None:
    tmp_dir = options.tmp_dir
    if isinstance(tmp_dir, str) and tmp_dir.lower() not in ("true", "false", ""):
        return tmp_dir
    return None


def prepare_run_directories(job_directory: JobDirectory, options: ScriptOptions, *, first_attempt: bool) -> None:
    """Create `home/` and a fresh `tmp/` before each run (cheaper here than in the script).

    Before a first attempt, traces of an earlier job under the same id (set up again after
    it ended) are removed: its exit code and its snapshots, which a rerun would restore.
    """
    if first_attempt:
        job_directory.remove_entry([protocol.RETURN_CODE_FILE])
        for name in SNAPSHOT_DIRECTORIES:
            job_directory.remove_entry([f"{name}.orig.done"])
            job_directory.remove_entry([f"{name}.orig"])
    job_directory.make_subdirectory(protocol.HOME_DIR)
    if custom_tmp_expression(options) is None:
        job_directory.remove_entry([protocol.TMP_DIR])
        job_directory.make_subdirectory(protocol.TMP_DIR)


def render_job_script(
    job_directory: JobDirectory,
    command_line: str,
    *,
    options: ScriptOptions,
    env: Sequence[Mapping[str, Any]] = (),
    dependencies_description: Mapping[str, Any] | None = None,
    preserve_galaxy_python_environment: bool = False,
    headers: Sequence[str] = (),
) -> str:
    job_dir = _q(job_directory.path)
    working = _q(job_directory.working)
    home = _q(job_directory.sub(protocol.HOME_DIR))
    custom_tmp = custom_tmp_expression(options)
    if custom_tmp is not None:
        tmp_expr = custom_tmp  # a shell expression chosen by the admin
        make_dirs = '[ -d "$_GALAXY_JOB_TMP_DIR" ] || mkdir -p "$_GALAXY_JOB_TMP_DIR"'
    else:
        tmp_expr = _q(job_directory.sub(protocol.TMP_DIR))
        make_dirs = ":  # home and tmp are prepared by the server before each run"
    return_code = _q(job_directory.sub(protocol.RETURN_CODE_FILE))
    galaxy_lib = f"{options.galaxy_home}/lib" if options.galaxy_home else "None"

    lines = ["#!/bin/bash", *headers, "# Job script generated by Pulsar; runs the tool and records its exit code."]
    lines += [
        f'if [ -n "${INTEGRITY_CHECK_VARIABLE}" ]; then exit 42; fi',
        _SLOTS.strip(),
        "export PYTHONWARNINGS=ignore",
        f"export GALAXY_LIB={_q(galaxy_lib)}",
        f"export PRESERVE_GALAXY_ENVIRONMENT={_q(str(bool(preserve_galaxy_python_environment)))}",
    ]
    if options.galaxy_virtual_env:
        lines.append(f"export GALAXY_VIRTUAL_ENV={_q(options.galaxy_virtual_env)}")
    lines += [
        f"export _GALAXY_JOB_DIR={working}",
        f"export _GALAXY_JOB_HOME_DIR={home}",
        f"export _GALAXY_JOB_TMP_DIR={tmp_expr}",
        make_dirs,
        *env_statements(env, options.env),
    ]
    if preserve_galaxy_python_environment and options.galaxy_home:
        lines.append('export PYTHONPATH="$GALAXY_LIB${PYTHONPATH:+:$PYTHONPATH}"')
    lines += [
        'if [ -n "$GALAXY_VIRTUAL_ENV" ] && [ -f "$GALAXY_VIRTUAL_ENV/bin/activate" ] '
        '&& [ "$VIRTUAL_ENV" != "$GALAXY_VIRTUAL_ENV" ]; then . "$GALAXY_VIRTUAL_ENV/bin/activate"; fi',
        'export TMPDIR="${TMPDIR:-${TMP:-${TEMP:-$_GALAXY_JOB_TMP_DIR}}}"',
        'export TMP="${TMP:-$TMPDIR}" TEMP="${TEMP:-$TMPDIR}"',
        'export GALAXY_PYTHON="${GALAXY_PYTHON:-python3}"',
        *_snapshot_lines(job_dir),
        f"cd {working} || exit 1",
    ]
    resolver = options.dependency_resolver
    deps = resolver.shell_commands(dependencies_description, str(job_directory.path)) if resolver else []
    body = "\n".join(deps + [command_line])
    pre, post = instrument_commands(options.instrumenter, str(job_directory.metadata))
    lines += [
        *pre,
        f"(\n{body}\n)",
        "return_code=$?",
        # after the tool, before the exit code that tells the server the job is done
        *post,
        # Read only after this script has exited, so a plain (builtin, fork-free) write is
        # enough; a write cut short by a kill leaves no number, which reads as "no exit code".
        f'printf "%d\\n" "$return_code" > {return_code}',
        'exit "$return_code"',
        "",
    ]
    return "\n".join(lines)


def launch_spec(directory: JobDirectory, request: SubmitRequest, attempt: int, job_name_template: str) -> LaunchSpec:
    """What the back-end gets for attempt `attempt` of the job in `directory`."""
    return LaunchSpec(
        job_id=directory.job_id,
        job_directory=directory.path,
        script=directory.sub(protocol.JOB_SCRIPT),
        working_directory=directory.working,
        stdout_path=directory.metadata / protocol.JOB_STDOUT,
        stderr_path=directory.metadata / protocol.JOB_STDERR,
        job_name=job_name_template.replace("$job_id", directory.job_id).replace("${job_id}", directory.job_id),
        submit_params=request.submit_params,
        attempt=attempt,
    )


def write_job_script(
    directory: JobDirectory, request: SubmitRequest, spec: LaunchSpec, options: ScriptOptions, headers: Sequence[str]
) -> None:
    """Render and atomically replace `command.sh`.  Not fsynced: the script is derived from
    `launch_config` and rewritten on every recovery."""
    script = render_job_script(
        directory,
        request.command_line,
        options=options,
        env=request.env,
        dependencies_description=request.dependencies_description,
        preserve_galaxy_python_environment=str(request.setup_params.get("preserve_galaxy_python_environment", ""))
        .lower()
        == "true",
        headers=headers,
    )
    directory.write_atomic([protocol.JOB_SCRIPT], script.encode("utf-8"), fsync=False, mode=0o700)
