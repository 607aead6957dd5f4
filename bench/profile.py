"""Profile OUR server (and optionally our client) with py-spy during the benchmark workloads.

    .venv/bin/python bench/profile.py                 # 1 GiB upload/download, 200 jobs at concurrency 8 and 1
    .venv/bin/python bench/profile.py --size-mib 256 --jobs 100 --client

py-spy (`pip install py-spy` into .venv) samples the server process only while a phase runs:
the client driver prints `BENCH-PHASE <name>-start/-end` and this script starts and stops
`py-spy record --format raw` around it.  Output: `bench/results/profile-<date>-<time>/`
with one collapsed-stack file per phase (feed to flamegraph.pl or speedscope) and a text
summary per phase (top self time by line and by function, top inclusive functions).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.clients import DRIVER, RESULT_PREFIX, our_client  # noqa: E402
from bench.servers import TOKEN, OurServer  # noqa: E402
from bench.workloads.transfer import make_input  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"
MIB = 1024 * 1024
#: Leaf functions that mean "this thread is waiting", not working (py-spy's own idle
#: detection does not see through these in a container).  Excluded from the summaries.
IDLE_LEAVES = {"Condition.wait", "Event.wait", "EpollSelector.select", "_PollLikeSelector.select",
               "Popen._try_wait", "_worker", "Queue.get", "SimpleQueue.get", "_work_loop", "sleep",
               "_wait_for_tstate_lock", "select", "poll", "accept"}
_IDLE_NAMES = {name.rpartition(".")[2] for name in IDLE_LEAVES}
_LINE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def start_recording(pid: int, out: Path, rate: int, *, gil: bool = False) -> subprocess.Popen[bytes]:
    command = [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "-o", str(out),
               "--nonblocking"]
    if gil:
        command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_recording(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def short(frame: str, with_line: bool) -> str:
    match = _LINE.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    if str(REPO_ROOT) in path:
        path = os.path.relpath(path, REPO_ROOT)
    line = f":{match['line']}" if with_line and match["line"] else ""
    return f"{match['func']} ({path}{line})"


def summarise(collapsed: Path, rate: int, top: int = 25) -> str:
    """Self time by line and by function, inclusive time by function, as % of samples."""
    self_line: collections.Counter[str] = collections.Counter()
    self_func: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    idle = 0
    for raw in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        leaf = _LINE.match(frames[-1])
        if leaf and leaf["func"].rpartition(".")[2] in _IDLE_NAMES:
            idle += count
            continue
        total += count
        self_line[short(frames[-1], True)] += count
        self_func[short(frames[-1], False)] += count
        for name in {short(f, False) for f in frames}:
            inclusive[name] += count
    if not total:
        return "(no samples)\n"
    lines = [f"{total} busy samples = {total / rate:.2f} busy thread-seconds at {rate} Hz "
             f"({idle} idle samples excluded; percentages are of busy samples)"]
    for title, counter in (("self time by line", self_line), ("self time by function", self_func),
                           ("inclusive time by function", inclusive)):
        lines.append(f"\n## {title}")
        for name, count in counter.most_common(top):
            lines.append(f"{100 * count / total:6.1f}%  {name}")
    return "\n".join(lines) + "\n"


def drive(spec: dict, workdir: Path, server_pid: int, outdir: Path, rate: int, client_profile: bool,
          gil: bool = False) -> dict:
    """Run the client driver; record the server during each phase it announces."""
    client = our_client()
    spec = {"token": TOKEN, "workdir": str(workdir), "phases": True, **spec}
    spec_path = workdir / f"spec-{spec['mode']}.json"
    spec_path.write_text(json.dumps(spec))
    command = [client.python, str(DRIVER), str(spec_path)]
    if client_profile:
        command = [str(PY_SPY), "record", "--rate", str(rate), "--format", "raw", "--nonblocking",
                   *(["--gil"] if gil else []),
                   "-o", str(outdir / f"client-{spec['mode']}-c{spec.get('concurrency', 1)}.txt"), "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(workdir / "driver.log", "ab"),
                               cwd=workdir, env=client.env, text=True)
    recorder = None
    result: dict = {}
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.strip()
            if line.startswith("BENCH-PHASE "):
                name, _, edge = line.split(" ", 1)[1].rpartition("-")
                label = f"{name}-c{spec['concurrency']}" if "concurrency" in spec else name
                if edge == "start":
                    recorder = start_recording(server_pid, outdir / f"server-{label}.txt", rate, gil=gil)
                elif recorder is not None:
                    stop_recording(recorder)
                    recorder = None
                    print(f"recorded server during {label}", file=sys.stderr)
            elif line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
        process.wait()
    finally:
        if recorder is not None:
            stop_recording(recorder)
        if process.poll() is None:
            process.kill()
            process.wait()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--client", action="store_true", help="also profile our client driver (whole run)")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL (CPU spent in Python), not wall time")
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--skip-jobs", action="store_true")
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        print(f"py-spy not found at {PY_SPY}; `{sys.executable} -m pip install py-spy`", file=sys.stderr)
        return 2
    kind = "cpu" if args.gil else "wall"
    outdir = REPO_ROOT / "bench" / "results" / f"profile-{kind}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    outdir.mkdir(parents=True)
    workdir = Path(tempfile.mkdtemp(prefix="pulsar-profile-"))
    server = OurServer(workdir / "ours")
    try:
        server.start()
        assert server.process is not None
        pid = server.process.pid
        if not args.skip_transfer:
            size = args.size_mib * MIB
            input_path = workdir / "input.dat"
            sha = make_input(input_path, size)
            result = drive({"mode": "transfer", "url": server.url, "job_id": "1_0", "input_path": str(input_path),
                            "sha256": sha}, workdir, pid, outdir, args.rate, args.client, args.gil)
            up, down = result.get("upload"), result.get("download")
            if up and down:
                print(f"(under profiling) upload {size / (up[1] - up[0]) / 1e6:.0f} MB/s, "
                      f"download {size / (down[1] - down[0]) / 1e6:.0f} MB/s, ok={result['ok']}", file=sys.stderr)
            input_path.unlink()
        if not args.skip_jobs:
            for index, concurrency in enumerate((8, 1)):
                result = drive({"mode": "jobs", "url": server.url, "count": args.jobs, "concurrency": concurrency,
                                "poll_interval": 0.01, "id_prefix": f"{index + 2}_"}, workdir, pid, outdir,
                               args.rate, args.client, args.gil)
                if result:
                    start, end = result["window"]
                    print(f"(under profiling) c{concurrency}: {args.jobs / (end - start):.1f} jobs/s, "
                          f"{result['failed']} failed", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for collapsed in sorted(outdir.glob("*.txt")):
        if collapsed.name.endswith(".summary.txt"):
            continue
        summary = summarise(collapsed, args.rate)
        (outdir / (collapsed.stem + ".summary.txt")).write_text(summary)
        print(f"\n# {collapsed.name}\n{summary}")
    print(f"profiles in {outdir.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
