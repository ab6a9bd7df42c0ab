"""Benchmark the watcher-to-Socket.IO push against three baselines, in one run.

For each client count N it measures, and prints as Markdown tables:

- ours: a real signwatch server (`python -m server`, fake detector, its
  `SIGNWATCH_WATCH_STEP_MS` set to `--step-ms`). A status file is replaced
  atomically (temp file, fsync, then the timed `os.replace`) and N real
  python-socketio clients (WebSocket) timestamp the `status` event. Latency =
  receipt - os.replace, per client and until all N have it.
- awatch: `awatch_broadcast.py`, one watchfiles `awatch` with the same debounce
  and step (`--step-ms`) over a root of its own, which reads each changed
  status file and `sio.emit`s it to everyone: no store, no hub, no rooms. Its
  status file is written exactly like ours and timed from `os.replace` too, so
  ours/awatch is our code's own overhead over python-socketio plus watchfiles.
- bare: `bare_broadcast.py`, a minimal python-socketio AsyncServer on uvicorn
  that broadcasts the same status dict when the bench POSTs it. Latency =
  receipt - the moment the bench sends the POST (the trigger).
- reload: the old approach, N clients fetching `GET /status` (the rendered
  page) every 2 s at random phases. Latency = time of the first response whose
  rendered row (its `data-seq`) shows a write - the write's os.replace.

Rounds of ours, awatch and bare alternate, so background load hits all alike.
Latency rounds change only `progress` and leave `--gap` (>= 0.3 s) between
rounds, so the server's coalescing of progress-only changes (at most 4 in any
1 s per recording) never holds an event back. Before any client connects, the
CPU of each server with no clients and no writes is read for `--idle` seconds.
Then a writer bumps the recording's progress 4 times a second for `--duration`
seconds, once with the N push clients connected and once with the N pollers,
and the server's CPU time (psutil, user + system) is read around each:
CPU-seconds per minute, plus the freshness of every write as each client saw it.

`--steps 10,5,2` runs a sweep instead: for each step, fresh servers with that
watch step (ours and awatch), the idle CPU, then latency and push load at each
N (default 1 and 100). The reload phase is left out unless `--with-reload`
is given.

Clients run in `--procs` worker processes (`push_clients.py`), K clients per
asyncio loop; all times are `time.monotonic()`, one clock for the whole host.

Usage:
    .venv/bin/python bench/bench_push.py [--clients 1,100,1000] [--rounds 40]
    .venv/bin/python bench/bench_push.py --steps 10,5,2   # N=1,100 per step
    .venv/bin/python bench/bench_push.py --quick          # N=1,20; about a minute
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import itertools
import json
import logging
import math
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from push_clients import Receipt, raise_fd_limit, serve  # noqa: E402
from support import LiveServer, free_port, make_recording, start_server  # noqa: E402

from server.recordings import STATUS_FILE, Status, now_iso  # noqa: E402

logger = logging.getLogger("bench")

ACTIVE_ID = "bench-active"
RELOAD_PERIOD_S = 2.0
WRITER_HZ = 4.0
WAIT_TIMEOUT_S = 15.0
# Latency rounds go to these servers in turn.
GROUPS = ("ours", "awatch", "bare")


# Statistics.


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated linearly; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Latencies:
    """Latency samples in seconds, plus how many expected samples never came."""

    samples: list[float] = field(default_factory=list)
    missed: int = 0

    def p(self, q: float) -> float:
        return percentile(self.samples, q)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else math.nan


# The status file and the triggers.


class StatusWriter:
    """Writes successive versions of one recording's status like the pipeline."""

    def __init__(self, root: Path, status: Status) -> None:
        self.folder = root / status["id"]
        self.status = status

    def next(self) -> Status:
        """The next version: seq + 1, one more frame done."""
        progress = dict(self.status["progress"])
        progress["frames_done"] += 1
        self.status = {
            **self.status,
            "seq": self.status["seq"] + 1,
            "updated_at": now_iso(),
            "progress": progress,
        }
        return self.status

    def write(self, status: Status) -> float:
        """Write `status` as write_status does; return the os.replace moment."""
        payload = json.dumps(status, indent=1, sort_keys=True).encode()
        tmp = self.folder / f".status.bench-{status['seq']}.tmp"
        with tmp.open("wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        t_replace = time.monotonic()
        os.replace(tmp, self.folder / STATUS_FILE)
        return t_replace

    def run(self, duration: float, hz: float = WRITER_HZ) -> list[tuple[int, float]]:
        """Write a new version `hz` times a second; return (seq, t_replace) of each."""
        writes = []
        due = time.monotonic()
        end = due + duration
        while due < end:
            time.sleep(max(0.0, due - time.monotonic()))
            status = self.next()
            writes.append((status["seq"], self.write(status)))
            due += 1 / hz
        return writes


class BareTrigger:
    """POSTs a status to the bare broadcast server over one kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.last = -math.inf

    def emit(self, status: Status) -> tuple[float, float]:
        """Return (trigger moment, the server's moment just before `emit`)."""
        body = json.dumps(status).encode()
        headers = {"Content-Type": "application/json"}
        if time.monotonic() - self.last > 2.0:
            # uvicorn drops idle keep-alive connections after 5 s: reconnect
            # before the clock starts, so no handshake is timed.
            self.conn.close()
            self.conn.connect()
        t_trigger = time.monotonic()
        self.conn.request("POST", "/emit", body=body, headers=headers)
        answer = json.loads(self.conn.getresponse().read())
        self.last = time.monotonic()
        return t_trigger, float(answer["t_send"])


# Client worker processes.


class Workers:
    """A fixed set of client worker processes, each answering one command at a time."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for _ in range(count):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=serve, args=(there,), daemon=True)
            proc.start()
            there.close()
            self.conns.append(here)
            self.procs.append(proc)

    def split(self, total: int) -> list[int]:
        """`total` clients spread as evenly as possible over the workers."""
        size, extra = divmod(total, len(self.conns))
        return [size + (i < extra) for i in range(len(self.conns))]

    def send(self, commands: dict[int, tuple[Any, ...]]) -> None:
        for index, command in commands.items():
            self.conns[index].send(command)

    def receive(self, indices: Sequence[int]) -> list[Any]:
        answers = [self.conns[i].recv() for i in indices]
        for answer in answers:
            if isinstance(answer, Exception):
                raise RuntimeError(f"a client worker failed: {answer!r}")
        return answers

    def call(self, commands: dict[int, tuple[Any, ...]]) -> list[Any]:
        """Send each worker its command, then collect every answer."""
        self.send(commands)
        return self.receive(list(commands))

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


# Phases.


@dataclass
class Result:
    """Everything measured at one client count, with one watch step."""

    clients: int
    step_ms: int
    all_n: dict[str, Latencies] = field(
        default_factory=lambda: {g: Latencies() for g in GROUPS}
    )
    each: dict[str, Latencies] = field(
        default_factory=lambda: {g: Latencies() for g in GROUPS}
    )
    trigger_cost: list[float] = field(default_factory=list)
    push_fresh: Latencies = field(default_factory=Latencies)
    reload_fresh: Latencies = field(default_factory=Latencies)
    reload_fresh_all: Latencies = field(default_factory=Latencies)
    cpu_idle: float = math.nan
    cpu_ours: float = math.nan
    cpu_reload: float = math.nan
    polls: int = 0

    def ratio(self, group: str, q: float) -> float:
        """Ours over `group`, all-N percentile `q`."""
        return self.all_n["ours"].p(q) / self.all_n[group].p(q)


@dataclass
class StepRun:
    """One start of the servers: their idle CPU, then every client count."""

    step_ms: int
    idle_cpu: dict[str, float] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)


def connect(workers: Workers, group: str, url: str, total: int) -> None:
    counts = workers.split(total)
    commands = {
        i: ("connect", group, url, ACTIVE_ID, c) for i, c in enumerate(counts) if c
    }
    answers = workers.call(commands)
    connected = sum(a["connected"] for a in answers)
    if connected < total:
        errors = [e for a in answers for e in a["errors"]]
        raise RuntimeError(
            f"only {connected} of {total} {group} clients connected: {errors}"
        )


def wait_all(workers: Workers, group: str, seq: int) -> list[float | None]:
    commands = {
        i: ("wait", group, seq, WAIT_TIMEOUT_S) for i in range(len(workers.conns))
    }
    return [t for answer in workers.call(commands) for t in answer]


def _record_round(
    all_n: Latencies, each: Latencies, times: list[float | None], t0: float
) -> None:
    arrived = [t - t0 for t in times if t is not None]
    each.samples.extend(arrived)
    each.missed += len(times) - len(arrived)
    if len(arrived) == len(times):
        all_n.samples.append(max(arrived))
    else:
        all_n.missed += 1


def _fire(env: Environment, group: str, result: Result) -> tuple[int, float]:
    """Trigger one push on `group`'s server; return (seq, the moment timed from)."""
    if group == "bare":
        status = env.writer.next()
        t0, t_send = env.bare.emit(status)
        result.trigger_cost.append(t_send - t0)
        return status["seq"], t0
    writer = env.writer if group == "ours" else env.awatch_writer
    status = writer.next()
    return status["seq"], writer.write(status)


def latency_rounds(result: Result, env: Environment, rounds: int, gap: float) -> None:
    """Alternate push rounds on our server, the awatch one and the bare one."""
    for _ in range(rounds):
        for group in GROUPS:
            seq, t0 = _fire(env, group, result)
            times = wait_all(env.workers, group, seq)
            _record_round(result.all_n[group], result.each[group], times, t0)
            time.sleep(gap)


def freshness(
    writes: list[tuple[int, float]], receipts: list[Receipt]
) -> list[float | None]:
    """For each write, how long until this client first saw it or something newer."""
    receipts = sorted(receipts)
    # A running maximum makes the seqs sorted, for bisect.
    seqs = list(itertools.accumulate((s for _t, s in receipts), max))
    out: list[float | None] = []
    for seq, t_write in writes:
        index = bisect.bisect_left(seqs, seq)
        out.append(receipts[index][0] - t_write if index < len(receipts) else None)
    return out


def _add_freshness(
    each: Latencies,
    all_n: Latencies | None,
    writes: list[tuple[int, float]],
    clients: list[list[Receipt]],
) -> None:
    per_client = [freshness(writes, receipts) for receipts in clients]
    for column in zip(*per_client, strict=True):
        arrived = [v for v in column if v is not None]
        each.samples.extend(arrived)
        each.missed += len(column) - len(arrived)
        if all_n is not None and arrived and len(arrived) == len(column):
            all_n.samples.append(max(arrived))


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def cpu_per_minute(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU-seconds per minute of each process over the next `seconds`."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wall0 = time.monotonic()
    time.sleep(seconds)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wall = time.monotonic() - wall0
    return {name: (after[name] - before[name]) / wall * 60 for name in pids}


def push_load(result: Result, env: Environment, duration: float) -> None:
    """Server CPU with the N push clients idle, then under the 4 Hz writer."""
    indices = range(len(env.workers.conns))
    pid = env.server.proc.pid
    env.workers.call({i: ("take", "ours") for i in indices})
    result.cpu_idle = cpu_per_minute({"ours": pid}, duration / 2)["ours"]
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    writes = env.writer.run(duration)
    cpu1, wall1 = cpu_seconds(pid), time.monotonic()
    time.sleep(1.0)
    clients = [
        c
        for answer in env.workers.call({i: ("take", "ours") for i in indices})
        for c in answer
    ]
    result.cpu_ours = (cpu1 - cpu0) / (wall1 - wall0) * 60
    _add_freshness(result.push_fresh, None, writes, clients)


def reload_load(result: Result, env: Environment, duration: float) -> None:
    """The 4 Hz writer with N pollers of the rendered page: CPU and freshness."""
    warmup = RELOAD_PERIOD_S
    until = time.monotonic() + warmup + duration + RELOAD_PERIOD_S + 0.2
    counts = env.workers.split(result.clients)
    url = f"{env.server.url}/status"
    commands = {
        i: (
            "poll",
            url,
            ACTIVE_ID,
            c,
            RELOAD_PERIOD_S,
            until,
            1000 * result.clients + i,
        )
        for i, c in enumerate(counts)
        if c
    }
    env.workers.send(commands)
    time.sleep(warmup)
    pid = env.server.proc.pid
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    writes = env.writer.run(duration)
    cpu1, wall1 = cpu_seconds(pid), time.monotonic()
    clients = [c for answer in env.workers.receive(list(commands)) for c in answer]
    result.cpu_reload = (cpu1 - cpu0) / (wall1 - wall0) * 60
    result.polls = sum(len(c) for c in clients)
    if not result.polls:
        raise RuntimeError(
            f"No poll of {url} showed recording {ACTIVE_ID!r}; expected a row with "
            "data-id and data-seq attributes (see push_clients.shown_seq)."
        )
    _add_freshness(result.reload_fresh, result.reload_fresh_all, writes, clients)


def measure(n: int, args: argparse.Namespace, env: Environment) -> Result:
    """Every phase at one client count."""
    result = Result(n, env.step_ms)
    started = time.monotonic()
    for group, url in env.urls().items():
        connect(env.workers, group, url, n)
    logger.info(
        "step %d ms, N=%d: connected %d x %d clients in %.1f s",
        env.step_ms, n, len(GROUPS), n, time.monotonic() - started,
    )  # fmt: skip
    time.sleep(1.0)  # let the snapshots of the new clients go out
    latency_rounds(result, env, args.rounds, args.gap)
    logger.info("step %d ms, N=%d: latency rounds done", env.step_ms, n)
    push_load(result, env, args.duration)
    env.workers.call({i: ("close",) for i in range(len(env.workers.conns))})
    time.sleep(1.0)
    if args.with_reload or not args.steps:
        reload_load(result, env, args.duration)
    logger.info(
        "step %d ms, N=%d: done in %.1f s", env.step_ms, n, time.monotonic() - started
    )
    return result


def run_step(step_ms: int, args: argparse.Namespace, workers: Workers) -> StepRun:
    """Start fresh servers with watch step `step_ms`; measure idle, then each N."""
    run = StepRun(step_ms)
    with tempfile.TemporaryDirectory(prefix="signwatch-bench-") as tmp:
        env = _start(Path(tmp), step_ms, args, workers)
        try:
            run.idle_cpu = cpu_per_minute(env.pids(), args.idle)
            logger.info("step %d ms: idle CPU s/min %s", step_ms, run.idle_cpu)
            run.results = [measure(n, args, env) for n in args.clients]
        finally:
            _stop(env)
    return run


# Set-up.


@dataclass
class Environment:
    """The servers and the writers of one step, and the client workers."""

    step_ms: int
    server: LiveServer
    awatch_proc: subprocess.Popen[bytes]
    awatch_url: str
    awatch_writer: StatusWriter
    bare_proc: subprocess.Popen[bytes]
    bare_url: str
    bare: BareTrigger
    writer: StatusWriter
    workers: Workers

    def urls(self) -> dict[str, str]:
        return {
            "ours": self.server.url,
            "awatch": self.awatch_url,
            "bare": self.bare_url,
        }

    def pids(self) -> dict[str, int]:
        return {
            "ours": self.server.proc.pid,
            "awatch": self.awatch_proc.pid,
            "bare": self.bare_proc.pid,
        }


def _seed_recordings(root: Path, history: int) -> None:
    for index in range(history):
        make_recording(
            root,
            f"bench-done-{index:03d}",
            name=f"drive-{index:03d}.mp4",
            state="completed",
            seq=5,
            progress={
                "frames_done": 220,
                "frames_total": 220,
                "fps": 14.2,
                "eta_s": 0.0,
            },
        )


def _make_active(root: Path) -> Status:
    return make_recording(
        root,
        ACTIVE_ID,
        name="dashcam.mp4",
        state="processing",
        progress={"frames_done": 0, "frames_total": 10**7, "fps": 14.2, "eta_s": 60.0},
    )


def _start_baseline(
    script: str, log: Path, *options: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `bench/<script>` on a free port; return it once /healthz answers."""
    port = free_port()
    command = [sys.executable, str(REPO / "bench" / script), "--port", str(port)]
    with log.open("ab") as handle:
        proc = subprocess.Popen(
            [*command, *options], stdout=handle, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{script} did not answer:\n{log.read_text()}")


def _start(
    tmp: Path, step_ms: int, args: argparse.Namespace, workers: Workers
) -> Environment:
    root = tmp / "recordings"
    root.mkdir()
    _seed_recordings(root, args.history)
    # Production's reconciliation interval (the tests' helper uses 1 s).
    server = start_server(
        root,
        tmp / "server.log",
        SIGNWATCH_RECONCILE_S="5",
        SIGNWATCH_WATCH_STEP_MS=str(step_ms),
    )
    # Created after start-up: a `processing` recording found at start would be
    # recovered by the job runner.
    active = _make_active(root)
    awatch_root = tmp / "awatch-recordings"
    awatch_active = _make_active(awatch_root)
    awatch_proc, awatch_url = _start_baseline(
        "awatch_broadcast.py", tmp / "awatch.log",
        "--root", str(awatch_root), "--step-ms", str(step_ms),
    )  # fmt: skip
    bare_proc, bare_url = _start_baseline("bare_broadcast.py", tmp / "bare.log")
    time.sleep(1.0)  # let the servers settle before the idle CPU is read
    return Environment(
        step_ms, server,
        awatch_proc, awatch_url, StatusWriter(awatch_root, awatch_active),
        bare_proc, bare_url, BareTrigger(int(bare_url.rsplit(":", 1)[1])),
        StatusWriter(root, active), workers,
    )  # fmt: skip


def _stop(env: Environment) -> None:
    for proc in (env.awatch_proc, env.bare_proc):
        proc.terminate()
        proc.wait(10)
    env.server.stop()


class OtherLoad:
    """CPU time the rest of the host used while the bench ran.

    The host's busy time (/proc/stat) less this process's and its waited-for
    children's: exact even for processes that start or end meanwhile.
    """

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.busy = self._busy()
        self.own = self._own()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + t.irq + t.softirq)

    @staticmethod
    def _own() -> float:
        usages = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, usages))

    def per_minute(self) -> float:
        """CPU-seconds per minute; call once every child has ended."""
        other = self._busy() - self.busy - (self._own() - self.own)
        return other / (time.monotonic() - self.start) * 60


# Report.


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def ratio(a: float, b: float) -> str:
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"


def _pair(latencies: Latencies) -> str:
    return f"{ms(latencies.p(50))} / {ms(latencies.p(99))}"


def latency_table(results: list[Result], rounds: int) -> str:
    lines = [
        f"Push latency, {rounds} rounds per server (ms; ours and awatch-bare: from os.replace, bare: from the trigger POST)",
        "",
        "| N | ours all-N p50 / p99 | awatch-bare all-N p50 / p99 "
        "| bare all-N p50 / p99 | ours/bare p50 | ours/bare p99 "
        "| ours/awatch p50 | ours/awatch p99 | ours per-client p50 / p99 "
        "| awatch-bare per-client p50 / p99 | bare per-client p50 / p99 "
        "| missed (ours/awatch/bare) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        o, a, b = r.all_n["ours"], r.all_n["awatch"], r.all_n["bare"]
        missed = "/".join(str(r.each[g].missed) for g in GROUPS)
        lines.append(
            f"| {r.clients} | {_pair(o)} | {_pair(a)} | {_pair(b)} "
            f"| {ratio(o.p(50), b.p(50))} | {ratio(o.p(99), b.p(99))} "
            f"| {ratio(o.p(50), a.p(50))} | {ratio(o.p(99), a.p(99))} "
            f"| {_pair(r.each['ours'])} | {_pair(r.each['awatch'])} "
            f"| {_pair(r.each['bare'])} | {missed} |"
        )
    return "\n".join(lines)


def load_table(results: list[Result], duration: float) -> str:
    lines = [
        f"Under a {WRITER_HZ:g} Hz progress writer for {duration:g} s: freshness of each "
        f"write as each client saw it (ms), and server CPU-seconds per minute",
        "",
        "| N | push fresh p50 / p99 / mean | reload fresh p50 / p99 / mean "
        "| reload all-N p50 / p99 | reload/ours freshness (mean) "
        "| CPU s/min ours | CPU s/min reload | CPU ours/reload "
        "| CPU s/min ours, N clients, no writes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        pf, rf = r.push_fresh, r.reload_fresh
        lines.append(
            f"| {r.clients} | {ms(pf.p(50))} / {ms(pf.p(99))} / {ms(pf.mean)} "
            f"| {ms(rf.p(50))} / {ms(rf.p(99))} / {ms(rf.mean)} "
            f"| {ms(r.reload_fresh_all.p(50))} / {ms(r.reload_fresh_all.p(99))} "
            f"| {ratio(rf.mean, pf.mean)} "
            f"| {r.cpu_ours:.2f} | {r.cpu_reload:.2f} | {ratio(r.cpu_ours, r.cpu_reload)} "
            f"| {r.cpu_idle:.2f} |"
        )
    return "\n".join(lines)


def idle_table(runs: list[StepRun], seconds: float) -> str:
    lines = [
        f"Idle: CPU-seconds per minute over {seconds:g} s, no clients, no writes",
        "",
        "| watch step (ms) | ours | awatch-bare | bare |",
        "|---:|---:|---:|---:|",
    ]
    for run in runs:
        cpu = run.idle_cpu
        lines.append(
            f"| {run.step_ms} | {cpu['ours']:.2f} | {cpu['awatch']:.2f} "
            f"| {cpu['bare']:.2f} |"
        )
    return "\n".join(lines)


def sweep_table(runs: list[StepRun], args: argparse.Namespace) -> str:
    lines = [
        f"Watch step sweep: all-N latency over {args.rounds} rounds per server (ms), "
        f"and ours under a {WRITER_HZ:g} Hz writer for {args.duration:g} s",
        "",
        "| step (ms) | N | ours p50 / p99 | awatch-bare p50 / p99 | bare p50 / p99 "
        "| ours/awatch p50 / p99 | ours/bare p50 / p99 "
        "| push fresh p50 / p99 / mean | CPU s/min ours @4 Hz "
        "| CPU s/min ours, N clients, no writes | CPU s/min ours, idle "
        "| CPU s/min reload @4 Hz | reload/ours freshness (mean) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for r in run.results:
            o, a, b = r.all_n["ours"], r.all_n["awatch"], r.all_n["bare"]
            pf = r.push_fresh
            lines.append(
                f"| {run.step_ms} | {r.clients} | {_pair(o)} | {_pair(a)} "
                f"| {_pair(b)} "
                f"| {ratio(o.p(50), a.p(50))} / {ratio(o.p(99), a.p(99))} "
                f"| {ratio(o.p(50), b.p(50))} / {ratio(o.p(99), b.p(99))} "
                f"| {ms(pf.p(50))} / {ms(pf.p(99))} / {ms(pf.mean)} "
                f"| {r.cpu_ours:.2f} | {r.cpu_idle:.2f} "
                f"| {run.idle_cpu['ours']:.2f} | {r.cpu_reload:.2f} "
                f"| {ratio(r.reload_fresh.mean, pf.mean)} |"
            )
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def targets(results: list[Result]) -> str:
    """The targets each result can be judged on (reload ones only when measured)."""
    lines = []
    for r in (r for r in results if r.clients == 100):
        p99 = r.all_n["ours"].p(99)
        lines.append(
            f"- step {r.step_ms} ms: all-N p99 under 50 ms at N=100: {ms(p99)} ms, "
            f"{_verdict(p99 < 0.050)}"
        )
    for r in results:
        p50, p99 = r.ratio("bare", 50), r.ratio("bare", 99)
        line = (
            f"- step {r.step_ms} ms, N={r.clients}: ours/bare all-N p50 {p50:.2f}x, "
            f"p99 {p99:.2f}x (<= 1.2x: {_verdict(p50 <= 1.2 and p99 <= 1.2)}); "
            f"ours/awatch-bare p50 {r.ratio('awatch', 50):.2f}x, "
            f"p99 {r.ratio('awatch', 99):.2f}x (no target)"
        )
        if r.polls:
            fresh = r.reload_fresh.mean / r.push_fresh.mean
            line += (
                f"; reload/ours freshness {fresh:.1f}x "
                f"(>= 20x: {_verdict(fresh >= 20)}); CPU {r.cpu_ours:.2f} vs "
                f"{r.cpu_reload:.2f} s/min (less: {_verdict(r.cpu_ours < r.cpu_reload)})"
            )
        lines.append(line)
    costs = [c for r in results for c in r.trigger_cost]
    lines.append(
        f"- bare trigger cost (POST sent -> server calls emit): median {ms(percentile(costs, 50))} ms, "
        "included in the bare latencies"
    )
    return "Targets\n\n" + "\n".join(lines)


def machine_notes(load_before: tuple[float, ...], other_cpu: float) -> str:
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in (
            "python-socketio",
            "python-engineio",
            "uvicorn",
            "websockets",
            "aiohttp",
            "watchfiles",
            "uvloop",
        )
    )
    load_after = os.getloadavg()
    cpus = os.cpu_count() or 1
    return (
        f"Machine: {platform.platform()}, {cpus} CPUs, Python "
        f"{platform.python_version()}; {versions}. Load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f}. Processes outside the "
        f"bench used {other_cpu:.1f} CPU-s per minute of the {60 * cpus} the CPUs "
        "offer during the run."
    )


# Entry point.


def _ints(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clients", type=_ints, help="client counts (default 1,100,1000; sweep 1,100)"
    )
    parser.add_argument(
        "--rounds", type=int, default=40, help="latency rounds per server and N"
    )
    parser.add_argument(
        "--gap", type=float, default=0.3, help="seconds between rounds (>= 0.3)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=20.0,
        help="seconds of 4 Hz writes per load phase",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=20.0,
        help="seconds of idle CPU reading (no clients, no writes) per server start",
    )
    parser.add_argument(
        "--step-ms",
        type=int,
        default=10,
        help="watch debounce and step of ours (SIGNWATCH_WATCH_STEP_MS) and awatch-bare",
    )
    parser.add_argument(
        "--steps",
        type=_ints,
        default=[],
        help="sweep these watch steps instead, e.g. 10,5,2 (no reload phase)",
    )
    parser.add_argument(
        "--with-reload",
        action="store_true",
        help="run the reload phase in a sweep too",
    )
    parser.add_argument("--procs", type=int, default=8, help="client worker processes")
    parser.add_argument(
        "--history",
        type=int,
        default=10,
        help="completed recordings besides the active one",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N=1,20, 6 rounds, 4 s load and idle phases, 2 worker processes",
    )
    args = parser.parse_args(argv)
    if args.clients is None:
        args.clients = [1, 100] if args.steps else [1, 100, 1000]
    if args.quick:
        args.clients, args.rounds, args.procs = [1, 20], 6, 2
        args.duration = args.idle = 4.0
    if args.gap < 0.3:
        parser.error(
            f"--gap must be at least 0.3 s so coalescing never delays a round, got {args.gap!r}"
        )
    for step in args.steps or [args.step_ms]:
        if not 1 <= step <= 1000:
            parser.error(f"a watch step must be in 1..1000 ms, got {step!r}")
    return args


def _report(runs: list[StepRun], args: argparse.Namespace) -> str:
    results = [r for run in runs for r in run.results]
    if args.steps:
        tables = [sweep_table(runs, args), idle_table(runs, args.idle)]
    else:
        tables = [
            latency_table(results, args.rounds),
            load_table(results, args.duration),
            idle_table(runs, args.idle),
        ]
    return "\n\n".join([*tables, targets(results)])


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr
    )
    raise_fd_limit()
    load_before = os.getloadavg()
    other = OtherLoad()
    workers = Workers(args.procs)
    try:
        runs = [run_step(step, args, workers) for step in args.steps or [args.step_ms]]
    finally:
        workers.close()
    other_cpu = other.per_minute()
    print(_report(runs, args))
    print()
    print(machine_notes(load_before, other_cpu))


if __name__ == "__main__":
    main()
