"""Benchmark the watcher-to-Socket.IO push against two baselines, in one run.

For each client count N it measures, and prints as Markdown tables:

- ours: a real signwatch server (`python -m server`, fake detector). A status
  file is replaced atomically (temp file, fsync, then the timed `os.replace`)
  and N real python-socketio clients (WebSocket) timestamp the `status` event.
  Latency = receipt - os.replace, per client and until all N have it.
- bare: `bare_broadcast.py`, a minimal python-socketio AsyncServer on uvicorn
  that broadcasts the same status dict when the bench POSTs it. Latency =
  receipt - the moment the bench sends the POST (the trigger). Rounds of ours
  and bare alternate, so background load hits both alike.
- reload: the old approach, N clients fetching `GET /status` (the rendered
  page) every 2 s at random phases. Latency = time of the first response whose
  rendered row (its `data-seq`) shows a write - the write's os.replace.

Latency rounds change only `progress` and leave `--gap` (>= 0.3 s) between
rounds, so the server's coalescing of progress-only changes (at most 4/s per
recording) never holds an event back. Then a writer bumps the recording's
progress 4 times a second for `--duration` seconds, once with the N push
clients connected and once with the N pollers, and the server's CPU time
(psutil, user + system) is read around each: CPU-seconds per minute, plus the
freshness of every write as each client saw it.

Clients run in `--procs` worker processes (`push_clients.py`), K clients per
asyncio loop; all times are `time.monotonic()`, one clock for the whole host.

Usage:
    .venv/bin/python bench/bench_push.py [--clients 1,100,1000] [--rounds 40]
    .venv/bin/python bench/bench_push.py --quick      # N=1,20; under a minute
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
    """Everything measured at one client count."""

    clients: int
    ours_all: Latencies = field(default_factory=Latencies)
    bare_all: Latencies = field(default_factory=Latencies)
    ours_each: Latencies = field(default_factory=Latencies)
    bare_each: Latencies = field(default_factory=Latencies)
    trigger_cost: list[float] = field(default_factory=list)
    push_fresh: Latencies = field(default_factory=Latencies)
    reload_fresh: Latencies = field(default_factory=Latencies)
    reload_fresh_all: Latencies = field(default_factory=Latencies)
    cpu_idle: float = math.nan
    cpu_ours: float = math.nan
    cpu_reload: float = math.nan
    polls: int = 0


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


def latency_rounds(
    result: Result,
    workers: Workers,
    writer: StatusWriter,
    bare: BareTrigger,
    rounds: int,
    gap: float,
) -> None:
    """Alternate push rounds on our server and on the bare one."""
    for _ in range(rounds):
        status = writer.next()
        t0 = writer.write(status)
        _record_round(
            result.ours_all,
            result.ours_each,
            wait_all(workers, "ours", status["seq"]),
            t0,
        )
        time.sleep(gap)

        status = writer.next()
        t0, t_send = bare.emit(status)
        result.trigger_cost.append(t_send - t0)
        _record_round(
            result.bare_all,
            result.bare_each,
            wait_all(workers, "bare", status["seq"]),
            t0,
        )
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
    return times.user + times.system


def push_load(
    result: Result,
    workers: Workers,
    writer: StatusWriter,
    server: LiveServer,
    duration: float,
) -> None:
    """Server CPU with the N push clients idle, then under the 4 Hz writer."""
    indices = range(len(workers.conns))
    workers.call({i: ("take", "ours") for i in indices})
    cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(duration / 2)
    cpu1, wall1 = cpu_seconds(server.proc.pid), time.monotonic()
    result.cpu_idle = (cpu1 - cpu0) / (wall1 - wall0) * 60
    cpu0, wall0 = cpu1, wall1
    writes = writer.run(duration)
    cpu1, wall1 = cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(1.0)
    clients = [
        c
        for answer in workers.call({i: ("take", "ours") for i in indices})
        for c in answer
    ]
    result.cpu_ours = (cpu1 - cpu0) / (wall1 - wall0) * 60
    _add_freshness(result.push_fresh, None, writes, clients)


def reload_load(
    result: Result,
    workers: Workers,
    writer: StatusWriter,
    server: LiveServer,
    duration: float,
) -> None:
    """The 4 Hz writer with N pollers of the rendered page: CPU and freshness."""
    warmup = RELOAD_PERIOD_S
    until = time.monotonic() + warmup + duration + RELOAD_PERIOD_S + 0.2
    counts = workers.split(result.clients)
    url = f"{server.url}/status"
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
    workers.send(commands)
    time.sleep(warmup)
    cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
    writes = writer.run(duration)
    cpu1, wall1 = cpu_seconds(server.proc.pid), time.monotonic()
    clients = [c for answer in workers.receive(list(commands)) for c in answer]
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
    result = Result(n)
    started = time.monotonic()
    connect(env.workers, "ours", env.server.url, n)
    connect(env.workers, "bare", env.bare_url, n)
    logger.info(
        "N=%d: connected 2 x %d clients in %.1f s", n, n, time.monotonic() - started
    )
    time.sleep(1.0)  # let the snapshots of the new clients go out
    latency_rounds(result, env.workers, env.writer, env.bare, args.rounds, args.gap)
    logger.info("N=%d: latency rounds done", n)
    push_load(result, env.workers, env.writer, env.server, args.duration)
    env.workers.call({i: ("close",) for i in range(len(env.workers.conns))})
    time.sleep(1.0)
    reload_load(result, env.workers, env.writer, env.server, args.duration)
    logger.info("N=%d: done in %.1f s", n, time.monotonic() - started)
    return result


# Set-up.


@dataclass
class Environment:
    """The servers, the writer and the client workers of one run."""

    server: LiveServer
    bare_proc: subprocess.Popen[bytes]
    bare_url: str
    bare: BareTrigger
    writer: StatusWriter
    workers: Workers


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


def _start_bare(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("ab") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "bench" / "bare_broadcast.py"),
                "--port",
                str(port),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
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
    raise RuntimeError(f"the bare server did not answer:\n{log.read_text()}")


def _start(tmp: Path, args: argparse.Namespace) -> Environment:
    root = tmp / "recordings"
    root.mkdir()
    _seed_recordings(root, args.history)
    # Production's reconciliation interval (the tests' helper uses 1 s).
    server = start_server(root, tmp / "server.log", SIGNWATCH_RECONCILE_S="5")
    # Created after start-up: a `processing` recording found at start would be
    # recovered by the job runner.
    active = make_recording(
        root,
        ACTIVE_ID,
        name="dashcam.mp4",
        state="processing",
        progress={"frames_done": 0, "frames_total": 10**7, "fps": 14.2, "eta_s": 60.0},
    )
    bare_proc, bare_url = _start_bare(tmp / "bare.log")
    workers = Workers(args.procs)
    time.sleep(0.5)
    return Environment(
        server, bare_proc, bare_url, BareTrigger(int(bare_url.rsplit(":", 1)[1])),
        StatusWriter(root, active), workers,
    )  # fmt: skip


def _stop(env: Environment) -> None:
    env.workers.close()
    env.bare_proc.terminate()
    env.bare_proc.wait(10)
    env.server.stop()


# Report.


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def ratio(a: float, b: float) -> str:
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"


def latency_table(results: list[Result], rounds: int) -> str:
    lines = [
        f"Push latency, {rounds} rounds per server (ms; ours: from os.replace, bare: from the trigger POST)",
        "",
        "| N | ours all-N p50 | ours all-N p99 | bare all-N p50 | bare all-N p99 "
        "| ours/bare p50 | ours/bare p99 | ours per-client p50 / p99 "
        "| bare per-client p50 / p99 | missed (ours/bare) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.clients} | {ms(r.ours_all.p(50))} | {ms(r.ours_all.p(99))} "
            f"| {ms(r.bare_all.p(50))} | {ms(r.bare_all.p(99))} "
            f"| {ratio(r.ours_all.p(50), r.bare_all.p(50))} "
            f"| {ratio(r.ours_all.p(99), r.bare_all.p(99))} "
            f"| {ms(r.ours_each.p(50))} / {ms(r.ours_each.p(99))} "
            f"| {ms(r.bare_each.p(50))} / {ms(r.bare_each.p(99))} "
            f"| {r.ours_each.missed}/{r.bare_each.missed} |"
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
        "| CPU s/min ours, no writes |",
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


def targets(results: list[Result]) -> str:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = ["Targets", ""]
    at_100 = [r for r in results if r.clients == 100]
    if at_100:
        p99 = at_100[0].ours_all.p(99)
        lines.append(
            f"- all-N p99 under 50 ms at N=100: {ms(p99)} ms, {verdict(p99 < 0.050)}"
        )
    for r in results:
        p50 = r.ours_all.p(50) / r.bare_all.p(50)
        p99 = r.ours_all.p(99) / r.bare_all.p(99)
        fresh = r.reload_fresh.mean / r.push_fresh.mean
        lines.append(
            f"- N={r.clients}: ours/bare all-N p50 {p50:.2f}x, p99 {p99:.2f}x "
            f"(<= 1.2x: {verdict(p50 <= 1.2 and p99 <= 1.2)}); "
            f"reload/ours freshness {fresh:.1f}x (>= 20x: {verdict(fresh >= 20)}); "
            f"CPU {r.cpu_ours:.2f} vs {r.cpu_reload:.2f} s/min "
            f"(less: {verdict(r.cpu_ours < r.cpu_reload)})"
        )
    costs = [c for r in results for c in r.trigger_cost]
    lines.append(
        f"- bare trigger cost (POST sent -> server calls emit): median {ms(percentile(costs, 50))} ms, "
        "included in the bare latencies"
    )
    return "\n".join(lines)


def machine_notes(load_before: tuple[float, ...]) -> str:
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
    return (
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {versions}. Load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f} (other jobs share the CPUs)."
    )


# Entry point.


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clients",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 100, 1000],
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
    parser.add_argument("--procs", type=int, default=8, help="client worker processes")
    parser.add_argument(
        "--history",
        type=int,
        default=10,
        help="completed recordings besides the active one",
    )
    parser.add_argument(
        "--quick", action="store_true", help="N=1,20, 6 rounds, 4 s load phases"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.rounds, args.duration, args.procs = [1, 20], 6, 4.0, 2
    if args.gap < 0.3:
        parser.error(
            f"--gap must be at least 0.3 s so coalescing never delays a round, got {args.gap!r}"
        )
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr
    )
    raise_fd_limit()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="signwatch-bench-") as tmp:
        env = _start(Path(tmp), args)
        try:
            results = [measure(n, args, env) for n in args.clients]
        finally:
            _stop(env)
    print(latency_table(results, args.rounds))
    print()
    print(load_table(results, args.duration))
    print()
    print(targets(results))
    print()
    print(machine_notes(load_before))


if __name__ == "__main__":
    main()
