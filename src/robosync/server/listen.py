"""The server's listening socket, bound before anything else happens at start-up."""

from __future__ import annotations

import errno
import socket


class PortUnavailable(Exception):
    """The address cannot be listened on; the message says which and why."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (the port is held from now on).

    ``serve`` binds first so that a port already in use is reported before
    the one-time first token is minted and printed.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PortUnavailable(f"cannot listen on {host}:{port}: {e.strerror}") from e
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"port {port} on {host} is already in use (another robosync-server?); "
                "stop that process or choose another port with --port (env ROBOSYNC_PORT)"
            ) from e
        raise PortUnavailable(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.set_inheritable(True)
    return sock
