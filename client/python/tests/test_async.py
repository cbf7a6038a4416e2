"""The asyncio client against a real daemon."""

import asyncio
import os
import time

import gsd
from gsdtest import WithDaemon

BOUND = 30  # seconds any one test's coroutine may take


class AsyncTest(WithDaemon):
    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, BOUND))

    def test_connect_both_ways(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                self.assertIsInstance(c, gsd.AsyncConnection)
                self.assertEqual(await c.ping(), "pong")
                self.assertEqual((await c.version())["protocol"], 1)
            self.assertTrue(c.closed)
            c = await gsd.aconnect(self.d.sock)
            async with c:
                self.assertEqual(await c.ping(), "pong")
            self.assertTrue(c.closed)
            with self.assertRaises(gsd.ConnectionLost):
                await c.ping()
            await c.close()  # twice is fine
        self.run_async(main())

    def test_counter_and_many_concurrent_calls(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                cid = await c.start("counter", "c", 5)
                self.assertEqual(await c.whereis("c"), cid)
                self.assertEqual(await c.call("c", ["add", 10]), 15)
                self.assertIsNone(await c.cast("c", "increment"))
                replies = await asyncio.gather(*(c.call("c", ["add", 1]) for _ in range(300)))
                self.assertEqual(sorted(replies), list(range(17, 317)))
                self.assertEqual(await c.call(cid, "get"), 316)
                self.assertEqual(await c.get_state("c"), 316)
                self.assertEqual(c._core.pending, {})
        self.run_async(main())

    def test_slow_call_does_not_hold_up_others(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                await c.start("probe", "p")
                await c.start("counter", "c")
                slow = asyncio.ensure_future(c.call("p", ["reply_after", 800, "late"]))
                t0 = time.monotonic()
                self.assertEqual(await c.ping(), "pong")
                self.assertEqual(await c.call("c", "increment"), 1)
                self.assertEqual(await c.call("p", ["echo", "quick"]), "quick")
                self.assertLess(time.monotonic() - t0, 0.5)
                self.assertFalse(slow.done())
                self.assertEqual(await slow, "late")
        self.run_async(main())

    def test_many_tasks_share_one_connection(self):
        async def worker(c, i):
            name = "w%d" % i
            await c.start("counter", name, i)
            for _ in range(20):
                await c.cast(name, "increment")
            return await c.call(name, "get")

        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                got = await asyncio.gather(*(worker(c, i) for i in range(20)))
                self.assertEqual(got, [i + 20 for i in range(20)])
                self.assertEqual(len(await c.which()), 20)
                names = [s["name"] async for s in c.iter_which(page=7)]
                self.assertEqual(sorted(names), sorted("w%d" % i for i in range(20)))
        self.run_async(main())

    def test_errors_by_code(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                with self.assertRaises(gsd.NoProc):
                    await c.call("ghost", "get")
                cid = await c.start("counter", "c")
                with self.assertRaises(gsd.AlreadyStarted) as e:
                    await c.start("counter", "c")
                self.assertEqual(e.exception.detail, cid)
                with self.assertRaises(gsd.UnknownMethod):
                    await c.request("no_such_method")
                await c.start("probe", "p")
                with self.assertRaises(gsd.Exit) as e:
                    await c.call("p", ["stop_noreply", "boom"])
                self.assertEqual(e.exception.detail, "boom")
                await c.start("probe", "q")
                with self.assertRaises(gsd.Timeout):
                    await c.call("q", ["reply_after", 2000, "x"], timeout=0.1)
                self.assertEqual(await c.call("q", ["reply_after", 50, "y"],
                                              timeout=gsd.INFINITY), "y")
                with self.assertRaises(TypeError):
                    await c.call("q", object())
                with self.assertRaises(ValueError):
                    await c.request("ping", wait=0)
                self.assertEqual(await c.ping(), "pong")
        self.run_async(main())

    def test_client_wait_and_cancel_discard_late_answers(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                await c.start("probe", "p")
                with self.assertRaises(gsd.Timeout):
                    await c.request("call", ["p", ["reply_after", 400, "x"], "infinity"], wait=0.1)
                task = asyncio.ensure_future(c.call("p", ["reply_after", 400, "z"]))
                await asyncio.sleep(0.05)
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                self.assertEqual(await c.call("p", ["reply_after", 700, "y"]), "y")
                self.assertEqual(c._core.pending, {})
        self.run_async(main())

    def test_monitors(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                a = await c.start("counter", "a")
                await c.start("counter", "b")
                m = await c.monitor("a", "b", "ghost", timeout=5)
                self.assertEqual(sorted(m.refs.values()), ["a", "b", "ghost"])
                first = await m.next()
                self.assertEqual((first.name, first.reason), ("ghost", "noproc"))
                await c.stop("b", "bye")
                await c.stop("a")
                rest = [d async for d in m]
                self.assertEqual([(d.name, d.reason) for d in rest],
                                 [("b", "bye"), ("a", "normal")])
                self.assertEqual(rest[1].id, a)
                await c.start("counter", "x")
                mx = await c.monitor("x", timeout=0.1)
                with self.assertRaises(gsd.Timeout):
                    await mx.next()
                async with mx:
                    pass  # cancelled: demonitored
                self.assertEqual(c._core.down_routes, {})
        self.run_async(main())

    def test_downs_while_calls_are_in_flight(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c, gsd.aconnect(self.d.sock) as other:
                await c.start("probe", "p")
                await c.start("counter", "c")
                for i in range(10):
                    await c.start("counter", "v%d" % i)
                m = await c.monitor(*("v%d" % i for i in range(10)), timeout=10)

                async def stopper():
                    for i in range(10):
                        await other.stop("v%d" % i, i)

                async def downs():
                    return [d async for d in m]

                results = await asyncio.gather(
                    c.call("p", ["reply_after", 300, "slow"]), stopper(), downs(),
                    *(c.call("c", "increment") for _ in range(100)))
                self.assertEqual(results[0], "slow")
                self.assertEqual([d.reason for d in results[2]], list(range(10)))
                self.assertEqual(sorted(results[3:]), list(range(1, 101)))
        self.run_async(main())

    def test_start_with_monitor(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                try:
                    started = await c.start("counter", "m", monitor=True)
                except gsd.BadArg:
                    return  # this daemon does not take the "monitor" option yet
                self.assertIsInstance(started, gsd.Started)
                await c.stop("m")
                async for down in c.watch(started.ref, timeout=5):
                    self.assertEqual(down.id, started.id)
        self.run_async(main())

    def test_operator_methods(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                cid = await c.start("counter", "c")
                calls = [c.stats(), c.clients(), c.slowlog(), c.slowlog(3), c.slowlog_reset(),
                         c.metrics(), c.suspend("c"), c.resume("c")]
                stats, clients, log, log3, reset, metrics, sus, res = await asyncio.gather(*calls)
                self.assertEqual(stats["servers"], 1)
                self.assertTrue(any(k["admin"] for k in clients))
                self.assertEqual((log, log3, reset, sus, res), ([], [], None, None, None))
                self.assertTrue(metrics.startswith("# HELP "))
                self.assertNotEqual(await c.restart("c"), cid)
                async with await c.trace("c", timeout=5) as t:
                    await c.call("c", "get")
                    self.assertEqual((await t.__anext__()).event, "call")
                await c.untrace("c")
                try:
                    self.assertIsInstance(await c.nodes(), list)
                except gsd.UnknownMethod:
                    pass  # a daemon built without distribution
                self.assertEqual(await c.ping(), "pong")
        self.run_async(main())

    def test_send_stop_info_modules_notifications(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                await c.start("probe", "p")
                await c.start("counter", "c")
                await c.send("p", "one")
                await c.send("p", "two", notify=True)
                await c.cast("c", "increment", notify=True)
                await c.cast("nobody", "increment", notify=True)
                self.assertEqual(await c.call("p", "infos"), ["one", "two"])
                self.assertEqual(await c.call("c", "get"), 1)
                self.assertEqual((await c.info("p"))["module"], "probe")
                self.assertIn("counter", [m["name"] for m in await c.modules()])
                self.assertEqual((await c.load("stack"))["name"], "stack")
                self.assertEqual([s["name"] for s in await c.which(0, 1)], ["p"])
                await c.stop("p")
                self.assertIsNone(await c.whereis("p"))
                with self.assertRaises(gsd.NoProc):
                    await c.stop("p")
        self.run_async(main())

    def test_connection_lost(self):
        async def main():
            async with gsd.aconnect(self.d.sock) as c:
                await c.start("probe", "p")
                m = await c.monitor("p")
                pending = asyncio.ensure_future(c.call("p", ["reply_after", 5000, "never"]))
                await asyncio.sleep(0.1)
                self.d.kill()
                with self.assertRaises(gsd.ConnectionLost):
                    await pending
                with self.assertRaises(gsd.ConnectionLost):
                    await m.next()
                with self.assertRaises(gsd.ConnectionLost):
                    await c.ping()
                self.assertTrue(c.closed)
        self.run_async(main())

    def test_close_with_requests_waiting(self):
        async def main():
            c = await gsd.aconnect(self.d.sock)
            await c.start("probe", "p")
            pending = asyncio.ensure_future(c.call("p", ["reply_after", 5000, "never"]))
            await asyncio.sleep(0.05)
            await c.close()
            with self.assertRaises(gsd.ConnectionLost):
                await pending
        self.run_async(main())

    def test_connect_failure_and_environment(self):
        async def main():
            with self.assertRaises(gsd.ConnectionLost):
                await gsd.aconnect(os.path.join(self.d.dir, "nothing.sock"))
            old = os.environ.get("GSD_SOCKET")
            os.environ["GSD_SOCKET"] = self.d.sock
            try:
                async with gsd.aconnect() as c:
                    self.assertEqual(c.path, self.d.sock)
                    self.assertEqual(await c.ping(), "pong")
            finally:
                if old is None:
                    del os.environ["GSD_SOCKET"]
                else:
                    os.environ["GSD_SOCKET"] = old
        self.run_async(main())


class DocExample(WithDaemon):
    """The asyncio example of docs/scripting.md, cut out of the page and run."""

    def test_async_counter_example(self):
        import re
        import subprocess
        import sys
        source = os.environ.get("GSD_SOURCE") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
        page = open(os.path.join(source, "docs", "scripting.md"), encoding="utf-8").read()
        m = re.search(r"<!-- example: async-counter.py -->\n```python\n(.*?)```\n", page, re.S)
        self.assertIsNotNone(m, "the example is not in docs/scripting.md")
        env = dict(os.environ, GSD_SOCKET=self.d.sock)
        out = subprocess.run([sys.executable, "-c", m.group(1)], env=env, cwd=self.d.dir,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "100\nhits normal\n")
