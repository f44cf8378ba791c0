"""Hello-world throughput of an app after ``setup()``, against bare aiohttp (ratio table).

Each server runs in its own process (``web.run_app``), and the load comes from another
process: ``wrk`` when it is installed, else a small aiohttp-client load generator. Runs are
interleaved ``bare, variant, bare, variant, ...`` within each round, and each variant's run
is compared with the mean of the two bare runs around it; the table shows the median ratio
over the rounds. On a machine with two or more cores, servers are pinned to one core and the
load generator to another. Where Linux tells (``/proc/<pid>/schedstat``), the server's CPU
time per request is compared too: the same ratio, less disturbed by neighbours on a busy
machine. This prints figures; it never asserts.

    python -m bench.overhead [--rounds 7] [--duration 1] [--connections 64] [--python-load]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

import aiohttp_helpers as ah
from bench._harness import Server, median, module_args, pin, run_json, table

MODULE = "bench.overhead"

BODY = "Hello, World!"


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=BODY)


def bare() -> web.Application:
    app = web.Application()
    app.router.add_get("/", hello)
    return app


def noop_middleware() -> web.Application:
    """The floor for any middleware: aiohttp's own cost of running one that does nothing."""

    @web.middleware
    async def passthrough(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request)

    app = bare()
    app.middlewares.append(passthrough)
    return app


def with_setup() -> web.Application:
    app = bare()
    ah.setup(app)
    return app


def with_metrics() -> web.Application:
    """setup() and setup_metrics(): what the Prometheus extra adds per request."""
    from prometheus_client import CollectorRegistry

    from aiohttp_helpers.prometheus import setup_metrics

    app = with_setup()
    setup_metrics(app, registry=CollectorRegistry())
    return app


def with_tracing() -> web.Application:
    """setup() and setup_tracing() with OpenTelemetry's default (no-op) providers."""
    from aiohttp_helpers.opentelemetry import setup_tracing

    app = with_setup()
    setup_tracing(app)
    return app


def everything(receivers: bool) -> web.Application:
    app = bare()
    helpers = ah.setup(app, health="/health", drain_delay=0.0)

    @helpers.lifecycle.context(name="resource")
    async def resource(app: web.Application) -> AsyncIterator[None]:
        yield

    @helpers.lifecycle.on_startup(after="resource", timeout=5)
    async def warm(app: web.Application) -> None:
        pass

    if receivers:

        async def receiver(*args: object) -> None:
            pass

        for signal_ in helpers.signals:
            signal_.append(receiver)
    return app


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    build: Callable[[], web.Application]
    target: float | None


VARIANTS = [
    Variant("bare", "bare aiohttp", bare, None),
    Variant("noop", "a no-op middleware (reference)", noop_middleware, None),
    Variant("setup", "setup() with defaults", with_setup, 0.97),
    Variant("metrics", "setup() + setup_metrics()", with_metrics, 0.97 * 0.95),
    Variant("tracing", "setup() + setup_tracing(), no-op API", with_tracing, None),
    Variant(
        "no-receivers",
        "signals, no receivers (+health, hooks)",
        lambda: everything(receivers=False),
        0.97,
    ),
    Variant(
        "receivers",
        "one async receiver on each signal",
        lambda: everything(receivers=True),
        0.93,
    ),
]
BY_KEY = {v.key: v for v in VARIANTS}


# -- server process --------------------------------------------------------------------


def serve(key: str) -> None:
    """Serve variant ``key`` on a port of the kernel's choice, printed as the banner."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    web.run_app(BY_KEY[key].build(), sock=sock, print=None, access_log=None)


# -- load generators -------------------------------------------------------------------


def run_wrk(wrk: str, url: str, duration: int, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{duration}s", url],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=pin(1),
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk did not run cleanly:\n{out}")
    return float(rate.group(1)), int(count.group(1))


def run_python_load(url: str, duration: float, connections: int) -> tuple[float, int]:
    args = module_args(
        MODULE, "--load", url, "--duration", str(duration), "--connections", str(connections)
    )
    result = run_json(args, preexec_fn=pin(1))
    return float(result["rate"]), int(result["count"])


def python_load(url: str, duration: float, connections: int) -> None:
    import aiohttp

    async def main() -> tuple[float, int]:
        done = 0
        stop_at = time.monotonic() + duration
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < stop_at:
                    async with session.get(url) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"got {resp.status}")
                    done += 1

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(connections)))
            return done / (time.monotonic() - started), done

    rate, count = asyncio.run(main())
    print(json.dumps({"rate": rate, "count": count}))


# -- driver ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=1, help="seconds per run (wrk: whole)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--python-load", action="store_true", help="do not use wrk")
    parser.add_argument("--serve", choices=list(BY_KEY), help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument(
        "--variants", help="comma-separated keys to run (bare always runs): " + ",".join(BY_KEY)
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.load:
        python_load(args.load, args.duration, args.connections)
        return

    wrk = None if args.python_load else shutil.which("wrk")
    if wrk:
        version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split()
        generator = f"wrk {version[1] if len(version) > 1 else ''}".strip()

        def load(url: str) -> tuple[float, int]:
            return run_wrk(wrk, url, args.duration, args.connections)
    else:
        generator = "python aiohttp-client load generator (wrk not found)"

        def load(url: str) -> tuple[float, int]:
            return run_python_load(url, args.duration, args.connections)

    def measure(server: Server) -> tuple[float, float | None]:
        """Requests per second, and the server's CPU seconds per request."""
        cpu_before = server.cpu_seconds()
        rate, count = load(server.url + "/")
        cpu_after = server.cpu_seconds()
        if cpu_before is None or cpu_after is None or not count:
            return rate, None
        return rate, (cpu_after - cpu_before) / count

    def ratio(variant: float | None, before: float | None, after: float | None) -> float | None:
        if variant is None or before is None or after is None:
            return None
        return variant / ((before + after) / 2)

    chosen = set(args.variants.split(",")) | {"bare"} if args.variants else set(BY_KEY)
    variants = [v for v in VARIANTS if v.key in chosen]
    with contextlib.ExitStack() as stack:
        servers = {
            v.key: stack.enter_context(Server(module_args(MODULE, "--serve", v.key), cpu=0))
            for v in variants
        }
        for server in servers.values():  # warm up every process
            measure(server)
        others = [v for v in variants if v.key != "bare"]
        rates: dict[str, list[float]] = {v.key: [] for v in variants}
        ratios: dict[str, list[float]] = {v.key: [] for v in others}
        cpu_ratios: dict[str, list[float]] = {v.key: [] for v in others}
        started = time.monotonic()
        for round_ in range(args.rounds):
            order = others[round_ % len(others) :] + others[: round_ % len(others)]
            before, cpu_before = measure(servers["bare"])
            rates["bare"].append(before)
            for variant in order:
                rate, cpu = measure(servers[variant.key])
                after, cpu_after = measure(servers["bare"])
                rates[variant.key].append(rate)
                rates["bare"].append(after)
                ratios[variant.key].append(rate / ((before + after) / 2))
                # CPU per request: the bare server's over the variant's (higher is better).
                inverse = ratio(cpu, cpu_before, cpu_after)
                if inverse:
                    cpu_ratios[variant.key].append(1 / inverse)
                before, cpu_before = after, cpu_after
        elapsed = time.monotonic() - started

    cores = "server on CPU 0, load on CPU 1" if pin(0) else "no CPU pinning (one core)"
    print(f"hello-world overhead: {generator}, 1 thread, {args.connections} connections, "
          f"{args.duration:g} s per run, {args.rounds} rounds interleaved with bare runs "
          f"({elapsed:.0f} s; {cores})")  # fmt: skip
    print()
    rows: list[list[str]] = []
    for variant in variants:
        rate = median(rates[variant.key])
        if variant.key == "bare":
            rows.append([variant.label, f"{rate:,.0f}", "1.000", "", "", ""])
            continue
        values = ratios[variant.key]
        middle = median(values)
        cpu_values = cpu_ratios[variant.key]
        cpu_text = f"{median(cpu_values):.3f}" if cpu_values else "n/a"
        spread = f"{min(values):.3f}..{max(values):.3f}"
        goal = ""
        if variant.target is not None:
            verdict = "ok" if middle >= variant.target else "BELOW"
            goal = f">= {variant.target:.2f} {verdict}"
        rows.append([variant.label, f"{rate:,.0f}", f"{middle:.3f}", spread, cpu_text, goal])
    print(table(["variant", "req/s", "ratio", "min..max", "CPU ratio", "target"], rows))
    for key in ("metrics", "tracing"):
        if key not in ratios or "setup" not in ratios:
            continue
        setup_median = median(ratios["setup"])
        against = median(ratios[key]) / setup_median
        cpu_note = ""
        if cpu_ratios[key] and cpu_ratios["setup"]:
            cpu_against = median(cpu_ratios[key]) / median(cpu_ratios["setup"])
            cpu_note = f", CPU ratio {cpu_against:.3f}"
        goal = " (target >= 0.95)" if key == "metrics" else ""
        print(f"{BY_KEY[key].label} against setup() alone: {against:.3f}{cpu_note}{goal}")
    print()
    print("req/s and ratio: medians over the rounds; CPU ratio: bare CPU time per request")
    print("over the variant's (the throughput ratio of a saturated core, steadier on a busy host)")


if __name__ == "__main__":
    main()
