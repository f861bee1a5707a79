"""Make every non-Unix socket connection fail in this Python process.

`allow_loopback()` lets one test (the FTP scanner test) talk to a server it
runs itself on 127.0.0.1; every other address stays blocked even then.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any


class NetworkBlocked(OSError):
    pass


_loopback_allowed = False


@contextlib.contextmanager
def allow_loopback() -> Iterator[None]:
    global _loopback_allowed
    _loopback_allowed = True
    try:
        yield
    finally:
        _loopback_allowed = False


def _is_loopback(address: Any) -> bool:
    try:
        return isinstance(address, tuple) and ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return False


def install() -> Callable[[], None]:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_getaddrinfo = socket.getaddrinfo

    def _check(sock: socket.socket, address: Any = None) -> None:
        if sock.family == socket.AF_UNIX:
            return
        if _loopback_allowed and _is_loopback(address):
            return
        raise NetworkBlocked("network access is blocked during scanarchive's tests")

    def connect(self: socket.socket, address: Any) -> None:
        _check(self, address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self, address)
        return original_connect_ex(self, address)

    def sendto(self: socket.socket, *args: Any) -> int:
        _check(self, args[-1] if args else None)
        return original_sendto(self, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if _loopback_allowed and host in ("127.0.0.1", "localhost", "::1"):
            return original_getaddrinfo(host, *args, **kwargs)
        raise NetworkBlocked("name lookups are blocked during scanarchive's tests")

    setattr(socket.socket, "connect", connect)  # noqa: B010 - patching a C type's method
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
    setattr(socket.socket, "sendto", sendto)  # noqa: B010
    setattr(socket, "getaddrinfo", getaddrinfo)  # noqa: B010

    def restore() -> None:
        setattr(socket.socket, "connect", original_connect)  # noqa: B010
        setattr(socket.socket, "connect_ex", original_connect_ex)  # noqa: B010
        setattr(socket.socket, "sendto", original_sendto)  # noqa: B010
        setattr(socket, "getaddrinfo", original_getaddrinfo)  # noqa: B010

    return restore
