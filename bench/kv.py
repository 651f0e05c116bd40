"""What one JetStream KV operation costs here, in CPU of the client and of nats-server together.

    uv run python bench/kv.py [--ops 3000] [--rounds 3]

A local nats-server (file storage, as the services use it) and one bucket of each kind: reads through
the JetStream API (nats-py's default for a bucket it creates) and direct gets (what
``topology.open_bucket`` makes every bucket allow).  Rounds alternate between the two; each figure is
the median over rounds of (client + server CPU) / operations, as wall time per operation says little on
a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import psutil
from nats.js.api import KeyValueConfig, StorageType

from showroom.cli.stack import Stack, StackConfig

VALUE = b'{"state": "queued", "reason": null, "parent": "seed"}'


async def cpu_per_op(op: Callable[[int], Awaitable[object]], ops: int, server: psutil.Process) -> tuple[float, float]:
    """(client CPU, server CPU) per operation, in microseconds."""
    me = psutil.Process()
    for i in range(200):
        await op(i)
    c0, s0 = me.cpu_times(), server.cpu_times()
    for i in range(ops):
        await op(i)
    c1, s1 = me.cpu_times(), server.cpu_times()
    client = (c1.user + c1.system - c0.user - c0.system) / ops * 1e6
    return client, (s1.user + s1.system - s0.user - s0.system) / ops * 1e6


async def main(ops: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        stack = Stack(StackConfig.ephemeral(Path(root), api_key=secrets.token_urlsafe(24), with_demo=False))
        stack.logs.mkdir(parents=True, exist_ok=True)
        await stack.start_nats()
        try:
            nc = await nats.connect(stack.config.nats_url)
            js = nc.jetstream()
            buckets = {
                direct: await js.create_key_value(
                    KeyValueConfig(bucket=f"direct_{direct}".lower(), storage=StorageType.FILE, direct=direct)
                )
                for direct in (False, True)
            }
            for kv in buckets.values():
                for i in range(500):
                    await kv.put(f"k.{i}", VALUE)
            server = psutil.Process(stack.procs["nats"].pid)
            results: dict[str, list[float]] = {}
            for _ in range(rounds):
                for direct, kv in buckets.items():
                    kind = "direct get" if direct else "API get"
                    for name, op in (
                        (f"{kind:10} ", lambda i, kv=kv: kv.get(f"k.{i % 500}")),
                        (f"put ({kind})", lambda i, kv=kv: kv.put(f"k.{i % 500}", VALUE)),
                    ):
                        client, srv = await cpu_per_op(op, ops, server)
                        results.setdefault(name, []).append(client + srv)
                        results.setdefault(name + " client", []).append(client)
            await nc.close()
        finally:
            await stack.stop()
    print(f"CPU per KV operation (client + nats-server), median of {rounds} rounds of {ops}:")
    for name in sorted(k for k in results if not k.endswith(" client")):
        total, client = statistics.median(results[name]), statistics.median(results[name + " client"])
        print(f"  {name:18} {total:5.0f} us  (client {client:4.0f}, server {total - client:4.0f})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    asyncio.run(main(args.ops, args.rounds))
    print(f"({time.perf_counter() - t0:.0f} s)")
