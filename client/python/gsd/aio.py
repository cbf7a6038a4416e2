"""The asyncio client: :func:`aconnect` and :class:`AsyncConnection`.

One connection carries any number of requests at once: each coroutine
sends its request and waits for the answer with its msgid, so a slow
``call`` never holds up a ``ping`` sent after it::

    async with gsd.aconnect() as c:
        await c.start("counter", "c", 5)
        replies = await asyncio.gather(*(c.call("c", ["add", 1]) for _ in range(100)))
"""

from __future__ import annotations

import asyncio
import os
from typing import (Any, AsyncIterator, Dict, Generator, List, Optional, Sequence,
                    Union)

from . import _core
from ._core import (WAIT_DEFAULT, Core, Down, MonitorBase, Request, Server, Sink,
                    TraceBase, TraceEvent, check_wait, optional_wait, result_of,
                    socket_path)
from .errors import ConnectionLost, GsdError, Timeout

__all__ = ["aconnect", "AsyncConnection", "AsyncMonitor", "AsyncTrace"]

_READ_SIZE = 256 * 1024


class _AsyncSink(Sink):
    """A Sink a coroutine can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Optional[GsdError] = None
        self._waiter: Optional[asyncio.Future] = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def push(self, item: Any) -> None:
        super().push(item)
        self._wake()

    def fail(self, error: GsdError) -> None:
        self.error = error
        self._wake()

    async def get(self, wait: Optional[float], what: str) -> Any:
        """The next item; :class:`gsd.Timeout` if none comes within ``wait`` s."""
        loop = asyncio.get_running_loop()
        deadline = None if wait is None else loop.time() + wait
        while not self.items:
            if self.error is not None:
                raise self.error
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise Timeout("timeout", "no %s event within %g s" % (what, wait))
            if self._waiter is None or self._waiter.done():
                self._waiter = loop.create_future()
            # asyncio.wait, not wait_for: a timeout must not cancel the
            # future another coroutine may be waiting on too.
            await asyncio.wait({self._waiter}, timeout=remaining)
        return self.items.popleft()


class AsyncConnection:
    """One connection to a gsd daemon, for asyncio; :func:`aconnect` makes one.

    The same methods as :class:`gsd.Connection`, as coroutines; any number
    of them may run at once on one connection (from any number of tasks),
    and answers are matched to requests by msgid. A request whose task is
    cancelled, or whose wait ran out, has its late answer discarded.

    ``async with`` closes it on leaving the block; so does :meth:`close`.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]", None] = None) -> None:
        self.path: str = socket_path(path)
        """The socket this connection is (to be) made to."""
        self._core = Core()
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._read_task: Optional[asyncio.Task] = None
        self._write_lock: Optional[asyncio.Lock] = None

    async def connect(self, connect_timeout: Optional[float] = WAIT_DEFAULT) -> "AsyncConnection":
        """Makes the connection (:func:`aconnect` does it); returns self."""
        if self._writer is not None:
            return self
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.path, limit=_READ_SIZE),
                None if connect_timeout is None else check_wait(connect_timeout))
        except asyncio.TimeoutError:
            raise ConnectionLost("connection", "connect %s: timed out" % self.path) from None
        except OSError as e:
            raise ConnectionLost("connection", "connect %s: %s" % (
                self.path, e.strerror or e)) from None
        self._write_lock = asyncio.Lock()
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())
        return self

    # -- life ------------------------------------------------------------

    async def close(self) -> None:
        """Closes the connection; requests still waiting raise
        :class:`gsd.ConnectionLost`. Safe to call twice."""
        self._core.break_("closed")
        if self._read_task is not None:
            self._read_task.cancel()
            try:
                await self._read_task
            except (asyncio.CancelledError, Exception):
                pass
            self._read_task = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def __aenter__(self) -> "AsyncConnection":
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once closed (by :meth:`close`, or because it broke)."""
        return self._writer is None or self._core.broken is not None

    def __repr__(self) -> str:
        return "<gsd.AsyncConnection %s%s>" % (self.path, " closed" if self.closed else "")

    # -- I/O -------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._reader is not None
        why = "the daemon closed the connection"
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    break
                self._core.feed(data)
        except asyncio.CancelledError:
            why = "closed"
            raise
        except OSError as e:
            why = "receive: %s" % e
        except Exception as e:  # not msgpack: the stream is out of step
            why = "bad data from the daemon: %s" % e
        finally:
            self._core.break_(why)
            if self._writer is not None and why != "closed":
                self._writer.close()

    async def _send(self, data: bytes) -> None:
        if self._writer is None or self._write_lock is None:
            raise self._core.broken or ConnectionLost("connection", "not connected")
        try:
            async with self._write_lock:
                self._writer.write(data)
                await self._writer.drain()
        except (OSError, RuntimeError) as e:
            raise self._core.break_("send: %s" % e) from None

    async def _roundtrip(self, req: Request) -> Any:
        """Sends ``req``, waits for its answer; returns what its method returns."""
        if req.notify:
            return await self.notify(req.method, req.params)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def on_reply(error: Any, result: Any) -> None:
            if not fut.done():
                fut.set_result((error, result))

        if self._writer is None and self._core.broken is None:
            raise ConnectionLost("connection", "not connected (await connect() first)")
        msgid, data = self._core.request(req, on_reply)
        try:
            await self._send(data)
            try:
                error, result = await asyncio.wait_for(fut, req.wait)
            except asyncio.TimeoutError:
                raise Timeout("timeout", "no answer to %s within %g s"
                              % (req.method, req.wait)) from None
        finally:
            self._core.forget(msgid)
        return req.result(result_of(error, result))

    # -- the generic request ----------------------------------------------

    async def request(self, method: str, params: Sequence[Any] = (),
                      wait: float = WAIT_DEFAULT) -> Any:
        """Sends any protocol method with a list of params; returns the result.
        As :meth:`gsd.Connection.request`."""
        return await self._roundtrip(_core.any_request(method, params, wait))

    async def notify(self, method: str, params: Sequence[Any] = ()) -> None:
        """Sends a notification (``[2, method, params]``): no answer, ever."""
        await self._send(self._core.notification(method, list(params)))

    # -- the methods -------------------------------------------------------
    #
    # As gsd.Connection's: each builds its request with _core's
    # ``<method>_request`` function and sends it.

    async def ping(self) -> str:
        """Returns ``"pong"``."""
        return await self._roundtrip(_core.ping_request())

    async def version(self) -> Dict[str, Any]:
        """The daemon's version: a dict with ``"protocol": 1`` and ``"version"``."""
        return await self._roundtrip(_core.version_request())

    async def start(self, module: str, name: Optional[str] = None, args: Any = None, *,
                    link: bool = False, timeout: Optional[float] = None,
                    restart: Optional[str] = None, mailbox_limit: Optional[int] = None,
                    isolate: Union[bool, str, None] = None,
                    hibernate_after: Optional[float] = None, monitor: bool = False,
                    options: Optional[Dict[str, Any]] = None) -> Any:
        """Starts a server; as :meth:`gsd.Connection.start` (with
        ``monitor=True``, a :class:`gsd.Started` ``(id, ref)``; see
        :meth:`watch`)."""
        return await self._roundtrip(_core.start_request(
            self._core, module, name, args, link=link, timeout=timeout, restart=restart,
            mailbox_limit=mailbox_limit, isolate=isolate, hibernate_after=hibernate_after,
            monitor=monitor, options=options))

    async def call(self, server: Server, request: Any, timeout: Optional[float] = None) -> Any:
        """Calls ``server`` (a name, an id, or a remote reference ``[name, node]``)
        and returns its reply; as :meth:`gsd.Connection.call`."""
        return await self._roundtrip(_core.call_request(server, request, timeout))

    async def cast(self, server: Server, request: Any, *, notify: bool = False) -> None:
        """Queues ``request`` for ``handle_cast``; ``notify=True``: fire and forget.
        As :meth:`gsd.Connection.cast` (a remote reference ``[name, node]`` too)."""
        return await self._roundtrip(_core.cast_request(server, request, notify))

    async def send(self, server: Server, message: Any, *, notify: bool = False) -> None:
        """Sends a raw message to ``handle_info``; ``notify=True``: fire and forget.
        As :meth:`gsd.Connection.send` (a remote reference ``[name, node]`` too)."""
        return await self._roundtrip(_core.send_request(server, message, notify))

    async def stop(self, server: Server, reason: Any = None,
                   timeout: Optional[float] = None) -> None:
        """Stops ``server``; returns once its ``terminate`` has run."""
        return await self._roundtrip(_core.stop_request(server, reason, timeout))

    async def whereis(self, name: str) -> Optional[int]:
        """The id registered under ``name``, or None."""
        return await self._roundtrip(_core.whereis_request(name))

    async def which(self, after_id: Optional[int] = None,
                    count: Optional[int] = None) -> List[Dict[str, Any]]:
        """The running servers (one page with ``after_id``/``count``)."""
        return await self._roundtrip(_core.which_request(after_id, count))

    async def iter_which(self, page: int = 100) -> AsyncIterator[Dict[str, Any]]:
        """Every running server, fetched ``page`` at a time: ``async for s in c.iter_which()``."""
        after = 0
        while True:
            servers = await self.which(after, page)
            for s in servers:
                yield s
            if len(servers) < page:
                return
            after = servers[-1]["id"]

    async def info(self, server: Server) -> Dict[str, Any]:
        """A dict about ``server``: ``id``, ``name``, ``module``, ``status``, ``mailbox``, ..."""
        return await self._roundtrip(_core.info_request(server))

    async def get_state(self, server: Server) -> Any:
        """The server's state, as its module chooses to show it."""
        return await self._roundtrip(_core.get_state_request(server))

    async def modules(self) -> List[Dict[str, Any]]:
        """The loaded modules: dicts with ``name`` and ``vsn``."""
        return await self._roundtrip(_core.modules_request())

    async def load(self, module: str) -> Dict[str, Any]:
        """Loads ``module``: ``{name, vsn}``."""
        return await self._roundtrip(_core.load_request(module))

    async def reload(self, module: str) -> Dict[str, Any]:
        """Reloads ``module``: ``{name, vsn, upgraded}``."""
        return await self._roundtrip(_core.reload_request(module))

    async def monitor(self, *servers: Server, timeout: Optional[float] = None) -> "AsyncMonitor":
        """Monitors each of ``servers``; returns an :class:`AsyncMonitor`::

            async for down in await c.monitor("a", "b"):
                print(down.name, down.reason)

        As :meth:`gsd.Connection.monitor` (remote references ``[name,
        node]`` included); the monitor requests go out at once,
        concurrently."""
        m = AsyncMonitor(self, optional_wait(timeout))
        results = await asyncio.gather(
            *(self._roundtrip(_core.monitor_request(s, m._add)) for s in servers),
            return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                await m.cancel()
                raise r
        return m

    def watch(self, *refs: int, timeout: Optional[float] = None) -> "AsyncMonitor":
        """An :class:`AsyncMonitor` of monitors made already (``start(...,
        monitor=True)``, a raw ``request("monitor", ...)``)."""
        m = AsyncMonitor(self, optional_wait(timeout))
        for ref in refs:
            m._add(ref, None)
        return m

    async def demonitor(self, ref: int) -> None:
        """Removes the monitor ``ref``; its down, if any comes, is dropped."""
        return await self._roundtrip(_core.demonitor_request(self._core, ref))

    async def restart(self, server: Server) -> int:
        """Restarts ``server`` (reason ``"restart"``); returns the new id."""
        return await self._roundtrip(_core.restart_request(server))

    async def suspend(self, server: Server) -> None:
        """Holds the server's mailbox until :meth:`resume`."""
        return await self._roundtrip(_core.suspend_request(server))

    async def resume(self, server: Server) -> None:
        """Lets a suspended server handle its mailbox again."""
        return await self._roundtrip(_core.resume_request(server))

    async def stats(self) -> Dict[str, Any]:
        """The daemon's counters (see :meth:`gsd.Connection.stats`)."""
        return await self._roundtrip(_core.stats_request())

    async def clients(self) -> List[Dict[str, Any]]:
        """One dict per connection."""
        return await self._roundtrip(_core.clients_request())

    async def slowlog(self, count: Optional[int] = None) -> List[Dict[str, Any]]:
        """The slowest recent callbacks, newest first."""
        return await self._roundtrip(_core.slowlog_request(count))

    async def slowlog_reset(self) -> None:
        """Empties the slowlog."""
        return await self._roundtrip(_core.slowlog_reset_request())

    async def trace(self, server: Server, *, timeout: Optional[float] = None) -> "AsyncTrace":
        """Traces ``server``; returns an :class:`AsyncTrace` of its events."""
        t = AsyncTrace(self, server, optional_wait(timeout))
        try:
            await self._roundtrip(_core.trace_request(server, True))
        except BaseException:
            t._end()
            raise
        return t

    async def untrace(self, server: Server) -> None:
        """Turns tracing of ``server`` off."""
        return await self._roundtrip(_core.trace_request(server, False))

    async def metrics(self) -> str:
        """The daemon's metrics in the Prometheus text exposition format."""
        return await self._roundtrip(_core.metrics_request())

    async def nodes(self) -> List[str]:
        """The names of the cluster's nodes connected now."""
        return await self._roundtrip(_core.nodes_request())


class AsyncMonitor(MonitorBase):
    """An async iterator of the ``down`` events of the servers it watches;
    ends once all of them are down. As :class:`gsd.Monitor`, with
    ``async for`` and ``async with``."""

    _sink: _AsyncSink

    def __init__(self, conn: AsyncConnection, wait: Optional[float]) -> None:
        super().__init__(conn._core, _AsyncSink(), wait)
        self._conn = conn

    @property
    def ref(self) -> int:
        """The ref, for a monitor of one server."""
        (ref,) = self.refs
        return ref

    def __aiter__(self) -> "AsyncMonitor":
        return self

    async def __anext__(self) -> Down:
        if not self._left:
            raise StopAsyncIteration
        return self._got(await self._sink.get(self._wait, "down"))

    async def next(self) -> Down:
        """The next down (:class:`gsd.Timeout` past the monitor's timeout)."""
        return await self.__anext__()

    async def cancel(self) -> None:
        """Removes the monitors that have not fired yet (demonitor)."""
        for ref in self._unwatch_left():
            try:
                await self._conn.demonitor(ref)
            except GsdError:
                break

    close = cancel

    async def __aenter__(self) -> "AsyncMonitor":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.cancel()


class AsyncTrace(TraceBase):
    """An async iterator of one server's ``trace`` events; ends after its
    ``"stop"`` event or :meth:`close`. As :class:`gsd.Trace`."""

    _sink: _AsyncSink

    def __init__(self, conn: AsyncConnection, server: Server, wait: Optional[float]) -> None:
        super().__init__(conn._core, server, _AsyncSink(), wait)
        self._conn = conn

    def __aiter__(self) -> "AsyncTrace":
        return self

    async def __anext__(self) -> TraceEvent:
        if self._exhausted():
            raise StopAsyncIteration
        return self._got(await self._sink.get(self._wait, "trace"))

    async def close(self) -> None:
        """Turns tracing off (unless the server already stopped)."""
        if not self._done:
            self._end()
            try:
                await self._conn.untrace(self.server)
            except GsdError:
                pass

    async def __aenter__(self) -> "AsyncTrace":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class _Connecting:
    """What :func:`aconnect` returns: await it for the connection, or use it
    in ``async with`` directly."""

    def __init__(self, conn: AsyncConnection, connect_timeout: Optional[float]) -> None:
        self._conn = conn
        self._timeout = connect_timeout

    def __await__(self) -> Generator[Any, None, AsyncConnection]:
        return self._conn.connect(self._timeout).__await__()

    async def __aenter__(self) -> AsyncConnection:
        return await self._conn.connect(self._timeout)

    async def __aexit__(self, *exc: Any) -> None:
        await self._conn.close()


def aconnect(path: Union[str, "os.PathLike[str]", None] = None, *,
             connect_timeout: Optional[float] = WAIT_DEFAULT) -> _Connecting:
    """Connects to the daemon (the socket resolved as :func:`gsd.connect`
    does) for asyncio. Either form works::

        c = await gsd.aconnect()          # then: await c.close()
        async with gsd.aconnect() as c:   # closed on leaving the block
            ...

    Raises :class:`gsd.ConnectionLost` if nothing listens there.
    """
    return _Connecting(AsyncConnection(path), connect_timeout)
