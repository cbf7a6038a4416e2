"""gsd — talk to the gsd daemon from Python.

A pure-Python client of gsd's wire protocol (msgpack-rpc over a Unix
socket), with a synchronous and an asyncio client. Values travel as
msgpack and come back as native Python types::

    import gsd

    with gsd.connect() as c:                  # $GSD_SOCKET, or the per-user socket
        cid = c.start("counter", "c", 5)
        c.call("c", ["add", 10])              # -> 15
        c.cast("c", "increment")
        for down in c.monitor("c"):           # iterate until "c" is down
            print(down.reason)

    async with gsd.aconnect() as c:           # asyncio: many requests at once
        await c.call("c", "get")

Servers are named by name (``str``), by id (``int``), or as a remote
reference ``[name, node]``. Requests, replies, arguments and reasons are
any value msgpack can carry: ``None``, ``bool``, ``int``, ``float``,
``str``, ``bytes``, lists (tuples are sent as lists) and dicts. An error
the daemon answers raises :class:`ServerError` — as its subclass for the
code, such as :class:`NoProc` — carrying ``code`` and ``detail``; a lost
connection raises :class:`ConnectionLost`. Timeouts are in seconds
(:data:`INFINITY` for none).
"""

from ._core import (CALL_TIMEOUT_DEFAULT, GRACE, INFINITY, SYSTEM_SOCKET,
                    WAIT_DEFAULT, Down, Server, Started, TraceEvent, socket_path,
                    user_socket_path)
from .aio import AsyncConnection, AsyncMonitor, AsyncTrace, aconnect
from .client import Connection, Monitor, Trace, connect
from .errors import (ERRORS, AlreadyStarted, BadArg, CodeChange, ConnectionLost,
                     Exit, GsdError, Ignore, InitStop, ModuleError, NodeDown, NoProc,
                     Overloaded, ProtocolError, ServerError, ShuttingDown, Timeout,
                     TooLarge, Unauthorized, UnknownMethod, Unsupported, error_for)

__version__ = "1.0.0"

__all__ = [
    # connecting
    "connect", "Connection", "aconnect", "AsyncConnection", "socket_path",
    "user_socket_path", "SYSTEM_SOCKET",
    # events
    "Down", "Monitor", "AsyncMonitor", "TraceEvent", "Trace", "AsyncTrace", "Started",
    # values
    "INFINITY", "GRACE", "WAIT_DEFAULT", "CALL_TIMEOUT_DEFAULT", "Server",
    # errors
    "GsdError", "ServerError", "ConnectionLost", "BadArg", "UnknownMethod", "NoProc",
    "Timeout", "Exit", "AlreadyStarted", "InitStop", "Ignore", "ModuleError",
    "CodeChange", "Unsupported", "Unauthorized", "TooLarge", "ProtocolError",
    "ShuttingDown", "Overloaded", "NodeDown", "ERRORS", "error_for",
]
