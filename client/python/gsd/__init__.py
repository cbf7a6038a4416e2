"""gsd — talk to the gsd daemon from Python.

A thin layer over libgsclient (through ctypes); values travel as msgpack
(python3-msgpack) and come back as native Python types::

    import gsd

    with gsd.connect() as c:                  # $GSD_SOCKET, or the per-user socket
        cid = c.start("counter", "c", 5)
        c.call("c", ["add", 10])              # -> 15
        c.cast("c", "increment")
        for down in c.monitor("c"):           # iterate until "c" is down
            print(down.reason)

Servers are named by name (``str``) or by id (``int``). Requests, replies,
arguments and reasons are any value msgpack can carry: ``None``, ``bool``,
``int``, ``float``, ``str``, ``bytes``, lists (tuples are sent as lists) and
dicts. An error the daemon answers raises :class:`ServerError` (or one of
its subclasses, such as :class:`NoProc`), carrying ``code`` and ``detail``;
a lost connection raises :class:`ConnectionLost`.

The shared library is found through ``$GSD_LIBGSCLIENT``, then the build
tree this package sits in (``build/libgsclient.so``), then the system's
``libgsclient.so.1``. A :class:`Connection` is not thread-safe: use one per
thread.
"""

import ctypes
import math
import os
import weakref

import msgpack

__all__ = [
    "connect", "Connection", "Down", "Monitor", "GsdError", "ServerError",
    "ConnectionLost", "NoProc", "Timeout", "Exit", "AlreadyStarted",
    "BadArg", "Unauthorized", "INFINITY",
]

INFINITY = math.inf
"""A timeout that never runs out (the protocol's ``"infinity"``)."""

GRACE = 2.0
"""Seconds the client waits beyond a call's own timeout for its answer."""

WAIT_DEFAULT = 30.0
"""Seconds to wait for requests that name no timeout of their own."""

_OK, _ERROR, _BROKEN = 0, 1, -1


# ---- errors -----------------------------------------------------------------

class GsdError(Exception):
    """Anything that went wrong talking to gsd."""

    code = "error"

    def __init__(self, code, detail=None):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self):
        if self.detail is None:
            return self.code
        return "%s: %s" % (self.code, self.detail)


class ServerError(GsdError):
    """The daemon answered an error: ``code`` (``"noproc"``, ...) and ``detail``."""


class ConnectionLost(GsdError):
    """No answer: the connection could not send, broke, or timed out waiting.

    The connection cannot be used any more; ``detail`` says why.
    """


class NoProc(ServerError):
    """No such server (code ``noproc``)."""


class Timeout(ServerError):
    """The call (or init, or stop) ran out of time (code ``timeout``)."""


class Exit(ServerError):
    """The server stopped while the call waited; ``detail`` is its reason."""


class AlreadyStarted(ServerError):
    """The name is taken; ``detail`` is the id of the server holding it."""


class BadArg(ServerError):
    """The daemon could not make sense of the request (code ``badarg``)."""


class Unauthorized(ServerError):
    """This user may not do that (code ``unauthorized``)."""


_BY_CODE = {
    "noproc": NoProc, "timeout": Timeout, "exit": Exit,
    "already_started": AlreadyStarted, "badarg": BadArg,
    "unauthorized": Unauthorized,
}


# ---- the library ------------------------------------------------------------

def _load():
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("GSD_LIBGSCLIENT"),
                  os.path.join(here, "..", "..", "..", "build", "libgsclient.so"),
                  "libgsclient.so.1"]
    last = None
    for path in candidates:
        if not path:
            continue
        try:
            return ctypes.CDLL(path, use_errno=True)
        except OSError as e:
            last = e
    raise ImportError("gsd: cannot load libgsclient (set GSD_LIBGSCLIENT): %s" % last)


_lib = _load()
_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_size_p = ctypes.POINTER(ctypes.c_size_t)
for _name, _res, _args in [
        ("gsc_connect", _p, [ctypes.c_char_p]),
        ("gsc_close", None, [_pp]),
        ("gsc_errmsg", ctypes.c_char_p, [_p]),
        ("gsc_fd", ctypes.c_int, [_p]),
        ("gsc_pending", ctypes.c_bool, [_p]),
        ("gsc_request_raw", ctypes.c_int,
         [_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, _pp]),
        ("gsc_reply_value", _p, [_p, _size_p]),
        ("gsc_reply_code", ctypes.c_char_p, [_p]),
        ("gsc_reply_destroy", None, [_pp]),
        ("gsc_next_down", ctypes.c_int, [_p, ctypes.c_int, _pp]),
        ("gsc_down_value", _p, [_p, _size_p]),
        ("gsc_down_destroy", None, [_pp]),
        ("gsc_free", None, [_p])]:
    _f = getattr(_lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def _pack(value):
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError("gsd: cannot send %r as msgpack: %s" % (value, e)) from None


def _unpack(ptr, size):
    try:
        data = ctypes.string_at(ptr, size)
    finally:
        _lib.gsc_free(ptr)
    return msgpack.unpackb(data, raw=False, strict_map_key=False,
                           unicode_errors="surrogateescape")


def _ms(seconds):
    """A timeout in seconds as the protocol's ms (None: nil, inf: "infinity")."""
    if seconds is None:
        return None
    if seconds == INFINITY:
        return "infinity"
    if seconds <= 0:
        raise ValueError("gsd: a timeout is positive seconds, None or gsd.INFINITY")
    return max(1, int(round(seconds * 1000)))


_INT_MAX = 2**31 - 1


def _wait_arg(seconds):
    """A wait of the client's own, as libgsclient's int ms (-1: forever).

    Positive seconds, or INFINITY; a wait longer than an int holds is
    forever in all but name, so it becomes -1 rather than wrapping.
    """
    if seconds == INFINITY:
        return -1
    try:
        positive = seconds > 0
    except TypeError:
        positive = False
    if not positive:  # 0 would give up at once, and end the connection
        raise ValueError("gsd: a wait is positive seconds or gsd.INFINITY, not %r" % (seconds,))
    ms = max(1, int(round(seconds * 1000)))
    return -1 if ms > _INT_MAX else ms


def _wait_ms(timeout, default):
    """How long the client waits for an answer, in ms (-1: forever)."""
    return _wait_arg((default if timeout is None else timeout) + GRACE)


class Down:
    """A ``down`` event: the monitored server ended.

    Attributes: ``ref`` (the monitor), ``id`` and ``name`` (the server's;
    ``name`` is None for an anonymous one) and ``reason``.
    """

    __slots__ = ("ref", "id", "name", "reason")

    def __init__(self, ref, id, name, reason):
        self.ref, self.id, self.name, self.reason = ref, id, name, reason

    def __repr__(self):
        return "Down(ref=%r, id=%r, name=%r, reason=%r)" % (
            self.ref, self.id, self.name, self.reason)

    def __eq__(self, other):
        return isinstance(other, Down) and (
            (self.ref, self.id, self.name, self.reason) ==
            (other.ref, other.id, other.name, other.reason))


class Monitor:
    """Iterates over the ``down`` events of the servers it watches.

    Made by :meth:`Connection.monitor`; ends once every watched server is
    down. ``refs`` maps each ref to the server it watches. With a
    ``timeout`` (seconds), waiting longer than that for the next event
    raises :class:`Timeout`. Once a Monitor is dropped, the downs of its
    refs are dropped too as they arrive.
    """

    def __init__(self, conn, refs, timeout):
        self._conn = conn
        self.refs = refs
        self._left = set(refs)
        self._wait_ms = -1 if timeout is None else _wait_arg(timeout)
        self._timeout = timeout
        conn._watched.update(self._left)
        # The set, not self: what is left when this Monitor goes.
        weakref.finalize(self, conn._forget, self._left)

    def __iter__(self):
        return self

    def __next__(self):
        if not self._left:
            raise StopIteration
        down = self._conn._next_down(self._left, self._wait_ms, self._timeout)
        self._left.discard(down.ref)
        self._conn._watched.discard(down.ref)
        return down

    def cancel(self):
        """Removes the monitors that have not fired yet (demonitor)."""
        for ref in list(self._left):
            self._conn.demonitor(ref)
        self._conn._forget(self._left)
        self._left.clear()


class Connection:
    """One connection to a gsd daemon. Use :func:`connect` to make one.

    Closing it (``close()``, or leaving a ``with`` block) ends the
    connection; servers started with ``link=True`` then stop.
    """

    def __init__(self, path=None):
        self._c = _lib.gsc_connect(os.fsencode(path) if path is not None else None)
        if not self._c:
            err = ctypes.get_errno()
            raise ConnectionLost("connection", "connect %s: %s" % (
                path or "(default socket)", os.strerror(err)))
        self._downs = {}  # ref -> Down, read while waiting for another ref
        self._watched = set()  # refs a live Monitor may still ask for

    # -- life ------------------------------------------------------------

    def close(self):
        """Closes the connection. Safe to call twice."""
        if self._c:
            c = _p(self._c)
            _lib.gsc_close(ctypes.byref(c))
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self):
        """True once closed."""
        return not self._c

    def fileno(self):
        """The socket's descriptor (for select; downs may already be buffered)."""
        return _lib.gsc_fd(self._c)

    # -- the one request path --------------------------------------------

    def request(self, method, params=(), wait=WAIT_DEFAULT):
        """Sends any protocol method with a list of params; returns the result.

        ``wait`` bounds the wait for the answer: positive seconds, or
        :data:`INFINITY` to wait forever (anything else raises ValueError).
        Raises :class:`ServerError` or :class:`ConnectionLost`.
        """
        return self._request(method, list(params), _wait_arg(wait))

    def _request(self, method, params, wait_ms):
        if not self._c:
            raise ConnectionLost("connection", "closed")
        body = _pack(params)
        reply = _p()
        status = _lib.gsc_request_raw(self._c, method.encode(), body, len(body),
                                      wait_ms, ctypes.byref(reply))
        if status not in (_OK, _ERROR):
            raise ConnectionLost("connection", _lib.gsc_errmsg(self._c).decode(
                errors="replace"))
        try:
            size = ctypes.c_size_t()
            value = _unpack(_lib.gsc_reply_value(reply, ctypes.byref(size)), size.value)
            if status == _OK:
                return value
            code = _lib.gsc_reply_code(reply).decode(errors="replace")
        finally:
            _lib.gsc_reply_destroy(ctypes.byref(reply))
        raise _BY_CODE.get(code, ServerError)(code, value)

    # -- the methods -----------------------------------------------------

    def ping(self):
        """Returns ``"pong"``."""
        return self._request("ping", [], int(WAIT_DEFAULT * 1000))

    def version(self):
        """The daemon's version map: ``{"protocol": 1, "version": ...}``."""
        return self._request("version", [], int(WAIT_DEFAULT * 1000))

    def start(self, module, name=None, args=None, *, link=False, timeout=None,
              restart=None, mailbox_limit=None):
        """Starts a server of ``module`` (named ``name``, or anonymous) and
        returns its id once ``init`` has returned.

        ``link=True`` stops it when this connection closes; ``timeout``
        (seconds) bounds ``init``; ``restart`` is ``"permanent"``,
        ``"transient"`` or ``"temporary"``; ``mailbox_limit`` caps its
        mailbox. Raises :class:`AlreadyStarted` (detail: the existing id)
        when the name is taken.
        """
        options = {}
        if link:
            options["link"] = True
        if timeout is not None:
            options["timeout"] = _ms(timeout)
        if restart is not None:
            options["restart"] = restart
        if mailbox_limit is not None:
            options["mailbox_limit"] = mailbox_limit
        wait = max(WAIT_DEFAULT, (timeout or 0) + GRACE)
        return self._request("start", [module, name, args, options or None], _wait_arg(wait))

    def call(self, server, request, timeout=None):
        """Calls ``server`` and returns its reply.

        ``timeout`` in seconds: None for the daemon's default (5 s),
        :data:`INFINITY` to wait forever. Raises :class:`Timeout` when it
        runs out (the server lives on), :class:`Exit` if the server stops
        meanwhile, :class:`NoProc` if there is no such server.
        """
        return self._request("call", [server, request, _ms(timeout)],
                             _wait_ms(timeout, 5.0))

    def cast(self, server, request):
        """Queues ``request`` for the server's ``handle_cast``; returns None
        once it is in the mailbox. Raises :class:`NoProc`."""
        return self._request("cast", [server, request], int(WAIT_DEFAULT * 1000))

    def send(self, server, message):
        """Sends a raw message to the server's ``handle_info``; returns None
        once it is in the mailbox. Raises :class:`NoProc`."""
        return self._request("send", [server, message], int(WAIT_DEFAULT * 1000))

    def stop(self, server, reason=None, timeout=None):
        """Stops ``server`` with ``reason`` (None: ``"normal"``) and returns
        once its ``terminate`` has run. ``timeout`` (seconds) gives up
        waiting; None waits as long as terminate takes."""
        ms = _ms(timeout)
        wait = -1 if timeout is None else _wait_arg(timeout + GRACE)
        return self._request("stop", [server, reason, ms], wait)

    def whereis(self, name):
        """The id registered under ``name``, or None."""
        return self._request("whereis", [name], int(WAIT_DEFAULT * 1000))

    def which(self):
        """Every running server: a list of dicts with ``id``, ``name``, ``module``, ..."""
        return self._request("which", [], int(WAIT_DEFAULT * 1000))

    def info(self, server):
        """A dict about ``server``: ``id``, ``name``, ``module``, ``status``, ``mailbox``, ..."""
        return self._request("info", [server], int(WAIT_DEFAULT * 1000))

    def get_state(self, server):
        """The server's state, as its module chooses to show it."""
        return self._request("get_state", [server], int(WAIT_DEFAULT * 1000))

    def modules(self):
        """The loaded modules: a list of dicts with ``name`` and ``vsn``."""
        return self._request("modules", [], int(WAIT_DEFAULT * 1000))

    def load(self, module):
        """Loads ``module`` from the daemon's module directories."""
        return self._request("load", [module], int(WAIT_DEFAULT * 1000))

    def reload(self, module):
        """Reloads ``module``, upgrading its running servers."""
        return self._request("reload", [module], int(WAIT_DEFAULT * 1000))

    def demonitor(self, ref):
        """Removes the monitor ``ref``."""
        self._downs.pop(ref, None)
        return self._request("demonitor", [ref], int(WAIT_DEFAULT * 1000))

    def monitor(self, *servers, timeout=None):
        """Monitors each of ``servers`` and returns a :class:`Monitor`, an
        iterator of their :class:`Down` events that ends when all of them
        are down::

            for down in c.monitor("a", "b"):
                print(down.name, down.reason)

        A server that is not alive gives a down with reason ``"noproc"`` at
        once. ``timeout`` (seconds, or None/INFINITY for none) bounds each
        wait for the next event. If one of the monitor requests fails, the
        monitors already made are removed before the error is raised.

        Downs are kept only for refs a live Monitor still waits for: those
        of a Monitor that was dropped or cancelled, or of a monitor made
        with :meth:`request`, are read and dropped.
        """
        if timeout is not None:
            _wait_arg(timeout)  # a bad one fails before anything is made
        wait = int(WAIT_DEFAULT * 1000)
        refs = {}
        try:
            for server in servers:
                refs[self._request("monitor", [server], wait)] = server
            monitor = Monitor(self, refs, timeout)
        except Exception:
            for ref in refs:  # leave nothing behind on the daemon
                try:
                    self._request("demonitor", [ref], wait)
                except GsdError:
                    break  # the connection is gone, and its monitors with it
            raise
        self._drop_unwatched()
        return monitor

    def _forget(self, refs):
        """No Monitor will ask for refs again: drop their downs, now and later."""
        self._watched.difference_update(refs)
        for ref in refs:
            self._downs.pop(ref, None)

    def _drop_unwatched(self):
        """Reads the downs libgsclient has buffered; keeps the watched ones."""
        while self._c and _lib.gsc_pending(self._c):
            try:
                down = self._read_down(0)
            except ConnectionLost:
                break  # the next request says so
            if down is None:
                break
            if down.ref in self._watched:
                self._downs[down.ref] = down

    def _read_down(self, wait_ms):
        """The next down within wait_ms (-1: forever), or None if none came."""
        if not self._c:
            raise ConnectionLost("connection", "closed")
        d = _p()
        status = _lib.gsc_next_down(self._c, wait_ms, ctypes.byref(d))
        if status == _ERROR:
            return None
        if status != _OK:
            raise ConnectionLost("connection", _lib.gsc_errmsg(self._c).decode(
                errors="replace"))
        try:
            size = ctypes.c_size_t()
            return Down(*_unpack(_lib.gsc_down_value(d, ctypes.byref(size)), size.value))
        finally:
            _lib.gsc_down_destroy(ctypes.byref(d))

    def _next_down(self, refs, wait_ms, timeout):
        for ref in refs:
            if ref in self._downs:
                return self._downs.pop(ref)
        while True:
            down = self._read_down(wait_ms)
            if down is None:
                raise Timeout("timeout", "no down event within %s s" % timeout)
            if down.ref in refs:
                return down
            if down.ref in self._watched:
                self._downs[down.ref] = down  # another monitor's: keep it for that one


def connect(path=None):
    """Connects to the daemon at ``path``, or (None) to ``$GSD_SOCKET``,
    else the per-user default socket. Returns a :class:`Connection`, which
    is also a context manager. Raises :class:`ConnectionLost` if nothing
    listens there."""
    return Connection(path)
