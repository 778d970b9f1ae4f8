"""The port picking that scripts/cluster and the store fixtures rely on."""

from __future__ import annotations

import socket
from pathlib import Path

from robosync.server.processes import GRPC_OFFSET, free_port_pairs


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_port_pairs_lie_below_the_ephemeral_range_so_a_restart_finds_them_free() -> None:
    ports = free_port_pairs(4)
    assert len(set(ports)) == 4
    every = [q for p in ports for q in (p, p + GRPC_OFFSET)]
    assert len(set(every)) == 8
    assert all(q < _ephemeral_low() for q in every), every
    for q in every:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", q))
