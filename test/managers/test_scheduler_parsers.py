"""Pure parser tests: every documented state string of each scheduler, unknown ids,
empty output, failed status commands.  No scheduler needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsar.managers.base import LaunchError, LaunchSpec
from pulsar.managers.cli.lsf import LSF, STATS, lsf_state, parse_bjobs, parse_bsub
from pulsar.managers.cli.manager import build_plugins, split_options
from pulsar.managers.cli.shell import CommandResult, LocalShell, RemoteShell, SecureShell
from pulsar.managers.cli.slurm import LONG_STATES, SHORT_STATES, Slurm, parse_sbatch, parse_squeue, slurm_state
from pulsar.managers.cli.torque import OpenPBS, Torque, parse_qstat_full, parse_qsub, pbs_state
from pulsar.managers.condor import event_observation, observe_events, parse_condor_submit
from pulsar.managers.drmaa import drmaa_state, job_template
from pulsar.managers.external import Phase, StatusUnavailable
from pulsar.managers.util import drmaa as drmaa_util

Q, R, E, F, G, U = Phase.QUEUED, Phase.RUNNING, Phase.ENDED, Phase.FAILED, Phase.GONE, Phase.UNKNOWN


def result(stdout: str = "", stderr: str = "", rc: int = 0) -> CommandResult:
    return CommandResult(("cmd",), rc, stdout, stderr)


def spec(tmp: Path = Path("/jobs/7")) -> LaunchSpec:
    return LaunchSpec(job_id="7", job_directory=tmp, script=tmp / "command.sh", working_directory=tmp / "working",
                      stdout_path=tmp / "metadata/job_stdout", stderr_path=tmp / "metadata/job_stderr",
                      job_name="pulsar_7", submit_params={})


# --- Slurm -------------------------------------------------------------------------------

SLURM_EXPECTED = {
    "PENDING": Q, "CONFIGURING": Q, "REQUEUED": Q, "REQUEUE_FED": Q, "REQUEUE_HOLD": Q, "RESV_DEL_HOLD": Q,
    "SPECIAL_EXIT": Q, "RUNNING": R, "COMPLETING": R, "SUSPENDED": R, "STOPPED": R, "SIGNALING": R,
    "STAGE_OUT": R, "RESIZING": R, "COMPLETED": E, "CANCELLED": F, "FAILED": F, "TIMEOUT": F, "NODE_FAIL": F,
    "PREEMPTED": F, "BOOT_FAIL": F, "DEADLINE": F, "OUT_OF_MEMORY": F, "REVOKED": F,
}


@pytest.mark.parametrize("state", sorted(SLURM_EXPECTED))
def test_slurm_long_states(state: str) -> None:
    assert slurm_state(state).phase is SLURM_EXPECTED[state]


@pytest.mark.parametrize("short", sorted(SHORT_STATES))
def test_slurm_short_states(short: str) -> None:
    assert slurm_state(short).phase is SLURM_EXPECTED[SHORT_STATES[short]]


def test_slurm_tables_agree() -> None:
    assert set(LONG_STATES) == set(SLURM_EXPECTED) == set(SHORT_STATES.values())


def test_slurm_reasons() -> None:
    assert slurm_state("FAILED", "NonZeroExitCode").phase is E  # the script ran and exited non-zero
    assert slurm_state("FAILED", "JobLaunchFailure").detail == "failed to start (Slurm JobLaunchFailure)"
    assert slurm_state("TIMEOUT", "TimeLimit").detail == "timed out (Slurm time limit)"
    assert slurm_state("CA").detail == "cancelled in Slurm"
    assert slurm_state("WEIRD_NEW_STATE").phase is U


def test_squeue_output() -> None:
    out = "41|RUNNING|None\n42|PENDING|Priority\n43|COMPLETED|None\n44|TIMEOUT|TimeLimit\n99|RUNNING|None\n"
    seen = parse_squeue(["41", "42", "43", "44", "45"], result(out))
    assert {k: v.phase for k, v in seen.items()} == {"41": R, "42": Q, "43": E, "44": F}
    assert parse_squeue(["1", "2"], result("")) == {}  # several unknown ids: empty output
    single = result("", "slurm_load_jobs error: Invalid job id specified\n", 1)
    assert parse_squeue(["1"], single) == {}  # a single unknown id: error, status 1
    with pytest.raises(StatusUnavailable):
        parse_squeue(["1"], result("", "slurm_load_jobs error: Unable to contact slurm controller", 1))


def test_sbatch_output() -> None:
    assert parse_sbatch(result("42\n")) == "42"
    assert parse_sbatch(result("42;othercluster\n")) == "42"
    assert parse_sbatch(result("Submitted batch job 77\n")) == "77"
    with pytest.raises(LaunchError, match="invalid partition"):
        parse_sbatch(result("", "sbatch: error: invalid partition specified: x", 1))
    with pytest.raises(LaunchError, match="unexpected sbatch output"):
        parse_sbatch(result("what?\n"))


def test_slurm_headers_and_argv() -> None:
    plugin = Slurm({"time": "1:00", "ncpus": 2, "partition": "debug", "--mem": "100", "color": "red"})
    assert plugin.headers(spec()) == [
        "#SBATCH -o /jobs/7/metadata/job_stdout", "#SBATCH -e /jobs/7/metadata/job_stderr", "#SBATCH -J pulsar_7",
        "#SBATCH -t 1:00", "#SBATCH -c 2", "#SBATCH -p debug", "#SBATCH --mem 100"]
    assert plugin.submit_command(Path("/j/command.sh")).argv == ["sbatch", "--parsable", "/j/command.sh"]
    assert plugin.status_command(["1", "2"]) == ["squeue", "-h", "-t", "all", "-j", "1,2", "-o", "%i|%T|%r"]
    assert plugin.cancel_command("1") == ["scancel", "1"]


# --- Torque / PBS ----------------------------------------------------------------------------

PBS_EXPECTED = {"Q": Q, "H": Q, "W": Q, "T": Q, "R": R, "E": R, "S": R, "U": R, "B": R, "C": E, "F": E, "X": E,
                "M": G}


@pytest.mark.parametrize("letter", sorted(PBS_EXPECTED))
def test_pbs_job_states(letter: str) -> None:
    assert pbs_state(letter).phase is PBS_EXPECTED[letter]


def test_pbs_exit_status() -> None:
    assert pbs_state("C", "0").phase is E
    assert pbs_state("C", "3").phase is E  # the script's own status: return_code decides
    assert pbs_state("C", "-11").detail == "exceeded its walltime limit"
    assert pbs_state("C", "-1").detail == "failed to start (exit_status -1)"
    assert pbs_state("F", "271").detail == "killed by signal 15"
    assert pbs_state("Z").phase is U


QSTAT_F = """Job Id: 12.server.example.org
    Job_Name = pulsar_12
    job_state = R
    Variable_List = PBS_O_HOME=/root,PBS_O_LANG=C,
\tPBS_O_PATH=/bin

Job Id: 13.server.example.org
    Job_Name = pulsar_13
    job_state = C
    exit_status = -11

Job Id: 14.server
    job_state = F
    Exit_status = 0
"""


def test_qstat_full_output() -> None:
    seen = parse_qstat_full(["12.server", "13.server", "14.server", "15.server"],
                            result(QSTAT_F, "qstat: Unknown Job Id Error 15.server\n", 153))
    assert {k: v.phase for k, v in seen.items()} == {"12.server": R, "13.server": F, "14.server": E}
    finished = "qstat: 16.srv Job has finished, use -x or -H to obtain historical job information\n"
    assert parse_qstat_full(["16.srv"], result("", finished, 35)) == {}
    assert parse_qstat_full([], result("")) == {}
    with pytest.raises(StatusUnavailable):
        parse_qstat_full(["1.s"], result("", "Cannot connect to specified server host 'x'.\n", 111))


def test_qsub_output_and_argv() -> None:
    assert parse_qsub(result("123.server.example.org\n")) == "123.server.example.org"
    assert parse_qsub(result("45[].server\n")) == "45[].server"
    with pytest.raises(LaunchError):
        parse_qsub(result("", "qsub: Unknown queue", 190))
    with pytest.raises(LaunchError):
        parse_qsub(result("garbage here\n"))
    assert Torque().status_command(["1.s", "2.s"]) == ["qstat", "-f", "1.s", "2.s"]
    assert OpenPBS().status_command(["1.s"]) == ["qstat", "-f", "-x", "1.s"]
    headers = Torque({"destination": "batch", "Resource_List": "walltime=1:00:00", "-W": "x=y"}).headers(spec())
    assert headers[2:] == ["#PBS -N pulsar_7", "#PBS -q batch", "#PBS -l walltime=1:00:00", "#PBS -W x=y"]


# --- LSF -------------------------------------------------------------------------------------------

LSF_EXPECTED = {"PEND": Q, "PROV": Q, "WAIT": Q, "PSUSP": Q, "RUN": R, "USUSP": R, "SSUSP": R, "DONE": E,
                "EXIT": F, "ZOMBI": F, "UNKWN": U}


@pytest.mark.parametrize("stat", sorted(LSF_EXPECTED))
def test_lsf_stats(stat: str) -> None:
    assert lsf_state(stat + "\n").phase is LSF_EXPECTED[stat]  # trailing newline is harmless


def test_lsf_tables_agree() -> None:
    assert set(STATS) == set(LSF_EXPECTED)


def test_bjobs_and_bsub_output(tmp_path: Path) -> None:
    seen = parse_bjobs(["1", "2", "3"], result("1 RUN\n2 DONE\n", "Job <3> is not found\n", 255))
    assert {k: v.phase for k, v in seen.items()} == {"1": R, "2": E}
    assert parse_bjobs(["1"], result("")) == {}
    with pytest.raises(StatusUnavailable):
        parse_bjobs(["1"], result("", "LSF is down. Please wait ...", 255))
    assert parse_bsub(result("Job <1234> is submitted to default queue <normal>.\n")) == "1234"
    with pytest.raises(LaunchError):
        parse_bsub(result("", "nosuch: No such queue. Job not submitted.", 255))
    hosts = tmp_path / "hosts"
    hosts.write_text("n1\n\nn2\n")
    plugin = LSF({"memory": "4000", "cores": "2", "queue": "q", "excluded_hosts": str(hosts)})
    assert plugin.headers(spec())[2:] == [
        "#BSUB -J pulsar_7", "#BSUB -n 2", "#BSUB -q q", "#BSUB -M 4000", '#BSUB -R "rusage[mem=4000]"',
        "#BSUB -R \"select[hname!='n1']\"", "#BSUB -R \"select[hname!='n2']\""]
    command = plugin.submit_command(Path("/j/command.sh"))
    assert (command.argv, command.stdin_path) == (["bsub"], Path("/j/command.sh"))
    assert plugin.status_command(["1", "2"]) == ["bjobs", "-noheader", "-o", "jobid stat", "1", "2"]


# --- DRMAA -----------------------------------------------------------------------------------------

DRMAA_EXPECTED = {
    drmaa_util.UNDETERMINED: U, drmaa_util.QUEUED_ACTIVE: Q, drmaa_util.SYSTEM_ON_HOLD: Q,
    drmaa_util.USER_ON_HOLD: Q, drmaa_util.USER_SYSTEM_ON_HOLD: Q, drmaa_util.RUNNING: R,
    drmaa_util.SYSTEM_SUSPENDED: R, drmaa_util.USER_SUSPENDED: R, drmaa_util.USER_SYSTEM_SUSPENDED: R,
    drmaa_util.DONE: E, drmaa_util.FAILED: F, drmaa_util.JOB_NOT_FOUND: G,
}


@pytest.mark.parametrize("state", sorted(DRMAA_EXPECTED))
def test_drmaa_states(state: str) -> None:
    assert drmaa_state(state).phase is DRMAA_EXPECTED[state]


def test_drmaa_template() -> None:
    assert job_template(spec(), "-q all.q") == {
        "remoteCommand": "/jobs/7/command.sh", "jobName": "pulsar_7",
        "outputPath": ":/jobs/7/metadata/job_stdout", "errorPath": ":/jobs/7/metadata/job_stderr",
        "workingDirectory": "/jobs/7/working", "nativeSpecification": "-q all.q"}
    assert "nativeSpecification" not in job_template(spec(), None)


# --- HTCondor user log -------------------------------------------------------------------------------

CONDOR_EXPECTED = {"000": Q, "001": R, "002": Q, "004": Q, "005": E, "007": Q, "009": F, "010": R, "011": R,
                   "012": Q, "013": Q, "024": Q}


@pytest.mark.parametrize("code", sorted(CONDOR_EXPECTED))
def test_condor_event_codes(code: str) -> None:
    observation = event_observation(code, [])
    assert observation is not None and observation.phase is CONDOR_EXPECTED[code]


def test_condor_events_without_state_change() -> None:
    assert event_observation("006", ["\t1 - ResidentSetSize of job (KB)"]) is None
    assert event_observation("028", []) is None


def test_condor_user_log() -> None:
    log = """000 (042.000.000) 2026-11-21 14:00:00 Job submitted from host: <127.0.0.1:9618>
...
000 (043.000.000) 2026-11-21 14:00:00 Job submitted from host: <127.0.0.1:9618>
...
001 (042.000.000) 2026-11-21 14:00:01 Job executing on host: <127.0.0.1:9618>
...
006 (042.000.000) 2026-11-21 14:00:02 Image size of job updated: 1
\t1  -  MemoryUsage of job (MB)
...
005 (043.000.000) 2026-11-21 14:00:03 Job terminated.
\t(0) Abnormal termination (signal 9)
...
"""
    lines = log.splitlines()
    assert observe_events(lines, "42").phase is R  # type: ignore[union-attr]
    killed = observe_events(lines, "43")
    assert killed is not None and (killed.phase, killed.detail) == (F, "killed by signal 9")
    assert observe_events(lines, "44") is None
    assert observe_events([], "42") is None
    done = lines + ["005 (042.000.000) 2026-11-21 14:00:04 Job terminated.",
                    "\t(1) Normal termination (return value 3)", "..."]
    assert observe_events(done, "42").phase is E  # type: ignore[union-attr]
    partial = lines + ["009 (042.000.000) 2026-11-21 14:00:04 Job was aborted."]  # event not complete yet
    assert observe_events(partial, "42").phase is R  # type: ignore[union-attr]
    assert parse_condor_submit("Submitting job(s).\n1 job(s) submitted to cluster 42.\n") == "42"
    assert parse_condor_submit("ERROR: nope\n") is None


# --- shells and option splitting ------------------------------------------------------------------------


def test_shell_argv() -> None:
    ssh = SecureShell({"hostname": "h", "username": "u", "port": "2222", "private_key": "/k",
                       "strict_host_key_checking": "false"})
    assert ssh.wrap(["squeue", "-o", "%i|%T"]) == [
        "ssh", "-o", "ConnectTimeout=60", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-i", "/k", "-p", "2222", "-l", "u",
        "h", "squeue -o '%i|%T'"]
    assert RemoteShell({"hostname": "h", "username": "u"}).wrap(["qstat", "a b"]) == ["rsh", "-l", "u", "h",
                                                                                      "qstat 'a b'"]
    assert LocalShell().wrap(["true"]) == ["true"]


def test_local_shell_results(tmp_path: Path) -> None:
    shell = LocalShell({"timeout": "0.5"})
    assert shell.run(["sh", "-c", "echo hi; echo no >&2; exit 3"]) == CommandResult(
        ("sh", "-c", "echo hi; echo no >&2; exit 3"), 3, "hi\n", "no\n")
    assert shell.run(["/no/such/program"]).returncode == 127
    slow = shell.run(["sleep", "30"])
    assert (slow.returncode, slow.stderr) == (-1, "Execution timed out")
    data = tmp_path / "in"
    data.write_text("from stdin")
    assert shell.run(["cat"], stdin_path=data).stdout == "from stdin"


def test_option_prefixes() -> None:
    options = {"shell_plugin": "SecureShell", "shell_hostname": "h", "job_plugin": "Torque",
               "job_destination": "q", "job_directory_mode": "0777", "job_name_template": "x", "type": "queued_cli"}
    assert split_options(options) == ({"hostname": "h"}, {"destination": "q"})
    shell, plugin = build_plugins(options)
    assert isinstance(shell, SecureShell) and isinstance(plugin, Torque)


def test_cli_compat_entry_points() -> None:
    from pulsar.managers.util.cli import CliInterface, split_params

    shell_params, job_params = split_params({"shell_plugin": "SecureShell", "shell_hostname": "h",
                                             "job_plugin": "LSF", "job_queue": "q", "other": 1})
    assert (shell_params, job_params) == ({"plugin": "SecureShell", "hostname": "h"}, {"plugin": "LSF", "queue": "q"})
    shell, plugin = CliInterface().get_plugins(shell_params, job_params)
    assert isinstance(shell, SecureShell) and isinstance(plugin, LSF) and plugin.params == {"queue": "q"}
    with pytest.raises(ValueError, match="unknown CLI plugin 'PBSPro'"):
        CliInterface().get_plugins({}, {"plugin": "PBSPro"})
    # Galaxy's contract: the shell defaults to LocalShell, the job plugin must be named.
    assert isinstance(CliInterface().get_shell_plugin({}), LocalShell)
    with pytest.raises(ValueError, match="no job plugin"):
        CliInterface().get_job_interface({"queue": "q"})
