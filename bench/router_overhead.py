"""Router overhead: the edge router side by side with Debian's nginx as a plain reverse proxy.

    .venv/bin/python -m bench.router_overhead [--quick] [--rounds 3] [--json FILE]

One edge node (ap-northeast-2, the geo-hello app) with, in front of it, an ``edge-router``
(``--wan off``) and an nginx (1 worker, upstream keep-alive 64, HTTP/1.1 upstream,
``X-Forwarded-For`` appended, access log off, and no cap on the requests a keep-alive
connection carries on either side: nginx closes one after 1,000 by default, the router
never); all real processes on loopback, in one run:

* added latency at light load (budget: router p50 <= 200 µs over calling the node
  directly): ``wrk -t1 -c1`` against the node, through the router and through nginx;
* throughput (budget: router >= 0.8x nginx on ``/hello``; ``/hello-fast`` reported):
  ``wrk -t1 -c50``, through nginx and through the router (and the node alone, for scale);
* resilience (budgets: < 0.5% failed requests; the dead node gets no request 2 s after
  the kill): a second router in front of two nodes of the region (``--health-interval
  0.5``), 200 requests/s paced from 32 simulated South Korean clients, and one node
  killed with SIGKILL after 2 s.

Every throughput figure is the median of ``--rounds`` interleaved rounds (the order of the
targets rotates each round), each target warmed for 2 s first: the machine is shared and
noisy, so the peers are measured in turns, never one long block each. Latency runs are
1 s each, three times as many rounds, and the added latency is the median of the
per-round differences. Exit status 1 when a budget is missed, 2 when a peer tool is not
installed; ``--keep DIR`` keeps the processes' logs and nginx's config there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from bench.edge_throughput import wait_until_serving
from bench.harness import REPO_ROOT, PeerMissingError, WrkResult, free_port, require_tool, run_wrk
from simulator.errors import SimulatorError
from simulator.supervisor import ChildSpec, RunningChild, Supervisor, tail

WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
APP = REPO_ROOT / "handlers" / "geo-hello" / "app.toml"
REGION = "ap-northeast-2"
NGINX_INSTALL = "apt-get install -y nginx"
NGINX_DEBIAN = Path("/usr/sbin/nginx")  # not on a non-root user's PATH on Debian

ADDED_LATENCY_BUDGET_US = 200.0
THROUGHPUT_BUDGET = 0.8  # router / nginx requests/s on /hello
FAILURE_BUDGET_PCT = 0.5
STOP_BUDGET_S = 2.0

# Simulated clients in South Korea (the world gives KR the loopback block 127.1.0.0/16): the
# router sees 32 distinct, located peers and spreads them over the region's two nodes.
CLIENT_ADDRESSES = tuple(f"127.1.0.{i}" for i in range(1, 33))
ROUTE_NODE = re.compile(r"node=([^;]+)")
STATUS_POLL_S = 0.05
# Light-load latency is measured in many short interleaved rounds and the added latency is the
# median of the per-round differences: a neighbour's burst then hits one pair, not a whole side.
LATENCY_ROUNDS_PER_ROUND = 3

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream edge {{
        server {upstream};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://edge;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    rounds: int
    latency_s: float  # each wrk -c1 run; LATENCY_ROUNDS_PER_ROUND of them per round
    throughput_s: float  # each wrk -c50 run
    warmup_s: float
    resilience_s: float
    kill_at_s: float
    rate: float  # paced requests/s in the resilience run


FULL = Settings(
    rounds=3, latency_s=1, throughput_s=4, warmup_s=2, resilience_s=6, kill_at_s=2, rate=200
)  # fmt: skip
QUICK = Settings(
    rounds=1, latency_s=1, throughput_s=2, warmup_s=1, resilience_s=3, kill_at_s=1, rate=200
)  # fmt: skip


@dataclass(slots=True, kw_only=True)
class Series:
    """Repeated wrk runs of one target on one path."""

    runs: list[WrkResult] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(run.requests_per_second for run in self.runs)

    @property
    def p50_us(self) -> float:
        return statistics.median(run.latency_p50_ms for run in self.runs) * 1000

    @property
    def p99_us(self) -> float:
        return statistics.median(run.latency_p99_ms for run in self.runs) * 1000

    @property
    def failures(self) -> int:
        return sum(run.errors + run.non_2xx for run in self.runs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One paced request of the resilience run; times in seconds from the run's start."""

    sent: float
    done: float
    status: int | None  # None: an exception
    node: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusPoll:
    at: float
    requests_total: dict[str, int]
    routable: dict[str, bool]


@dataclass(slots=True, kw_only=True)
class Resilience:
    samples: list[Sample]
    polls: list[StatusPoll]
    victim: str
    survivor: str
    kill_at: float
    victim_share_before: float
    retries: float  # the router's own count of requests it retried on the next node
    upstream_failures: float  # and of attempts on the dead node that failed

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    @property
    def failure_pct(self) -> float:
        return 100 * len(self.failed) / max(1, len(self.samples))

    @property
    def last_answer_from_victim_s(self) -> float:
        """Client view: the last answer that came from the dead node, after the kill (0: none)."""
        after = [
            s.done - self.kill_at for s in self.samples if s.node == self.victim and s.done > self.kill_at
        ]
        return max(after, default=0.0)

    @property
    def last_attempt_on_victim_s(self) -> float | None:
        """Router view: when the dead node's request count stopped growing, from its
        ``/_router/status`` (an upper bound, to one poll interval). None: never polled."""
        after = [p for p in self.polls if p.at >= self.kill_at]
        if not after:
            return None
        final = after[-1].requests_total.get(self.victim, 0)
        settled = next(p for p in after if p.requests_total.get(self.victim, 0) == final)
        return settled.at - self.kill_at

    @property
    def unroutable_after_s(self) -> float | None:
        """When ``/_router/status`` first showed the dead node as not routable."""
        return next(
            (
                p.at - self.kill_at
                for p in self.polls
                if p.at >= self.kill_at and not p.routable.get(self.victim)
            ),
            None,
        )

    @property
    def stop_s(self) -> float:
        """Time from the kill until no more requests went to the dead node (both views)."""
        router_view = self.last_attempt_on_victim_s
        return max(self.last_answer_from_victim_s, router_view if router_view is not None else float("inf"))


def edge_node_spec(name: str, node_id: str, tmp: Path) -> ChildSpec:
    return ChildSpec(
        name=name,
        argv=(
            sys.executable, "-m", "edge_node", "--workers", "1", "--app", str(APP), "--region", REGION,
            "--node-id", node_id, "--world", str(WORLD), "--data-dir", str(tmp / node_id),
            "--geo-cache-dir", str(tmp / "geo"), "--trusted-proxy", "127.0.0.1/32",
            "--port", "0", "--log-level", "warning",
        ),
    )  # fmt: skip


def router_spec(name: str, nodes: Sequence[RunningChild], tmp: Path, *extra: str) -> ChildSpec:
    edges: list[str] = []
    for index, node in enumerate(nodes):
        node_id = f"{REGION}-{'abcdefgh'[index]}"
        edges += ["--edge", f"{REGION}/{node_id}={node.report.addresses['http']}"]
    return ChildSpec(
        name=name,
        argv=(
            sys.executable, "-m", "router", "--world", str(WORLD), "--port", "0", "--wan", "off",
            *edges, "--geo-cache-dir", str(tmp / "geo"), "--log-level", "warning", *extra,
        ),
    )  # fmt: skip


def nginx_binary() -> str:
    if NGINX_DEBIAN.exists():
        return str(NGINX_DEBIAN)
    return require_tool("nginx", NGINX_INSTALL)


async def start_nginx(workdir: Path, upstream_url: str) -> tuple[asyncio.subprocess.Process, str]:
    """nginx (daemon off) proxying to ``upstream_url``; its files all live in ``workdir``."""
    binary = nginx_binary()
    port = free_port()
    conf = _write_nginx_conf(workdir, upstream_url.removeprefix("http://").rstrip("/"), port)
    process = await asyncio.create_subprocess_exec(
        binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_serving(url + "/healthz", timeout_s=10)
    except TimeoutError:
        await stop_process(process)
        raise BenchFailedError(f"nginx did not serve {url}:\n{tail(workdir / 'error.log')}") from None
    return process, url


def _write_nginx_conf(workdir: Path, upstream: str, port: int) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, upstream=upstream, port=port))
    return conf


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = 5.0) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


class BenchFailedError(RuntimeError):
    """A process under test died or answered nothing: no figure can be given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Watched:
    """A process under test, checked whenever wrk cannot use it."""

    name: str
    process: asyncio.subprocess.Process
    log: Path


async def _wrk(url: str, *, connections: int, seconds: float, watched: Sequence[Watched]) -> WrkResult:
    try:
        return await run_wrk(url, connections=connections, seconds=seconds)
    except ValueError as exc:
        dead = [w for w in watched if w.process.returncode is not None]
        detail = "; ".join(f"{w.name} exited with status {w.process.returncode}: {tail(w.log)}" for w in dead)
        raise BenchFailedError(
            f"wrk could not measure {url}: {exc}\n{detail or 'every process is alive'}"
        ) from exc


async def measure_overhead(
    settings: Settings, tmp: Path
) -> tuple[dict[str, Series], dict[str, dict[str, Series]]]:
    """Light-load latency (per target) and throughput (per path, per target)."""
    latency: dict[str, Series] = {}
    throughput: dict[str, dict[str, Series]] = {}
    async with Supervisor(tmp / "run-overhead") as supervisor:
        node = await supervisor.start(edge_node_spec("edge-node", f"{REGION}-a", tmp))
        router = await supervisor.start(router_spec("edge-router", [node], tmp))
        nginx, nginx_url = await start_nginx(tmp / "nginx", node.report.addresses["http"])
        watched = (
            Watched(name="edge node", process=node.process, log=node.log_path),
            Watched(name="router", process=router.process, log=router.log_path),
            Watched(name="nginx", process=nginx, log=tmp / "nginx" / "error.log"),
        )
        try:
            bases = {
                "edge node (direct)": node.report.addresses["http"],
                "nginx -> node": nginx_url,
                "router -> node": router.report.addresses["http"],
            }
            for base in bases.values():
                await wait_until_serving(base + "/hello")
            for name, base in bases.items():
                latency[name] = Series()
                await _wrk(base + "/hello", connections=50, seconds=settings.warmup_s, watched=watched)
            for round_no in range(settings.rounds * LATENCY_ROUNDS_PER_ROUND):
                for name in _rotated(list(bases), round_no):
                    result = await _wrk(
                        bases[name] + "/hello", connections=1, seconds=settings.latency_s, watched=watched
                    )
                    latency[name].runs.append(result)
                    _progress(f"latency  /hello  {name:<20} p50 {result.latency_p50_ms * 1000:8.0f} µs")
            for path in ("/hello", "/hello-fast"):
                series = throughput[path] = {name: Series() for name in bases}
                for base in bases.values():
                    await _wrk(base + path, connections=50, seconds=settings.warmup_s, watched=watched)
                for round_no in range(settings.rounds):
                    for name in _rotated(list(bases), round_no):
                        result = await _wrk(
                            bases[name] + path, connections=50, seconds=settings.throughput_s, watched=watched
                        )
                        series[name].runs.append(result)
                        _progress(f"throughput {path:<12} {name:<20} {result.requests_per_second:8.0f} req/s")
        finally:
            await stop_process(nginx)
    return latency, throughput


def _rotated(names: list[str], shift: int) -> list[str]:
    shift %= len(names)
    return names[shift:] + names[:shift]


def _progress(message: str) -> None:
    print(f"  {message}", flush=True)


async def measure_resilience(settings: Settings, tmp: Path) -> Resilience:
    async with Supervisor(tmp / "run-resilience") as supervisor:
        nodes = await supervisor.start_group(
            [edge_node_spec(f"edge-node-{x}", f"{REGION}-{x}", tmp) for x in ("a", "b")]
        )
        router = await supervisor.start(
            router_spec("edge-router-2", nodes, tmp, "--health-interval", "0.5")
        )  # fmt: skip
        node_ids = {f"{REGION}-{x}": child for x, child in zip("ab", nodes, strict=True)}
        base = router.report.addresses["http"]
        url = base + "/hello"
        await wait_until_serving(url)
        sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=0))
            for address in CLIENT_ADDRESSES
        ]
        try:
            # Warm every client's connection (and the router's pools) before the clock starts.
            await asyncio.gather(*(_one(s, url, 0.0) for s in sessions for _ in range(2)))
            return await _paced_run(settings, sessions, url, base, node_ids)
        finally:
            await asyncio.gather(*(session.close() for session in sessions))


async def _paced_run(
    settings: Settings,
    sessions: list[aiohttp.ClientSession],
    url: str,
    base: str,
    node_ids: dict[str, RunningChild],
) -> Resilience:
    loop = asyncio.get_running_loop()
    start = loop.time()
    polls: list[StatusPoll] = []
    stop_polling = asyncio.Event()
    poller = asyncio.create_task(_poll_status(base + "/_router/status", start, polls, stop_polling))
    tasks: list[asyncio.Task[Sample]] = []
    total = round(settings.rate * settings.resilience_s)
    victim = ""
    kill_at = 0.0
    share = 0.0
    for index in range(total):
        due = index / settings.rate
        if not victim and due >= settings.kill_at_s:
            victim, share = _busiest(tasks, node_ids)
            os.kill(node_ids[victim].pid, signal.SIGKILL)
            kill_at = loop.time() - start
            _progress(f"resilience: killed {victim} (pid {node_ids[victim].pid}) at {kill_at:.3f} s")
        delay = start + due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(sessions[index % len(sessions)], url, start)))
    samples = list(await asyncio.gather(*tasks))
    await asyncio.sleep(0.5)  # a few more polls: the victim's count must have settled
    stop_polling.set()
    await poller
    retries, upstream_failures = await _router_counters(base + "/metrics", victim)
    await node_ids[victim].process.wait()
    survivor = next(node for node in node_ids if node != victim)
    return Resilience(
        samples=samples, polls=polls, victim=victim, survivor=survivor, kill_at=kill_at,
        victim_share_before=share, retries=retries, upstream_failures=upstream_failures,
    )  # fmt: skip


async def _router_counters(url: str, victim: str) -> tuple[float, float]:
    """``router_retries_total`` and the victim's ``router_upstream_failures_total`` (NaN: unreadable)."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return float("nan"), float("nan")
    retries = re.search(r"^router_retries_total (\S+)$", text, re.MULTILINE)
    failures = sum(
        float(match.group(1))
        for match in re.finditer(
            rf'^router_upstream_failures_total{{[^}}]*\bnode="{re.escape(victim)}"[^}}]*}} (\S+)$',
            text,
            re.MULTILINE,
        )
    )
    return (float(retries.group(1)) if retries else float("nan")), failures


def _busiest(tasks: list[asyncio.Task[Sample]], node_ids: dict[str, RunningChild]) -> tuple[str, float]:
    """The node that served most of the answers so far (killing an idle node proves nothing)."""
    counts = dict.fromkeys(node_ids, 0)
    for task in tasks:
        if task.done() and (node := task.result().node) in counts:
            counts[node] += 1
    victim = max(counts, key=lambda node: (counts[node], node))
    return victim, counts[victim] / max(1, sum(counts.values()))


async def _one(session: aiohttp.ClientSession, url: str, start: float) -> Sample:
    loop = asyncio.get_running_loop()
    sent = loop.time() - start
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            await response.read()
            match = ROUTE_NODE.search(response.headers.get("x-edge-route", ""))
            return Sample(
                sent=sent, done=loop.time() - start, status=response.status,
                node=match.group(1) if match else None,
            )  # fmt: skip
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Sample(sent=sent, done=loop.time() - start, status=None, node=None, error=repr(exc))


async def _poll_status(url: str, start: float, polls: list[StatusPoll], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    status = await response.json()
            except (aiohttp.ClientError, TimeoutError):
                status = None
            if status is not None:
                nodes = [node for region in status["regions"] for node in region["nodes"]]
                polls.append(
                    StatusPoll(
                        at=loop.time() - start,
                        requests_total={n["node_id"]: int(n["requests_total"]) for n in nodes},
                        routable={n["node_id"]: bool(n["routable"]) for n in nodes},
                    )
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATUS_POLL_S)


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def report(
    latency: dict[str, Series],
    throughput: dict[str, dict[str, Series]],
    resilience: Resilience,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> tuple[dict[str, object], list[str]]:
    missed: list[str] = []
    direct = latency["edge node (direct)"]
    rounds = len(direct.runs)
    print(f"\nlatency at light load (wrk -t1 -c1, /hello), medians of {rounds} interleaved 1-target runs")
    print(f"  {'target':<22}{'p50 µs':>10}{'p99 µs':>10}{'added p50 µs':>14}{'errors':>8}")
    for name, series in latency.items():
        added = "" if series is direct else f"{_added_us(series, direct):+.0f}"
        print(f"  {name:<22}{series.p50_us:>10.0f}{series.p99_us:>10.0f}{added:>14}{series.failures:>8}")
    router_added = _added_us(latency["router -> node"], direct)
    nginx_added = _added_us(latency["nginx -> node"], direct)
    ok = router_added <= ADDED_LATENCY_BUDGET_US
    print(
        f"  router adds {router_added:.0f} µs p50 (budget <= {ADDED_LATENCY_BUDGET_US:.0f}): {_verdict(ok)}"
    )
    if not ok:
        missed.append("router added latency")
    ratios: dict[str, float] = {}
    print("\nthroughput (wrk -t1 -c50), medians")
    print(f"  {'path':<13}{'target':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for path, by_target in throughput.items():
        for name, series in by_target.items():
            print(
                f"  {path:<13}{name:<22}{series.rps:>10.0f}{series.p50_us / 1000:>9.2f}"
                f"{series.p99_us / 1000:>9.2f}{series.failures:>8}"
            )
        ratios[path] = by_target["router -> node"].rps / by_target["nginx -> node"].rps
    for path, ratio in ratios.items():
        if path == "/hello":
            ok = ratio >= THROUGHPUT_BUDGET
            print(
                f"  router / nginx on {path}: {ratio:.2f}x (budget >= {THROUGHPUT_BUDGET}x): {_verdict(ok)}"
            )
            if not ok:
                missed.append("router throughput vs nginx")
        else:
            print(f"  router / nginx on {path}: {ratio:.2f}x (reported, no budget)")
    r = resilience
    print(f"\nresilience: {len(r.samples)} requests paced over 2 nodes, {r.victim} killed (SIGKILL)")
    print(f"  {r.victim} served {100 * r.victim_share_before:.0f}% of the answers before the kill")
    print(
        f"  router: {r.upstream_failures:.0f} failed attempt(s) on {r.victim}, "
        f"{r.retries:.0f} request(s) retried on the next node"
    )
    fail_ok = r.failure_pct < FAILURE_BUDGET_PCT
    budget = f"budget < {FAILURE_BUDGET_PCT}%"
    print(f"  failed: {len(r.failed)} ({r.failure_pct:.2f}%, {budget}): {_verdict(fail_ok)}")
    for sample in r.failed[:5]:
        print(f"    at {sample.sent:.3f} s: status {sample.status} {sample.error or ''}")
    router_view = r.last_attempt_on_victim_s
    unroutable = r.unroutable_after_s
    print(f"  last answer from {r.victim} after the kill: +{r.last_answer_from_victim_s * 1000:.0f} ms")
    print(
        "  last request the router sent it (its /_router/status count settled): "
        + ("never polled" if router_view is None else f"+{router_view * 1000:.0f} ms")
        + f" (polled every {STATUS_POLL_S * 1000:.0f} ms)"
    )
    print("  marked not routable: " + ("never" if unroutable is None else f"+{unroutable * 1000:.0f} ms"))
    stop_ok = r.stop_s < STOP_BUDGET_S
    print(
        f"  no more requests to the dead node after {r.stop_s:.2f} s (budget < {STOP_BUDGET_S:g} s): ", end=""
    )
    print(_verdict(stop_ok))
    if not fail_ok:
        missed.append("resilience failures")
    if not stop_ok:
        missed.append("time to stop sending to a dead node")
    before, after = load
    print(f"\nload average before: {_load(before)}; after: {_load(after)}")
    summary: dict[str, object] = {
        "latency": {name: _series_json(series) for name, series in latency.items()},
        "router_added_p50_us": router_added,
        "nginx_added_p50_us": nginx_added,
        "throughput": {
            path: {name: _series_json(series) for name, series in by_target.items()}
            for path, by_target in throughput.items()
        },
        "router_vs_nginx": ratios,
        "resilience": {
            "requests": len(r.samples),
            "failed": len(r.failed),
            "failure_pct": r.failure_pct,
            "victim": r.victim,
            "victim_share_before": r.victim_share_before,
            "router_failed_attempts_on_victim": r.upstream_failures,
            "router_retries": r.retries,
            "last_answer_from_victim_s": r.last_answer_from_victim_s,
            "last_attempt_on_victim_s": router_view,
            "unroutable_after_s": unroutable,
            "stop_s": r.stop_s,
        },
        "load_average": {"before": before, "after": after},
        "missed": missed,
    }
    return summary, missed


def _added_us(proxied: Series, direct: Series) -> float:
    """Median over rounds of (p50 through the proxy - p50 direct) in the same round, µs."""
    return statistics.median(
        (via.latency_p50_ms - own.latency_p50_ms) * 1000
        for via, own in zip(proxied.runs, direct.runs, strict=True)
    )


def _series_json(series: Series) -> dict[str, object]:
    return {
        "rps": series.rps, "p50_us": series.p50_us, "p99_us": series.p99_us,
        "runs": [asdict(run) for run in series.runs],
    }  # fmt: skip


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


async def measure(
    settings: Settings, workdir: Path
) -> tuple[dict[str, Series], dict[str, dict[str, Series]], Resilience]:
    nginx_binary()  # fail before starting anything when a peer is missing
    require_tool("wrk", "apt-get install -y wrk")
    latency, throughput = await measure_overhead(settings, workdir)
    resilience = await measure_resilience(settings, workdir)
    return latency, throughput, resilience


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.router_overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="one short round of each: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default: 3, quick: 1)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="work here (logs, configs) and keep it, not in a temp dir")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.rounds is not None:
        settings = Settings(**{**asdict(settings), "rounds": args.rounds})
    load_before = os.getloadavg()
    started = time.monotonic()
    print(
        f"router overhead: {settings.rounds} round(s), Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {_load(load_before)}",
        flush=True,
    )
    try:
        with contextlib.ExitStack() as stack:
            if args.keep is None:
                workdir = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecdn-bench-router-"))
                )
            else:
                workdir = args.keep.resolve()
                workdir.mkdir(parents=True, exist_ok=True)
            latency, throughput, resilience = asyncio.run(measure(settings, workdir))
    except PeerMissingError as exc:
        print(f"bench.router_overhead: {exc}", file=sys.stderr)
        return 2
    except (BenchFailedError, SimulatorError) as exc:
        print(f"bench.router_overhead: failed: {exc}", file=sys.stderr)
        return 1
    summary, missed = report(latency, throughput, resilience, (load_before, os.getloadavg()))
    print(f"took {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if missed:
        print(f"\nbudget missed: {', '.join(missed)}")
        return 1
    print("\nall budgets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
