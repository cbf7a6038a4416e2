"""The synchronous client: :func:`connect` and :class:`Connection`."""

from __future__ import annotations

import os
import select
import socket
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from . import _core
from ._core import (WAIT_DEFAULT, Core, Down, MonitorBase, Request, Server, Sink,
                    TraceBase, TraceEvent, check_wait, optional_wait, result_of,
                    socket_path)
from .errors import ConnectionLost, GsdError, Timeout

__all__ = ["connect", "Connection", "Monitor", "Trace"]

_READ_SIZE = 256 * 1024


class _Slot:
    """Where the sync client puts one answer."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = False
        self.error: Any = None
        self.result: Any = None

    def __call__(self, error: Any, result: Any) -> None:
        self.done, self.error, self.result = True, error, result


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def _deadline(wait: Optional[float]) -> Optional[float]:
    return None if wait is None else time.monotonic() + wait


_POLL_MAX_MS = 3600 * 1000  # poll() takes an int of ms: longer waits go in slices


def _poll(p: "select.poll", deadline: Optional[float]) -> list:
    """``p.poll`` until something happens or ``deadline`` passes ([] then)."""
    while True:
        r = _remaining(deadline)
        ms = _POLL_MAX_MS if r is None else min(_POLL_MAX_MS, int(r * 1000 + 0.999))
        events = p.poll(ms)
        if events or (deadline is not None and time.monotonic() >= deadline):
            return events


class Connection:
    """One connection to a gsd daemon; :func:`connect` makes one.

    Every method of the protocol is a method here; each sends its request
    and waits for the answer, returning the result or raising the error
    the daemon answered (:class:`gsd.ServerError`, as the subclass for its
    code). ``down`` and ``trace`` notifications that arrive meanwhile are
    kept for the :class:`Monitor` or :class:`Trace` that waits for them.

    Closing it (:meth:`close`, or leaving a ``with`` block) ends the
    connection; servers started with ``link=True`` then stop. A Connection
    is not thread-safe: use one per thread (or the asyncio client, which
    runs many requests at once on one connection).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]", None] = None,
                 *, connect_timeout: Optional[float] = WAIT_DEFAULT) -> None:
        self.path: str = socket_path(path)
        """The socket this connection was made to."""
        self._core = Core()
        self._sock: Optional[socket.socket] = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(None if connect_timeout is None else check_wait(connect_timeout))
            sock.connect(self.path)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise ConnectionLost("connection", "connect %s: %s" % (
                self.path, e.strerror or e)) from None
        self._sock = sock
        self._poll = select.poll()

    # -- life ------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection. Safe to call twice."""
        if self._sock is not None:
            sock, self._sock = self._sock, None
            self._core.break_("closed")
            sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        """True once closed (by :meth:`close`, or because it broke)."""
        return self._sock is None or self._core.broken is not None

    def fileno(self) -> int:
        """The socket's descriptor (for select; events may already be buffered)."""
        if self._sock is None:
            raise ConnectionLost("connection", "closed")
        return self._sock.fileno()

    def __repr__(self) -> str:
        return "<gsd.Connection %s%s>" % (self.path, " closed" if self.closed else "")

    # -- I/O -------------------------------------------------------------

    def _broken(self, why: str) -> ConnectionLost:
        err = self._core.break_(why)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return err

    def _live(self) -> socket.socket:
        if self._core.broken is not None:
            raise self._core.broken
        if self._sock is None:
            raise ConnectionLost("connection", "closed")
        return self._sock

    def _read(self, deadline: Optional[float]) -> bool:
        """Reads what arrives before ``deadline`` and handles it; False if nothing came."""
        sock = self._live()
        try:
            data = sock.recv(_READ_SIZE)
        except BlockingIOError:
            self._poll.register(sock, select.POLLIN)
            try:
                if not _poll(self._poll, deadline):
                    return False
            finally:
                self._poll.unregister(sock)
            try:
                data = sock.recv(_READ_SIZE)
            except BlockingIOError:
                return True
            except OSError as e:
                raise self._broken("receive: %s" % e) from None
        except OSError as e:
            raise self._broken("receive: %s" % e) from None
        if not data:
            raise self._broken("the daemon closed the connection")
        try:
            self._core.feed(data)
        except GsdError:
            raise
        except Exception as e:  # not msgpack: the stream is out of step
            raise self._broken("bad data from the daemon: %s" % e) from None
        return True

    def _send(self, data: bytes, deadline: Optional[float]) -> None:
        """Sends all of ``data``, reading what arrives meanwhile (a daemon
        that stops reading us may be waiting for us to read)."""
        sock = self._live()
        view = memoryview(data)
        while view:
            try:
                n = sock.send(view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                raise self._broken("send: %s" % e) from None
            self._poll.register(sock, select.POLLIN | select.POLLOUT)
            try:
                events = _poll(self._poll, deadline)
            finally:
                self._poll.unregister(sock)
            if not events:
                if len(view) < len(data):  # half a message: the stream is out of step
                    raise self._broken("send timed out")
                raise Timeout("timeout", "the daemon did not take the request in time")
            if events[0][1] & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._read(time.monotonic())

    def _roundtrip(self, req: Request) -> Any:
        """Sends ``req``, waits for its answer; returns what its method returns."""
        if req.notify:
            return self.notify(req.method, req.params)
        slot = _Slot()
        self._live()
        msgid, data = self._core.request(req, slot)
        deadline = _deadline(req.wait)
        try:
            self._send(data, deadline)
            while not slot.done:
                if not self._read(deadline) and not slot.done:
                    raise Timeout("timeout", "no answer to %s within %g s"
                                  % (req.method, req.wait))
        finally:
            self._core.forget(msgid)
        return req.result(result_of(slot.error, slot.result))

    # -- the generic request ----------------------------------------------

    def request(self, method: str, params: Sequence[Any] = (),
                wait: float = WAIT_DEFAULT) -> Any:
        """Sends any protocol method with a list of params; returns the result.

        ``wait`` bounds the wait for the answer: positive seconds, or
        :data:`gsd.INFINITY` to wait forever (anything else raises
        ValueError); when it runs out, :class:`gsd.Timeout` is raised and
        the late answer is discarded. Raises :class:`gsd.ServerError` or
        :class:`gsd.ConnectionLost`; TypeError for a value msgpack cannot
        carry (nothing is sent then).
        """
        return self._roundtrip(_core.any_request(method, params, wait))

    def notify(self, method: str, params: Sequence[Any] = ()) -> None:
        """Sends a notification (``[2, method, params]``): no answer, ever."""
        self._live()
        self._send(self._core.notification(method, list(params)), _deadline(WAIT_DEFAULT))

    # -- the methods -------------------------------------------------------
    #
    # Each builds its request with _core's ``<method>_request`` function and
    # sends it: what it sends and returns are the asyncio client's too.

    def ping(self) -> str:
        """Returns ``"pong"``."""
        return self._roundtrip(_core.ping_request())

    def version(self) -> Dict[str, Any]:
        """The daemon's version: a dict with ``"protocol": 1`` and ``"version"``."""
        return self._roundtrip(_core.version_request())

    def start(self, module: str, name: Optional[str] = None, args: Any = None, *,
              link: bool = False, timeout: Optional[float] = None,
              restart: Optional[str] = None, mailbox_limit: Optional[int] = None,
              isolate: Union[bool, str, None] = None,
              hibernate_after: Optional[float] = None, monitor: bool = False,
              options: Optional[Dict[str, Any]] = None) -> Any:
        """Starts a server of ``module`` (named ``name``, or anonymous, with
        ``args`` for its ``init``) and returns its id once ``init`` has returned.

        Options: ``link=True`` stops it (reason ``"shutdown"``) when this
        connection closes; ``timeout`` (seconds, or INFINITY) bounds
        ``init``; ``restart`` is ``"permanent"``, ``"transient"`` or
        ``"temporary"``; ``mailbox_limit`` caps its mailbox; ``isolate``
        is True (a worker process of its own) or a worker group's name;
        ``hibernate_after`` (seconds idle); ``options`` any other entries
        of the options map. With ``monitor=True`` it answers a
        :class:`gsd.Started` ``(id, ref)`` with a monitor already in
        place: iterate over ``watch(ref)`` for its down.

        Raises :class:`gsd.AlreadyStarted` (detail: the existing id) when
        the name is taken, :class:`gsd.ModuleError`, :class:`gsd.InitStop`,
        :class:`gsd.Ignore`, :class:`gsd.Timeout`, :class:`gsd.BadArg`.
        """
        return self._roundtrip(_core.start_request(
            self._core, module, name, args, link=link, timeout=timeout, restart=restart,
            mailbox_limit=mailbox_limit, isolate=isolate, hibernate_after=hibernate_after,
            monitor=monitor, options=options))

    def call(self, server: Server, request: Any, timeout: Optional[float] = None) -> Any:
        """Calls ``server`` and returns its reply.

        ``server`` is a name, an id, or a remote reference ``[name, node]``
        (a list or a tuple) for a name registered on another node.
        ``timeout`` in seconds: None for the daemon's default (5 s),
        :data:`gsd.INFINITY` to wait forever. Raises :class:`gsd.Timeout`
        when it runs out (the server lives on), :class:`gsd.Exit` if the
        server stops meanwhile (detail: its reason), :class:`gsd.NoProc`
        if there is no such server, :class:`gsd.NodeDown` if a remote
        reference's node cannot be reached.
        """
        return self._roundtrip(_core.call_request(server, request, timeout))

    def cast(self, server: Server, request: Any, *, notify: bool = False) -> None:
        """Queues ``request`` for the server's ``handle_cast``; returns once it
        is in the mailbox (raises :class:`gsd.NoProc`). For a remote
        reference ``[name, node]``, once it is on its way to the node (a
        name not there drops it), or :class:`gsd.NodeDown`. With
        ``notify=True`` it goes as a notification: fire and forget, nothing
        answers, and an unknown server is ignored."""
        return self._roundtrip(_core.cast_request(server, request, notify))

    def send(self, server: Server, message: Any, *, notify: bool = False) -> None:
        """Sends a raw message to the server's ``handle_info``; returns once
        it is in the mailbox (raises :class:`gsd.NoProc`). A remote reference
        ``[name, node]`` and ``notify=True``: as for :meth:`cast`."""
        return self._roundtrip(_core.send_request(server, message, notify))

    def stop(self, server: Server, reason: Any = None,
             timeout: Optional[float] = None) -> None:
        """Stops ``server`` with ``reason`` (None: ``"normal"``) and returns
        once its ``terminate`` has run, after what its mailbox already
        held. ``timeout`` (seconds): the daemon kills it past that; None
        waits as long as terminate takes."""
        return self._roundtrip(_core.stop_request(server, reason, timeout))

    def whereis(self, name: str) -> Optional[int]:
        """The id registered under ``name``, or None."""
        return self._roundtrip(_core.whereis_request(name))

    def which(self, after_id: Optional[int] = None,
              count: Optional[int] = None) -> List[Dict[str, Any]]:
        """The running servers: dicts with ``id``, ``name`` (None if
        anonymous), ``module``, ... With ``after_id`` and ``count``, one
        page: at most ``count`` servers whose id is greater, in id order
        (see :meth:`iter_which`)."""
        return self._roundtrip(_core.which_request(after_id, count))

    def iter_which(self, page: int = 100) -> Iterator[Dict[str, Any]]:
        """Every running server, fetched ``page`` at a time (``which`` paging)."""
        after = 0
        while True:
            servers = self.which(after, page)
            yield from servers
            if len(servers) < page:
                return
            after = servers[-1]["id"]

    def info(self, server: Server) -> Dict[str, Any]:
        """A dict about ``server``: ``id``, ``name``, ``module``, ``status``, ``mailbox``, ..."""
        return self._roundtrip(_core.info_request(server))

    def get_state(self, server: Server) -> Any:
        """The server's state, as its module chooses to show it
        (:class:`gsd.Unsupported` if it does not)."""
        return self._roundtrip(_core.get_state_request(server))

    def modules(self) -> List[Dict[str, Any]]:
        """The loaded modules: dicts with ``name`` and ``vsn``."""
        return self._roundtrip(_core.modules_request())

    def load(self, module: str) -> Dict[str, Any]:
        """Loads ``module`` from the daemon's module directories: ``{name, vsn}``."""
        return self._roundtrip(_core.load_request(module))

    def reload(self, module: str) -> Dict[str, Any]:
        """Reloads ``module``, moving its servers to the new code:
        ``{name, vsn, upgraded}`` (:class:`gsd.CodeChange` if one fails)."""
        return self._roundtrip(_core.reload_request(module))

    def monitor(self, *servers: Server, timeout: Optional[float] = None) -> "Monitor":
        """Monitors each of ``servers``; returns a :class:`Monitor`, an
        iterator of their :class:`gsd.Down` events that ends once all of
        them are down::

            for down in c.monitor("a", "b"):
                print(down.name, down.reason)

        A server that is not alive gives a down with reason ``"noproc"`` at
        once. A remote reference ``[name, node]`` may be monitored too
        (:class:`gsd.NodeDown` if its node cannot be reached): its down
        has id 0, and reason ``"noconnection"`` if the node is lost.
        ``timeout`` (seconds; None or INFINITY: none) bounds each wait
        for the next event (:class:`gsd.Timeout`). If one of the monitor
        requests fails, the monitors already made are removed before the
        error is raised.
        """
        m = Monitor(self, {}, optional_wait(timeout))
        try:
            for server in servers:
                self._roundtrip(_core.monitor_request(server, m._add))
        except BaseException:
            m.cancel()
            raise
        return m

    def watch(self, *refs: int, timeout: Optional[float] = None) -> "Monitor":
        """A :class:`Monitor` of monitors made already (by ``start(...,
        monitor=True)`` or a raw ``request("monitor", ...)``)."""
        m = Monitor(self, {}, optional_wait(timeout))
        for ref in refs:
            m._add(ref, None)
        return m

    def demonitor(self, ref: int) -> None:
        """Removes the monitor ``ref``; its down, if any comes, is dropped."""
        return self._roundtrip(_core.demonitor_request(self._core, ref))

    def restart(self, server: Server) -> int:
        """Stops ``server`` (reason ``"restart"``) and starts it again with the
        same module, name, args and options; returns the new id."""
        return self._roundtrip(_core.restart_request(server))

    def suspend(self, server: Server) -> None:
        """Holds the server's mailbox until :meth:`resume`."""
        return self._roundtrip(_core.suspend_request(server))

    def resume(self, server: Server) -> None:
        """Lets a suspended server handle its mailbox again."""
        return self._roundtrip(_core.resume_request(server))

    def stats(self) -> Dict[str, Any]:
        """The daemon's counters: ``version``, ``pid``, ``uptime_ms``,
        ``servers``, ``connections``, ``memory``, ``calls``, ``errors``, ..."""
        return self._roundtrip(_core.stats_request())

    def clients(self) -> List[Dict[str, Any]]:
        """One dict per connection: ``id``, ``pid``, ``uid``, ``pending``, ..."""
        return self._roundtrip(_core.clients_request())

    def slowlog(self, count: Optional[int] = None) -> List[Dict[str, Any]]:
        """The slowest recent callbacks, newest first (``count`` of them; None: all kept)."""
        return self._roundtrip(_core.slowlog_request(count))

    def slowlog_reset(self) -> None:
        """Empties the slowlog."""
        return self._roundtrip(_core.slowlog_reset_request())

    def trace(self, server: Server, *, timeout: Optional[float] = None) -> "Trace":
        """Traces ``server``; returns a :class:`Trace`, an iterator of its
        :class:`gsd.TraceEvent` events that ends after its ``"stop"`` event
        (or :meth:`Trace.close`, which turns tracing off). ``timeout``
        bounds each wait for the next event (:class:`gsd.Timeout`)."""
        t = Trace(self, server, optional_wait(timeout))
        try:
            self._roundtrip(_core.trace_request(server, True))
        except BaseException:
            t._end()
            raise
        return t

    def untrace(self, server: Server) -> None:
        """Turns tracing of ``server`` off (``trace [server, false]``)."""
        return self._roundtrip(_core.trace_request(server, False))

    def metrics(self) -> str:
        """The daemon's metrics in the Prometheus text exposition format."""
        return self._roundtrip(_core.metrics_request())

    def nodes(self) -> List[str]:
        """The names of the cluster's nodes connected now."""
        return self._roundtrip(_core.nodes_request())

    # -- events ----------------------------------------------------------

    def _next_event(self, sink: Sink, deadline: Optional[float], what: str) -> Any:
        while not sink.items:
            if not self._read(deadline) and not sink.items:
                raise Timeout("timeout", "no %s event in time" % what)
        return sink.items.popleft()


class Monitor(MonitorBase):
    """Iterates over the ``down`` events of the servers it watches.

    Made by :meth:`Connection.monitor` or :meth:`Connection.watch`; ends
    once every watched server is down. ``refs`` maps each ref to the
    server it watches. With a ``timeout``, waiting longer than that for
    the next event raises :class:`gsd.Timeout` (the Monitor stays usable).
    A Monitor is also a context manager: leaving the block cancels what
    has not fired. The downs of a Monitor that is dropped are dropped too.
    """

    def __init__(self, conn: Connection, refs: Dict[int, Any], wait: Optional[float]) -> None:
        super().__init__(conn._core, Sink(), wait)
        self._conn = conn
        for ref, server in refs.items():
            self._add(ref, server)

    @property
    def ref(self) -> int:
        """The ref, for a Monitor of one server."""
        (ref,) = self.refs
        return ref

    def __iter__(self) -> "Monitor":
        return self

    def __next__(self) -> Down:
        if not self._left:
            raise StopIteration
        return self._got(self._conn._next_event(self._sink, _deadline(self._wait), "down"))

    def cancel(self) -> None:
        """Removes the monitors that have not fired yet (demonitor)."""
        for ref in self._unwatch_left():
            try:
                self._conn.demonitor(ref)
            except GsdError:
                break  # the connection is gone, and its monitors with it

    close = cancel

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()


class Trace(TraceBase):
    """Iterates over the ``trace`` events of one server.

    Made by :meth:`Connection.trace`; ends after the server's ``"stop"``
    event, or once :meth:`close` has turned tracing off. A context
    manager: leaving the block closes it.
    """

    def __init__(self, conn: Connection, server: Server, wait: Optional[float]) -> None:
        super().__init__(conn._core, server, Sink(), wait)
        self._conn = conn

    def __iter__(self) -> "Trace":
        return self

    def __next__(self) -> TraceEvent:
        if self._exhausted():
            raise StopIteration
        return self._got(self._conn._next_event(self._sink, _deadline(self._wait), "trace"))

    def close(self) -> None:
        """Turns tracing off (unless the server already stopped)."""
        if not self._done:
            self._end()
            try:
                self._conn.untrace(self.server)
            except GsdError:
                pass  # gone already: the server, or the connection

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(path: Union[str, "os.PathLike[str]", None] = None, *,
            connect_timeout: Optional[float] = WAIT_DEFAULT) -> Connection:
    """Connects to the daemon at ``path``, or (None) where
    :func:`gsd.socket_path` says: ``$GSD_SOCKET``, else the per-user
    socket (or the system daemon's). Returns a :class:`Connection`, which
    is also a context manager. Raises :class:`gsd.ConnectionLost` if
    nothing listens there."""
    return Connection(path, connect_timeout=connect_timeout)
