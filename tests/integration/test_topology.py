"""Buckets against a real nats-server: every one allows direct gets, including one made before that."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js.api import KeyValueConfig

from showroom.common.events import new_id
from showroom.common.topology import open_bucket


async def test_a_new_bucket_allows_direct_gets(nc: Client) -> None:
    js = nc.jetstream()
    kv, created = await open_bucket(js, KeyValueConfig(bucket=f"direct_{new_id()[:8]}"))
    assert created
    assert (await js.stream_info(f"KV_{kv._name}")).config.allow_direct
    await kv.put("k", b"v")
    assert (await kv.get("k")).value == b"v"


async def test_a_bucket_made_without_direct_gets_is_switched_over_keeping_its_values(nc: Client) -> None:
    js = nc.jetstream()
    name = f"legacy_{new_id()[:8]}"
    old = await js.create_key_value(KeyValueConfig(bucket=name, history=3))  # nats-py's default: no direct gets
    assert not (await js.stream_info(f"KV_{name}")).config.allow_direct
    await old.put("k", b"1")
    await old.put("k", b"2")

    kv, created = await open_bucket(js, KeyValueConfig(bucket=name))
    assert not created
    info = await js.stream_info(f"KV_{name}")
    assert info.config.allow_direct
    assert info.config.max_msgs_per_subject == 3  # the rest of its config is kept
    assert kv._direct  # reads through this handle are direct gets
    entry = await kv.get("k")
    assert (entry.value, entry.revision) == (b"2", 2)

    again, created = await open_bucket(js, KeyValueConfig(bucket=name))  # idempotent
    assert not created and again._direct
