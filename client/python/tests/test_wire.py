"""What goes on the wire, against a stand-in daemon: every method's
request (those the daemon may not implement yet included), answers out of
order, notifications in between, and how the socket is found."""

import asyncio
import os
import tempfile
import unittest
from unittest import mock

import msgpack

import gsd
from gsd import _core
from gsdtest import Bounded, FakeDaemon, answer


class FakeCase(Bounded):
    def fake(self, handler):
        f = FakeDaemon(handler)
        self.addCleanup(f.close)
        return f

    def requests(self, fake):
        """(method, params) of each request the fake read."""
        return [(m[2], m[3]) for m in fake.received if m[0] == 0]


class RequestShapes(FakeCase):
    """Each method sends [0, msgid, method, params] as the contract says."""

    def check(self, calls, result=None):
        f = self.fake(answer(result))
        with gsd.connect(f.sock) as c:
            for fn, _ in calls:
                fn(c)
        self.assertIsNone(f.error)
        self.assertEqual(self.requests(f), [want for _, want in calls])
        msgids = [m[1] for m in f.received]
        self.assertEqual(len(set(msgids)), len(msgids))
        self.assertTrue(all(isinstance(i, int) and 0 <= i < 2**32 for i in msgids))

    def test_every_method(self):
        self.check([
            (lambda c: c.ping(), ("ping", [])),
            (lambda c: c.version(), ("version", [])),
            (lambda c: c.start("counter"), ("start", ["counter", None, None, None])),
            (lambda c: c.start("counter", "c", 5, link=True, timeout=1.5, restart="transient",
                               mailbox_limit=10, isolate="grp", hibernate_after=0.25),
             ("start", ["counter", "c", 5, {"link": True, "timeout": 1500,
                                            "restart": "transient", "mailbox_limit": 10,
                                            "isolate": "grp", "hibernate_after": 250}])),
            (lambda c: c.start("m", None, [1], timeout=gsd.INFINITY, options={"x": 1}),
             ("start", ["m", None, [1], {"x": 1, "timeout": "infinity"}])),
            (lambda c: c.call("c", "get"), ("call", ["c", "get", None])),
            (lambda c: c.call(7, ["add", 1], timeout=0.25), ("call", [7, ["add", 1], 250])),
            (lambda c: c.call(["cache", "gsd@db1"], "x", timeout=gsd.INFINITY),
             ("call", [["cache", "gsd@db1"], "x", "infinity"])),
            (lambda c: c.cast("c", ("add", 2)), ("cast", ["c", ["add", 2]])),
            (lambda c: c.send("c", b"raw"), ("send", ["c", b"raw"])),
            (lambda c: c.stop("c"), ("stop", ["c", None, None])),
            (lambda c: c.stop("c", ["shutdown", 1], timeout=2), ("stop", ["c", ["shutdown", 1], 2000])),
            (lambda c: c.whereis("c"), ("whereis", ["c"])),
            (lambda c: c.which(), ("which", [])),
            (lambda c: c.which(10, 50), ("which", [10, 50])),
            (lambda c: c.info(3), ("info", [3])),
            (lambda c: c.get_state("c"), ("get_state", ["c"])),
            (lambda c: c.modules(), ("modules", [])),
            (lambda c: c.load("stack"), ("load", ["stack"])),
            (lambda c: c.reload("stack"), ("reload", ["stack"])),
            (lambda c: c.demonitor(12), ("demonitor", [12])),
            (lambda c: c.restart("c"), ("restart", ["c"])),
            (lambda c: c.suspend("c"), ("suspend", ["c"])),
            (lambda c: c.resume("c"), ("resume", ["c"])),
            (lambda c: c.stats(), ("stats", [])),
            (lambda c: c.clients(), ("clients", [])),
            (lambda c: c.slowlog(), ("slowlog", [None])),
            (lambda c: c.slowlog(5), ("slowlog", [5])),
            (lambda c: c.slowlog_reset(), ("slowlog_reset", [])),
            (lambda c: c.untrace("c"), ("trace", ["c", False])),
            (lambda c: c.metrics(), ("metrics", [])),
            (lambda c: c.nodes(), ("nodes", [])),
            (lambda c: c.request("anything", [1, "two"]), ("anything", [1, "two"])),
        ])

    def test_every_method_async(self):
        f = self.fake(answer(None))
        want = [("ping", []), ("stats", []), ("restart", ["c"]), ("suspend", ["c"]),
                ("resume", ["c"]), ("clients", []), ("slowlog", [2]), ("slowlog_reset", []),
                ("metrics", []), ("nodes", []), ("which", [0, 5]), ("call", ["c", 1, 100]),
                ("stop", ["c", "bye", None])]

        async def main():
            async with gsd.aconnect(f.sock) as c:
                await c.ping()
                await c.stats()
                await c.restart("c")
                await c.suspend("c")
                await c.resume("c")
                await c.clients()
                await c.slowlog(2)
                await c.slowlog_reset()
                await c.metrics()
                await c.nodes()
                await c.which(None, 5)
                await c.call("c", 1, timeout=0.1)
                await c.stop("c", "bye")
        asyncio.run(asyncio.wait_for(main(), 20))
        self.assertEqual(self.requests(f), want)

    def test_cast_and_send_notifications(self):
        f = self.fake(answer("pong"))
        with gsd.connect(f.sock) as c:
            self.assertIsNone(c.cast("c", "increment", notify=True))
            self.assertIsNone(c.send(5, ["raw"], notify=True))
            c.notify("cast", ["d", 1])
            c.ping()  # the fake has read everything before it answers this
        self.assertEqual(f.received[:3], [[2, "cast", ["c", "increment"]],
                                          [2, "send", [5, ["raw"]]],
                                          [2, "cast", ["d", 1]]])

        async def main():
            async with gsd.aconnect(f2.sock) as c:
                await c.cast("c", "x", notify=True)
                await c.send("c", "y", notify=True)
                await c.ping()
        f2 = self.fake(answer("pong"))
        asyncio.run(asyncio.wait_for(main(), 20))
        self.assertEqual(f2.received[:2], [[2, "cast", ["c", "x"]], [2, "send", ["c", "y"]]])


class RemoteReferences(FakeCase):
    """A remote reference ``[name, node]``, a list or a tuple, goes as a
    msgpack array wherever a server does."""

    REF = ("cache", "gsd@db1")

    def test_packed_as_an_array(self):
        for server in (self.REF, list(self.REF)):
            for req in (_core.call_request(server, "x", None),
                        _core.cast_request(server, "x", False),
                        _core.send_request(server, "x", True),
                        _core.monitor_request(server, lambda ref, s: None)):
                _, data = _core.Core().request(req, lambda error, result: None)
                # the params' first item: a fixarray of 2 (0x92) of two fixstrs
                self.assertIn(b"\x92\xa5cache\xa7gsd@db1", data)
                msg = msgpack.unpackb(data, raw=False)
                self.assertEqual((msg[0], msg[2], msg[3][0]), (0, req.method, ["cache", "gsd@db1"]))

    def handler(self, msg, fake):
        if msg[0] != 0:
            return None
        if msg[2] == "monitor":
            return [[1, msg[1], None, 7]]
        return [[1, msg[1], None, None]]

    def want(self):
        ref = ["cache", "gsd@db1"]
        return [[0, "call", [ref, "get", 1000]], [0, "cast", [ref, "x"]], [2, "cast", [ref, "y"]],
                [0, "send", [ref, "z"]], [0, "monitor", [ref]], [0, "demonitor", [7]],
                [0, "call", [ref, "get", None]]]

    def received(self, fake):
        return [[m[0]] + m[-2:] for m in fake.received]

    def test_sync(self):
        f = self.fake(self.handler)
        with gsd.connect(f.sock) as c:
            self.assertIsNone(c.call(self.REF, "get", timeout=1))
            c.cast(self.REF, "x")
            c.cast(list(self.REF), "y", notify=True)
            c.send(self.REF, "z")
            with c.monitor(self.REF, timeout=5) as m:
                self.assertEqual(m.refs, {7: self.REF})
            c.call(list(self.REF), "get")
        self.assertIsNone(f.error)
        self.assertEqual(self.received(f), self.want())

    def test_async(self):
        async def main():
            async with gsd.aconnect(f.sock) as c:
                self.assertIsNone(await c.call(self.REF, "get", timeout=1))
                await c.cast(self.REF, "x")
                await c.cast(list(self.REF), "y", notify=True)
                await c.send(self.REF, "z")
                async with await c.monitor(self.REF, timeout=5) as m:
                    self.assertEqual(m.refs, {7: self.REF})
                await c.call(list(self.REF), "get")
        f = self.fake(self.handler)
        asyncio.run(asyncio.wait_for(main(), 20))
        self.assertIsNone(f.error)
        self.assertEqual(self.received(f), self.want())

    def test_nodedown(self):
        detail = "node gsd@db1 cannot be reached"
        f = self.fake(answer(error=["nodedown", detail]))
        with gsd.connect(f.sock) as c:
            for fn in (lambda: c.call(self.REF, "get"), lambda: c.cast(self.REF, "x"),
                       lambda: c.send(self.REF, "x"), lambda: c.monitor(self.REF)):
                with self.assertRaises(gsd.NodeDown) as e:
                    fn()
                self.assertEqual((e.exception.code, e.exception.detail), ("nodedown", detail))

        async def main():
            async with gsd.aconnect(f2.sock) as c:
                with self.assertRaises(gsd.NodeDown):
                    await c.call(list(self.REF), "get")
                with self.assertRaises(gsd.NodeDown):
                    await c.monitor(self.REF)
        f2 = self.fake(answer(error=["nodedown", detail]))
        asyncio.run(asyncio.wait_for(main(), 20))


class Answers(FakeCase):
    def test_start_with_monitor_answers_id_and_ref(self):
        def handler(msg, fake):
            if msg[2] == "start":
                # the server ends at once: its down right behind the answer
                return [[1, msg[1], None, [5, 9]], [2, "down", [9, 5, "m", "early"]]]
            return [[1, msg[1], None, None]]
        f = self.fake(handler)
        with gsd.connect(f.sock) as c:
            st = c.start("counter", "m", monitor=True)
            self.assertEqual(st, gsd.Started(5, 9))
            self.assertEqual((st.id, st.ref), (5, 9))
            c.ping()
            self.assertEqual(list(c.watch(st.ref, timeout=5)), [gsd.Down(9, 5, "m", "early")])
        self.assertEqual(f.received[0][3][3], {"monitor": True})

        async def main():
            async with gsd.aconnect(f2.sock) as c:
                st = await c.start("counter", "m", monitor=True)
                await c.ping()
                self.assertEqual([d async for d in c.watch(st.ref, timeout=5)],
                                 [gsd.Down(9, 5, "m", "early")])
        f2 = self.fake(handler)
        asyncio.run(asyncio.wait_for(main(), 20))

    def test_down_before_the_answer_it_races_with(self):
        # A monitor of a server that is not alive: its down may come in the
        # same read as the monitor's answer; it must not be lost.
        def handler(msg, fake):
            if msg[2] == "monitor":
                ref = 100 + len(fake.received)
                return [[1, msg[1], None, ref], [2, "down", [ref, 0, msg[3][0], "noproc"]]]
            return [[1, msg[1], None, "pong"]]
        f = self.fake(handler)
        with gsd.connect(f.sock) as c:
            m = c.monitor("x", "y", timeout=5)
            self.assertEqual(sorted(d.name for d in m), ["x", "y"])

        async def main():
            async with gsd.aconnect(f2.sock) as c:
                m = await c.monitor("x", "y", timeout=5)
                self.assertEqual(sorted([d.name async for d in m]), ["x", "y"])
        f2 = self.fake(handler)
        asyncio.run(asyncio.wait_for(main(), 20))

    def test_answers_out_of_order_and_notifications_between(self):
        # The fake holds the first call's answer until the second arrives,
        # answers the second first, with a down and a trace in between.
        def handler(msg, fake):
            if msg[0] != 0:
                return None
            if msg[2] == "monitor":
                return [[1, msg[1], None, 1]]
            if msg[2] == "trace":
                return [[1, msg[1], None, None]]
            if msg[2] == "call" and msg[3][1] == "first":
                fake.held.append(msg)
                return None
            if msg[2] == "call":
                first = fake.held.pop()
                return [[1, msg[1], None, "second"],
                        [2, "down", [1, 3, "a", "gone"]],
                        [2, "trace", [3, "a", "call", "first"]],
                        [2, "trace", [3, "a", "stop", "gone"]],
                        [2, "whatever", []],
                        [1, first[1], ["exit", "gone"], None]]
            return [[1, msg[1], None, None]]

        async def main():
            async with gsd.aconnect(f.sock) as c:
                m = await c.monitor("a", timeout=5)
                t = await c.trace("a", timeout=5)
                first = asyncio.ensure_future(c.call("a", "first"))
                await asyncio.sleep(0.05)
                self.assertEqual(await c.call("a", "second"), "second")
                with self.assertRaises(gsd.Exit) as e:
                    await first
                self.assertEqual(e.exception.detail, "gone")
                self.assertEqual([d.reason async for d in m], ["gone"])
                events = [ev async for ev in t]
                self.assertEqual(events, [gsd.TraceEvent(3, "a", "call", "first"),
                                          gsd.TraceEvent(3, "a", "stop", "gone")])
                self.assertEqual(c._core.trace_routes, {})
        f = self.fake(handler)
        asyncio.run(asyncio.wait_for(main(), 20))
        self.assertIsNone(f.error)

    def test_sync_trace_iterates_until_stop(self):
        def handler(msg, fake):
            if msg[0] != 0:
                return None
            out = [[1, msg[1], None, None]]
            if msg[2] == "trace" and msg[3][1]:
                out += [[2, "trace", [4, None, "cast", "increment"]],
                        [2, "trace", [99, "other", "cast", "x"]],  # not ours
                        [2, "trace", [4, None, "dropped", 3]],
                        [2, "trace", [4, None, "stop", "normal"]]]
            return out
        f = self.fake(handler)
        with gsd.connect(f.sock) as c:
            with c.trace(4, timeout=5) as t:
                self.assertEqual([ev.event for ev in t], ["cast", "dropped", "stop"])
            with c.trace(4, timeout=5) as t:
                self.assertEqual(next(t).data, "increment")
            # leaving the block turned it off
        self.assertEqual(self.requests(f), [("trace", [4, True]), ("trace", [4, True]),
                                            ("trace", [4, False])])

    def test_error_notification_then_close(self):
        def handler(msg, fake):
            if msg[2] == "ping":
                return [[1, msg[1], None, "pong"]]
            fake._conn.sendall(gsd._core.pack([2, "error", ["too_large", "message over 16 MiB"]]))
            return "close"
        f = self.fake(handler)
        with gsd.connect(f.sock) as c:
            self.assertEqual(c.ping(), "pong")
            with self.assertRaises(gsd.ConnectionLost) as e:
                c.call("x", "big")
            self.assertIn("too_large", str(e.exception))
            self.assertTrue(c.closed)

    def test_unknown_error_code(self):
        f = self.fake(answer(error=["brand_new", {"why": 1}]))
        with gsd.connect(f.sock) as c:
            with self.assertRaises(gsd.ServerError) as e:
                c.ping()
            self.assertIs(type(e.exception), gsd.ServerError)
            self.assertEqual((e.exception.code, e.exception.detail), ("brand_new", {"why": 1}))

    def test_client_wait_runs_out_and_the_connection_lives_on(self):
        def handler(msg, fake):
            if msg[2] == "call":
                return None  # never answers
            return [[1, msg[1], None, "pong"]]
        f = self.fake(handler)
        with gsd.connect(f.sock) as c:
            with self.assertRaises(gsd.Timeout):
                c.request("call", ["x", "y", None], wait=0.1)
            self.assertEqual(c.ping(), "pong")
            m = c.watch(1234, timeout=0.1)
            with self.assertRaises(gsd.Timeout):
                next(m)


class SocketPath(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="gsd-pypath-")
        self.addCleanup(self.dir.cleanup)
        env = {k: v for k, v in os.environ.items() if k not in ("GSD_SOCKET", "XDG_RUNTIME_DIR")}
        patcher = mock.patch.dict(os.environ, env, clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_explicit_then_environment(self):
        os.environ["GSD_SOCKET"] = "/env/gsd.sock"
        os.environ["XDG_RUNTIME_DIR"] = "/xdg"
        self.assertEqual(gsd.socket_path("/flag/gsd.sock"), "/flag/gsd.sock")
        self.assertEqual(gsd.socket_path(), "/env/gsd.sock")
        self.assertEqual(gsd.socket_path(""), "/env/gsd.sock")

    def test_root(self):
        os.environ["XDG_RUNTIME_DIR"] = "/xdg"
        with mock.patch("os.geteuid", return_value=0):
            self.assertEqual(gsd.socket_path(), "/run/gsd/gsd.sock")

    def test_user(self):
        system = os.path.join(self.dir.name, "system.sock")
        xdg = os.path.join(self.dir.name, "xdg")
        os.mkdir(xdg)
        with mock.patch("os.geteuid", return_value=65534), \
                mock.patch.object(_core, "SYSTEM_SOCKET", system):
            os.environ["XDG_RUNTIME_DIR"] = xdg
            own = os.path.join(xdg, "gsd.sock")
            self.assertEqual(gsd.socket_path(), own)  # neither exists: the user's own
            open(system, "w").close()
            self.assertEqual(gsd.socket_path(), system)  # own missing: the system daemon's
            open(own, "w").close()
            self.assertEqual(gsd.socket_path(), own)  # own there: own
            del os.environ["XDG_RUNTIME_DIR"]
            os.remove(system)
            self.assertEqual(gsd.socket_path(), "/tmp/gsd-65534/gsd.sock")

    def test_connect_uses_it(self):
        os.environ["GSD_SOCKET"] = os.path.join(self.dir.name, "none.sock")
        with self.assertRaises(gsd.ConnectionLost) as e:
            gsd.connect()
        self.assertIn("none.sock", str(e.exception))
