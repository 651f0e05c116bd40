"""How test and bench stacks choose their ports."""

from __future__ import annotations

import socket
from pathlib import Path

from showroom.cli.stack import StackConfig, free_port


def test_one_process_never_hands_out_a_port_twice() -> None:
    # A stack asks for eight ports before any service binds one; drawn at random from ~22,000
    # ports, 2,000 draws would repeat one about 90 times over if nothing remembered them.
    ports = [free_port() for _ in range(2_000)]
    assert len(set(ports)) == len(ports)


def test_a_port_in_use_is_not_handed_out() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        taken = held.getsockname()[1]
        assert taken not in {free_port() for _ in range(500)}


def test_an_ephemeral_stack_has_distinct_ports(tmp_path: Path) -> None:
    config = StackConfig.ephemeral(tmp_path, api_key="k")
    ports = [config.nats_port, config.nats_monitor_port, config.demo_port, *config.ports.values()]
    assert len(set(ports)) == len(ports)
