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
        return original_sendto(self, *args)  # type: ignore[call-overload, no-any-return]

    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        raise NetworkBlocked("name lookups are blocked during scanarchive's tests")

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = getaddrinfo

    def restore() -> None:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
        socket.socket.sendto = original_sendto  # type: ignore[method-assign]
        socket.getaddrinfo = original_getaddrinfo

    return restore
