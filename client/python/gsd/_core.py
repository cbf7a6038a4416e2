"""What the sync and the asyncio clients share: the socket's path, the
wire format (msgpack-rpc), the timeouts, the events, and a connection's
state without any I/O (:class:`Core`)."""

from __future__ import annotations

import math
import os
from collections import deque
from typing import (Any, Callable, Deque, Dict, Iterable, List, NamedTuple,
                    Optional, Sequence, Tuple, Union)

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
"""A server: a name (str), an id (int), or a remote reference ``[name, node]``."""

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
    None for an anonymous one), ``reason`` its exit reason (``"noproc"``
    for a server that was not alive when it was monitored).
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

    def request(self, method: str, params: Iterable[Any], on_reply: OnReply) -> Tuple[int, bytes]:
        """A request's msgid and bytes; ``on_reply(error, result)`` runs when
        its answer is read (not if :meth:`forget` came first)."""
        body = pack([_REQUEST, 0, method, list(params)])  # fails before a msgid is taken
        if self.broken is not None:
            raise self.broken
        while True:
            self.next_msgid = self.next_msgid + 1 if self.next_msgid < _MSGID_MAX else 1
            if self.next_msgid not in self.pending:
                break
        msgid = self.next_msgid
        self.pending[msgid] = on_reply
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


def _trace_key(server: Any) -> Any:
    return tuple(server) if isinstance(server, list) else server


def result_of(error: Any, result: Any) -> Any:
    """The result of an answer, or its error raised as an exception."""
    if error is None:
        return result
    if isinstance(error, GsdError):
        raise error
    if isinstance(error, (list, tuple)) and len(error) == 2:
        raise error_for(error[0], error[1])
    raise error_for("protocol", error)
