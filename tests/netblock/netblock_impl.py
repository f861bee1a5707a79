"""Make every non-Unix socket connection fail in this Python process."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any


class NetworkBlocked(OSError):
    pass


def install() -> Callable[[], None]:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_getaddrinfo = socket.getaddrinfo

    def _check(sock: socket.socket) -> None:
        if sock.family != socket.AF_UNIX:
            raise NetworkBlocked("network access is blocked during scanarchive's tests")

    def connect(self: socket.socket, address: Any) -> None:
        _check(self)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self)
        return original_connect_ex(self, address)

    def sendto(self: socket.socket, *args: Any) -> int:
        _check(self)
        return original_sendto(self, *args)

    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
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
