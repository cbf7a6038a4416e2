"""What the sync and the asyncio clients share: the socket's path, the
wire format (msgpack-rpc), the timeouts, the events, each method's
request and what its answer becomes (:class:`Request`, the ``*_request``
functions), a connection's state (:class:`Core`) and a monitor's or a
trace's (:class:`MonitorBase`, :class:`TraceBase`), all without any I/O:
the clients only send, wait and read."""

from __future__ import annotations

import math
import os
import weakref
from collections import deque
from typing import (Any, Callable, Deque, Dict, Iterable, List, NamedTuple,
                    Optional, Sequence, Set, Tuple, Union)

import msgpack

from .errors import ConnectionLost, GsdError, error_for

INFINITY: float = math.inf
"""A timeout that never runs out (the protocol's ``"infinity"``)."""

GRACE: float = 2.0
"""Seconds the client waits beyond a call's own timeout for its answer."""

WAIT_DEFAULT: float = 30.0
"""Seconds the client waits for the answer to a request with no timeout of its own."""

CALL_TIMEOUT_DEFAULT: float = 5.0
"""The daemon's default call timeout, in seconds (a ``call`` with ``timeout=None``)."""

SYSTEM_SOCKET = "/run/gsd/gsd.sock"
"""The system daemon's socket (root's default)."""

Server = Union[str, int, Sequence[str]]
"""A server: a name (str), an id (int), or a remote reference ``[name, node]``
(a list or a tuple of two str, sent as a msgpack array: a name registered
on another node, such as ``["cache", "gsd@db1"]``). Only ``call``,
``cast``, ``send`` and ``monitor`` take a remote reference; when its node
cannot be reached they raise :class:`gsd.NodeDown`."""

Wait = Optional[float]

_REQUEST, _RESPONSE, _NOTIFICATION = 0, 1, 2
_MSGID_MAX = 2**32 - 1


def user_socket_path() -> str:
    """The per-user socket: ``$XDG_RUNTIME_DIR/gsd.sock``, else ``/tmp/gsd-$UID/gsd.sock``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "gsd.sock")
    return "/tmp/gsd-%d/gsd.sock" % os.geteuid()


def socket_path(path: Union[str, "os.PathLike[str]", None] = None) -> str:
    """Resolves the daemon's socket as every gsd program does.

    1. ``path``, when given (and not empty);
    2. else ``$GSD_SOCKET`` (when set and not empty);
    3. else ``/run/gsd/gsd.sock`` for root; for any other user their own
       ``$XDG_RUNTIME_DIR/gsd.sock`` (``/tmp/gsd-$UID/gsd.sock`` when
       ``XDG_RUNTIME_DIR`` is unset) — or, when that socket does not exist
       and the system daemon's does, ``/run/gsd/gsd.sock``.
    """
    if path is not None:
        p = os.fspath(path)
        if p:
            return p
    env = os.environ.get("GSD_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return SYSTEM_SOCKET
    own = user_socket_path()
    if not os.path.exists(own) and os.path.exists(SYSTEM_SOCKET):
        return SYSTEM_SOCKET
    return own


class Down(NamedTuple):
    """A ``down`` notification: a monitored server ended.

    ``ref`` is the monitor, ``id`` and ``name`` the server's (``name`` is
    None for an anonymous one; ``id`` is 0 for a remote reference's),
    ``reason`` its exit reason (``"noproc"`` for a server that was not
    alive when it was monitored, ``"noconnection"`` for a remote
    reference whose node was lost).
    """

    ref: int
    id: Any
    name: Optional[str]
    reason: Any


class TraceEvent(NamedTuple):
    """A ``trace`` notification: one event of a traced server.

    ``event`` is ``"call"`` (``data``: the request), ``"cast"`` or
    ``"info"`` (the message), ``"reply"`` (the reply sent), ``"timeout"``,
    ``"stop"`` (the reason), or ``"dropped"`` (events lost to the
    connection's limits).
    """

    id: Any
    name: Optional[str]
    event: str
    data: Any


class Started(NamedTuple):
    """What ``start(..., monitor=True)`` answers: the server's ``id`` and the
    ``ref`` of the monitor put in place with it."""

    id: int
    ref: int


def pack(value: Any) -> bytes:
    """``value`` as msgpack (tuples as arrays); TypeError if it cannot be."""
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError("gsd: cannot send %r as msgpack: %s" % (value, e)) from None


def _positive(seconds: Any) -> bool:
    try:
        return seconds > 0 and not math.isnan(seconds)
    except TypeError:
        return False


def timeout_ms(seconds: Optional[float]) -> Union[int, str, None]:
    """A timeout in seconds as the protocol has it: None → nil (the daemon's
    default), :data:`INFINITY` → ``"infinity"``, else positive ms."""
    if seconds is None:
        return None
    if seconds == INFINITY:
        return "infinity"
    if not _positive(seconds):
        raise ValueError("gsd: a timeout is positive seconds, None or gsd.INFINITY, not %r"
                         % (seconds,))
    return max(1, int(round(seconds * 1000)))


def check_wait(seconds: Any) -> Optional[float]:
    """A wait of the client's own: positive seconds, or INFINITY (→ None: forever)."""
    if seconds == INFINITY:
        return None
    if not _positive(seconds):
        raise ValueError("gsd: a wait is positive seconds or gsd.INFINITY, not %r" % (seconds,))
    return float(seconds)


def optional_wait(seconds: Any) -> Optional[float]:
    """Like :func:`check_wait`, with None also meaning forever."""
    return None if seconds is None else check_wait(seconds)


def call_wait(timeout: Optional[float]) -> Optional[float]:
    """How long the client waits for a call's answer (None: forever)."""
    if timeout == INFINITY:
        return None
    return (CALL_TIMEOUT_DEFAULT if timeout is None else timeout) + GRACE


def start_options(link: bool = False, timeout: Optional[float] = None,
                  restart: Optional[str] = None, mailbox_limit: Optional[int] = None,
                  isolate: Union[bool, str, None] = None,
                  hibernate_after: Optional[float] = None, monitor: bool = False,
                  options: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The options map of a ``start`` from its keywords (None when empty)."""
    o: Dict[str, Any] = dict(options or {})
    if link:
        o["link"] = True
    if timeout is not None:
        o["timeout"] = timeout_ms(timeout)
    if restart is not None:
        o["restart"] = restart
    if mailbox_limit is not None:
        o["mailbox_limit"] = mailbox_limit
    if isolate is not None:
        o["isolate"] = isolate
    if hibernate_after is not None:
        o["hibernate_after"] = timeout_ms(hibernate_after)
    if monitor:
        o["monitor"] = True
    return o or None


def start_wait(timeout: Optional[float]) -> Optional[float]:
    """How long the client waits for a start whose init may take ``timeout``."""
    if timeout == INFINITY:
        return None
    return max(WAIT_DEFAULT, (timeout or 0) + GRACE)


def stop_wait(timeout: Optional[float]) -> Optional[float]:
    """How long the client waits for a stop (None: as long as terminate takes)."""
    if timeout is None or timeout == INFINITY:
        return None
    return timeout + GRACE


# -- the methods' requests --------------------------------------------------
#
# One function per method of the protocol: it checks the method's
# arguments and builds its request (params, how long the client waits,
# what becomes of the answer). The sync and asyncio clients' methods
# each send what their function returns and return what comes back.


class Request(NamedTuple):
    """One request of a method, as both clients send it."""

    method: str
    params: List[Any]
    wait: Optional[float] = WAIT_DEFAULT
    """How long the client waits for the answer (None: forever)."""
    notify: bool = False
    """Sent as a notification (``[2, method, params]``): nothing answers."""
    on_answer: Optional[Callable[[Any], None]] = None
    """Runs on the result as the answer is read, before any message read
    after it is handled (a down right behind it must find its route)."""
    shape: Optional[Callable[[Any], Any]] = None
    """Makes the result what the method returns (None: as it came)."""

    def result(self, value: Any) -> Any:
        """What the method returns for the result ``value``."""
        return value if self.shape is None else self.shape(value)


def any_request(method: str, params: Sequence[Any], wait: float) -> Request:
    return Request(method, list(params), check_wait(wait))


def ping_request() -> Request:
    return Request("ping", [])


def version_request() -> Request:
    return Request("version", [])


def start_request(core: Core, module: str, name: Optional[str], args: Any, *,
                  link: bool, timeout: Optional[float], restart: Optional[str],
                  mailbox_limit: Optional[int], isolate: Union[bool, str, None],
                  hibernate_after: Optional[float], monitor: bool,
                  options: Optional[Dict[str, Any]]) -> Request:
    """With ``monitor``, the answer ``[id, ref]`` becomes a :class:`Started`,
    and ``core`` keeps ref's down for a ``watch`` to come."""
    opts = start_options(link, timeout, restart, mailbox_limit, isolate,
                         hibernate_after, monitor, options)
    params = [module, name, args, opts]
    if not monitor:
        return Request("start", params, start_wait(timeout))

    def keep(result: Any) -> None:
        if _is_started(result):
            core.keep(result[1])

    def shape(result: Any) -> Any:
        return Started(result[0], result[1]) if _is_started(result) else result

    return Request("start", params, start_wait(timeout), on_answer=keep, shape=shape)


def _is_started(result: Any) -> bool:
    return isinstance(result, list) and len(result) == 2


def call_request(server: Server, request: Any, timeout: Optional[float]) -> Request:
    return Request("call", [server, request, timeout_ms(timeout)], call_wait(timeout))


def cast_request(server: Server, request: Any, notify: bool) -> Request:
    return Request("cast", [server, request], notify=notify)


def send_request(server: Server, message: Any, notify: bool) -> Request:
    return Request("send", [server, message], notify=notify)


def stop_request(server: Server, reason: Any, timeout: Optional[float]) -> Request:
    return Request("stop", [server, reason, timeout_ms(timeout)], stop_wait(timeout))


def whereis_request(name: str) -> Request:
    return Request("whereis", [name])


def which_request(after_id: Optional[int], count: Optional[int]) -> Request:
    if after_id is None and count is None:
        return Request("which", [])
    return Request("which", [after_id or 0, 100 if count is None else count])


def info_request(server: Server) -> Request:
    return Request("info", [server])


def get_state_request(server: Server) -> Request:
    return Request("get_state", [server])


def modules_request() -> Request:
    return Request("modules", [])


def load_request(module: str) -> Request:
    return Request("load", [module])


def reload_request(module: str) -> Request:
    return Request("reload", [module])


def monitor_request(server: Server, add: Callable[[int, Server], None]) -> Request:
    """``add(ref, server)`` runs as the answer is read (its down may follow at once)."""
    return Request("monitor", [server], on_answer=lambda ref: add(ref, server))


def demonitor_request(core: Core, ref: int) -> Request:
    """``core`` drops ref's down at once, should it come."""
    core.unwatch([ref])
    return Request("demonitor", [ref])


def restart_request(server: Server) -> Request:
    return Request("restart", [server])


def suspend_request(server: Server) -> Request:
    return Request("suspend", [server])


def resume_request(server: Server) -> Request:
    return Request("resume", [server])


def stats_request() -> Request:
    return Request("stats", [])


def clients_request() -> Request:
    return Request("clients", [])


def slowlog_request(count: Optional[int]) -> Request:
    return Request("slowlog", [count])


def slowlog_reset_request() -> Request:
    return Request("slowlog_reset", [])


def trace_request(server: Server, on: bool) -> Request:
    return Request("trace", [server, on])


def metrics_request() -> Request:
    return Request("metrics", [])


def nodes_request() -> Request:
    return Request("nodes", [])


# -- a connection, a monitor, a trace ---------------------------------------


class Sink:
    """Where the events of one monitor or trace go; the clients wait on it."""

    def __init__(self) -> None:
        self.items: Deque[Any] = deque()

    def push(self, item: Any) -> None:
        self.items.append(item)

    def fail(self, error: GsdError) -> None:
        """The connection broke: wake whoever waits."""


Reply = Tuple[Any, Any]  # (error or None, result)
OnReply = Callable[[Any, Any], None]


class Core:
    """One connection's state, without I/O: msgids, the requests waiting for
    an answer, the routes of ``down`` and ``trace`` notifications, and the
    decoding of what arrives (:meth:`feed`)."""

    def __init__(self) -> None:
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                         unicode_errors="surrogateescape",
                                         max_buffer_size=2**31 - 1)
        self.next_msgid = 0
        self.pending: Dict[int, OnReply] = {}
        self.down_routes: Dict[int, Sink] = {}
        self.kept: Dict[int, Optional[Down]] = {}  # start(monitor=True) refs not watched yet
        self.trace_routes: Dict[Any, List[Sink]] = {}
        self.broken: Optional[GsdError] = None
        self.last_error: Optional[Tuple[Any, Any]] = None  # the daemon's `error` notification
        self.on_notification: Optional[Callable[[str, Any], None]] = None

    # -- out --------------------------------------------------------------

    def request(self, req: Request, on_reply: OnReply) -> Tuple[int, bytes]:
        """A request's msgid and bytes; ``on_reply(error, result)`` runs when
        its answer is read (not if :meth:`forget` came first), after
        ``req.on_answer``."""
        body = pack([_REQUEST, 0, req.method, list(req.params)])  # fails before a msgid is taken
        if self.broken is not None:
            raise self.broken
        while True:
            self.next_msgid = self.next_msgid + 1 if self.next_msgid < _MSGID_MAX else 1
            if self.next_msgid not in self.pending:
                break
        msgid = self.next_msgid
        self.pending[msgid] = on_reply if req.on_answer is None else _then(req.on_answer, on_reply)
        # [0, 0, ...] packed with msgid 0: swap in the real msgid (a uint32).
        return msgid, body[:2] + msgpack.packb(msgid) + body[3:]

    def notification(self, method: str, params: Iterable[Any]) -> bytes:
        data = pack([_NOTIFICATION, method, list(params)])
        if self.broken is not None:
            raise self.broken
        return data

    def forget(self, msgid: int) -> None:
        """Its answer, when it comes, is discarded."""
        self.pending.pop(msgid, None)

    # -- in ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Decodes ``data`` and handles every message it completes."""
        self.unpacker.feed(data)
        for msg in self.unpacker:
            self.handle(msg)

    def handle(self, msg: Any) -> None:
        if not isinstance(msg, (list, tuple)) or not msg:
            return
        if msg[0] == _RESPONSE and len(msg) == 4:
            on_reply = self.pending.pop(msg[1], None)
            if on_reply is not None:
                on_reply(msg[2], msg[3])
        elif msg[0] == _NOTIFICATION and len(msg) == 3:
            method, params = msg[1], msg[2]
            if isinstance(method, bytes):
                method = method.decode("utf-8", "replace")
            if method == "down" and isinstance(params, list) and len(params) == 4:
                self.down(Down(*params))
            elif method == "trace" and isinstance(params, list) and len(params) == 4:
                self.trace(TraceEvent(*params))
            elif method == "error" and isinstance(params, list) and len(params) == 2:
                self.last_error = (params[0], params[1])
            if self.on_notification is not None:
                self.on_notification(method, params)

    def down(self, down: Down) -> None:
        sink = self.down_routes.pop(down.ref, None)
        if sink is not None:
            sink.push(down)
        elif down.ref in self.kept:
            self.kept[down.ref] = down
        # else: nobody watches that ref (any more): dropped

    def trace(self, ev: TraceEvent) -> None:
        seen = set()
        for key in (ev.id, ev.name):
            for sink in self.trace_routes.get(key, ()):
                if id(sink) not in seen:
                    seen.add(id(sink))
                    sink.push(ev)

    # -- routes -----------------------------------------------------------

    def keep(self, ref: int) -> None:
        """A monitor no one watches yet (``start(monitor=True)``): its down
        is kept for :meth:`watch`."""
        self.kept[ref] = None

    def watch(self, ref: int, sink: Sink) -> None:
        """``ref``'s down goes to ``sink`` (at once if it already came)."""
        if ref in self.kept:
            down = self.kept.pop(ref)
            if down is not None:
                sink.push(down)
                return
        self.down_routes[ref] = sink

    def unwatch(self, refs: Iterable[int]) -> None:
        """Nobody waits for these refs' downs any more: drop them."""
        for ref in refs:
            self.down_routes.pop(ref, None)
            self.kept.pop(ref, None)

    def add_trace(self, server: Any, sink: Sink) -> None:
        self.trace_routes.setdefault(_trace_key(server), []).append(sink)

    def remove_trace(self, server: Any, sink: Sink) -> None:
        key = _trace_key(server)
        sinks = self.trace_routes.get(key, [])
        if sink in sinks:
            sinks.remove(sink)
        if not sinks:
            self.trace_routes.pop(key, None)

    # -- the end ----------------------------------------------------------

    def break_(self, why: str) -> ConnectionLost:
        """The connection is gone: every waiter learns it, once."""
        if self.broken is None:
            if self.last_error is not None:
                why = "%s (the daemon said %s: %s)" % (why, self.last_error[0], self.last_error[1])
            self.broken = ConnectionLost("connection", why)
            pending, self.pending = self.pending, {}
            for on_reply in pending.values():
                on_reply(self.broken, None)
            sinks = list(self.down_routes.values())
            for lst in self.trace_routes.values():
                sinks.extend(lst)
            for sink in sinks:
                sink.fail(self.broken)
        return self.broken  # type: ignore[return-value]


def _then(on_answer: Callable[[Any], None], on_reply: OnReply) -> OnReply:
    def both(error: Any, result: Any) -> None:
        if error is None:
            on_answer(result)
        on_reply(error, result)
    return both


def _trace_key(server: Any) -> Any:
    return tuple(server) if isinstance(server, list) else server


class MonitorBase:
    """What a Monitor and an AsyncMonitor share: ``refs`` (each ref → the
    server it watches), the refs not down yet, the sink their downs go
    to. Once it is dropped, the downs still to come are dropped too."""

    def __init__(self, core: Core, sink: Sink, wait: Optional[float]) -> None:
        self.refs: Dict[int, Any] = {}
        self._core = core
        self._sink = sink
        self._wait = wait
        self._left: Set[int] = set()
        weakref.finalize(self, core.unwatch, self._left)

    def _add(self, ref: int, server: Any) -> None:
        self.refs[ref] = server
        self._left.add(ref)
        self._core.watch(ref, self._sink)

    def _got(self, down: Down) -> Down:
        """``down`` came: its server is no longer waited for."""
        self._left.discard(down.ref)
        return down

    def _unwatch_left(self) -> List[int]:
        """Stops waiting for the refs not down yet; returns them (to demonitor)."""
        left = list(self._left)
        self._core.unwatch(left)
        self._left.clear()
        return left


class TraceBase:
    """What a Trace and an AsyncTrace share: the traced ``server``, the sink
    its events go to, and whether it is over (its ``"stop"`` came, or it
    was closed)."""

    def __init__(self, core: Core, server: Server, sink: Sink, wait: Optional[float]) -> None:
        self.server = server
        self._core = core
        self._sink = sink
        self._wait = wait
        self._done = False
        core.add_trace(server, sink)
        weakref.finalize(self, core.remove_trace, server, sink)

    def _exhausted(self) -> bool:
        """Over, and every event it got already taken."""
        return self._done and not self._sink.items

    def _got(self, ev: TraceEvent) -> TraceEvent:
        if ev.event == "stop":
            self._end()
        return ev

    def _end(self) -> None:
        """No more events: they are not routed here any more."""
        if not self._done:
            self._done = True
            self._core.remove_trace(self.server, self._sink)


def result_of(error: Any, result: Any) -> Any:
    """The result of an answer, or its error raised as an exception."""
    if error is None:
        return result
    if isinstance(error, GsdError):
        raise error
    if isinstance(error, (list, tuple)) and len(error) == 2:
        raise error_for(error[0], error[1])
    raise error_for("protocol", error)
