"""The synchronous client against a real daemon."""

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import gsd
from gsdtest import BUILD, WithDaemon, wait_until


class SyncTest(WithDaemon):
    def setUp(self):
        super().setUp()
        self.c = gsd.connect(self.d.sock)
        self.addCleanup(self.c.close)

    def test_ping_version(self):
        self.assertEqual(self.c.ping(), "pong")
        v = self.c.version()
        self.assertEqual(v["protocol"], 1)
        self.assertIsInstance(v["version"], str)

    def test_counter(self):
        cid = self.c.start("counter", "c", 5)
        self.assertIsInstance(cid, int)
        self.assertEqual(self.c.whereis("c"), cid)
        self.assertIsNone(self.c.whereis("nobody"))
        self.assertEqual(self.c.call("c", ["add", 10]), 15)
        self.assertIsNone(self.c.cast("c", "increment"))
        self.assertEqual(self.c.call(cid, "get"), 16)  # by id
        self.assertEqual(self.c.call("c", "increment"), 17)
        self.assertEqual(self.c.get_state("c"), 17)

    def test_values_round_trip(self):
        self.c.start("probe", "p")
        for v in [None, True, False, 0, -1, 2**64 - 1, -2**63, 1.5, "", "héllo",
                  b"\x00\xff", [1, [2, [3]]], {"a": {"b": [None]}}, {1: "int key"}]:
            self.assertEqual(self.c.call("p", ["echo", v]), v)
        self.assertEqual(self.c.call("p", ["echo", (1, 2)]), [1, 2])  # a tuple is an array

    def test_errors_by_code(self):
        with self.assertRaises(gsd.NoProc) as e:
            self.c.call("ghost", "get")
        self.assertEqual(e.exception.code, "noproc")
        self.assertIsInstance(e.exception, gsd.ServerError)
        self.assertIsInstance(e.exception, gsd.GsdError)
        cid = self.c.start("counter", "c")
        with self.assertRaises(gsd.AlreadyStarted) as e:
            self.c.start("counter", "c")
        self.assertEqual(e.exception.detail, cid)
        with self.assertRaises(gsd.UnknownMethod) as e:
            self.c.request("no_such_method")
        self.assertEqual(e.exception.code, "unknown_method")
        self.assertIn("unknown_method", str(e.exception))
        with self.assertRaises(gsd.BadArg):
            self.c.start("counter", "123")  # a name may not be all digits
        with self.assertRaises(gsd.BadArg):
            self.c.start("counter", options={"no_such_option": 1})
        with self.assertRaises(gsd.ModuleError) as e:
            self.c.start("no_such_module")
        self.assertEqual(e.exception.code, "module")
        with self.assertRaises(gsd.InitStop) as e:
            self.c.start("probe", None, {"init": "stop", "reason": "no thanks"})
        self.assertEqual(e.exception.detail, "no thanks")
        with self.assertRaises(gsd.Ignore):
            self.c.start("probe", None, {"init": "ignore"})
        with self.assertRaises(TypeError):
            self.c.call("c", object())  # nothing is sent
        self.assertEqual(self.c.ping(), "pong")  # all of that left c usable

    def test_call_timeout_and_infinity(self):
        self.c.start("probe", "p")
        t0 = time.monotonic()
        with self.assertRaises(gsd.Timeout) as e:
            self.c.call("p", ["reply_after", 2000, "late"], timeout=0.1)
        self.assertEqual(e.exception.code, "timeout")
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(self.c.call("p", ["reply_after", 100, "ok"], timeout=gsd.INFINITY), "ok")
        self.assertEqual(self.c.call("p", ["echo", 1]), 1)

    def test_client_wait_runs_out_and_late_answer_is_discarded(self):
        self.c.start("probe", "p")
        with self.assertRaises(gsd.Timeout):
            self.c.request("call", ["p", ["reply_after", 600, "x"], "infinity"], wait=0.2)
        self.assertEqual(self.c.ping(), "pong")  # still usable
        # "x" arrives while this one waits: matched by msgid, it is dropped.
        self.assertEqual(self.c.call("p", ["reply_after", 900, "y"]), "y")
        self.assertEqual(self.c._core.pending, {})

    def test_exit_while_calling(self):
        self.c.start("probe", "p")
        with self.assertRaises(gsd.Exit) as e:
            self.c.call("p", ["stop_noreply", "boom"])
        self.assertEqual(e.exception.detail, "boom")

    def test_send_stop_which_info_modules_load(self):
        self.c.start("probe", "p")
        self.assertIsNone(self.c.send("p", ["raw", 1]))
        self.assertEqual(self.c.call("p", "infos"), [["raw", 1]])
        self.assertEqual([s["name"] for s in self.c.which()], ["p"])
        info = self.c.info("p")
        self.assertEqual(info["module"], "probe")
        self.assertIn(info["status"], ("running", "hibernating"))
        self.assertIn("mailbox", info)
        self.assertIn("probe", [m["name"] for m in self.c.modules()])
        loaded = self.c.load("stack")
        self.assertEqual(loaded["name"], "stack")
        self.assertIn("vsn", loaded)
        self.assertIsNone(self.c.stop("p", ["shutdown", "tests"]))
        self.assertIsNone(self.c.whereis("p"))
        with self.assertRaises(gsd.NoProc):
            self.c.stop("p")
        with self.assertRaises(gsd.NoProc):
            self.c.info("p")

    def test_cast_and_send_as_notifications(self):
        self.c.start("counter", "c")
        self.c.start("probe", "p")
        for _ in range(5):
            self.assertIsNone(self.c.cast("c", "increment", notify=True))
        self.assertIsNone(self.c.send("p", "hello", notify=True))
        self.assertIsNone(self.c.cast("ghost", "increment", notify=True))  # ignored
        self.assertEqual(self.c.call("c", "get"), 5)  # ordered after the casts
        self.assertEqual(self.c.call("p", "infos"), ["hello"])

    def test_which_paging(self):
        ids = [self.c.start("counter", "c%d" % i) for i in range(7)]
        page = self.c.which(0, 3)
        self.assertEqual([s["id"] for s in page], ids[:3])
        self.assertEqual([s["id"] for s in self.c.which(ids[2], 3)], ids[3:6])
        self.assertEqual([s["id"] for s in self.c.which(ids[5], 3)], ids[6:])
        self.assertEqual([s["id"] for s in self.c.iter_which(page=2)], ids)
        self.assertEqual(sorted(s["id"] for s in self.c.which()), ids)

    def test_start_options(self):
        with gsd.connect(self.d.sock) as other:
            other.start("counter", "linked", link=True)
            self.assertIsNotNone(self.c.whereis("linked"))
        self.assertTrue(other.closed)
        self.assertTrue(wait_until(lambda: self.c.whereis("linked") is None, 5))
        with self.assertRaises(gsd.Timeout):
            self.c.start("forms", "slow", {"init": "slow", "ms": 600}, timeout=0.1)
        self.c.start("counter", "r", restart="transient", mailbox_limit=10)
        self.assertEqual(self.c.call("r", "get"), 0)

    def test_start_with_monitor(self):
        try:
            started = self.c.start("counter", "m", monitor=True)
        except gsd.BadArg:
            return  # this daemon does not take the "monitor" option yet
        self.assertIsInstance(started, gsd.Started)
        self.assertEqual(self.c.whereis("m"), started.id)
        self.c.stop("m", "bye")
        down = next(self.c.watch(started.ref, timeout=5))
        self.assertEqual((down.id, down.reason), (started.id, "bye"))

    def test_monitor_iterates_downs(self):
        a = self.c.start("counter", "a")
        self.c.start("counter", "b")
        m = self.c.monitor("a", "b", "ghost", timeout=5)
        self.assertEqual(sorted(m.refs.values()), ["a", "b", "ghost"])
        first = next(m)
        self.assertEqual(first.reason, "noproc")  # ghost was never alive
        self.assertIsInstance(first, gsd.Down)
        self.c.stop("b", "bye")
        self.c.stop("a")
        rest = list(m)
        self.assertEqual([(d.name, d.reason) for d in rest], [("b", "bye"), ("a", "normal")])
        self.assertEqual(rest[1].id, a)
        self.assertEqual(list(m), [])

    def test_monitor_timeout_and_other_monitors_kept(self):
        self.c.start("counter", "a")
        self.c.start("counter", "b")
        ma = self.c.monitor("a", timeout=0.1)
        mb = self.c.monitor("b", timeout=5)
        with self.assertRaises(gsd.Timeout):
            next(ma)
        self.c.stop("b")
        self.c.stop("a")
        self.assertEqual(next(ma).name, "a")  # b's down, read meanwhile, is kept for mb
        self.assertEqual(next(mb).name, "b")

    def test_downs_arrive_while_a_call_is_in_flight(self):
        self.c.start("counter", "a")
        self.c.start("probe", "p")
        m = self.c.monitor("a", timeout=5)
        with gsd.connect(self.d.sock) as other:
            t = threading.Timer(0.1, other.stop, ("a", "meanwhile"))
            t.start()
            try:
                self.assertEqual(self.c.call("p", ["reply_after", 1000, "done"]), "done")
            finally:
                t.join(10)
        self.assertEqual(len(m._sink.items), 1)  # read during the call, kept for m
        self.assertEqual(next(m).reason, "meanwhile")

    def test_monitor_context_and_demonitor(self):
        self.c.start("counter", "a")
        seen = []
        self.c._core.on_notification = lambda method, params: seen.append(method)
        with self.c.monitor("a") as m:
            self.assertEqual(len(m.refs), 1)
        ref = self.c.request("monitor", ["a"])
        self.assertIsNone(self.c.demonitor(ref))
        self.c.stop("a")
        self.c.ping()
        time.sleep(0.1)
        self.c.ping()
        self.assertEqual(seen, [])  # both monitors were removed on the daemon

    def test_failed_monitor_leaves_no_monitor_behind(self):
        self.c.start("counter", "a")
        seen = []
        self.c._core.on_notification = lambda method, params: seen.append(method)
        with self.assertRaises(TypeError):
            self.c.monitor("a", object())  # the second cannot be sent
        self.c.stop("a")
        time.sleep(0.1)
        self.c.ping()
        self.assertEqual(seen, [])
        self.assertEqual(self.c._core.down_routes, {})

    def test_downs_of_a_dropped_monitor_are_not_kept(self):
        self.c.start("counter", "a")
        self.c.start("counter", "b")
        ma = self.c.monitor("a")
        ref_a = ma.ref
        del ma
        gc.collect()
        self.assertNotIn(ref_a, self.c._core.down_routes)
        mb = self.c.monitor("b", timeout=5)
        self.c.stop("a")
        self.c.stop("b")
        self.assertEqual(next(mb).name, "b")  # a's down was read on the way, and dropped
        self.assertEqual(self.c._core.down_routes, {})

    def test_methods_the_daemon_may_not_have_yet(self):
        # Each is sent well-formed; a daemon without it answers unknown_method.
        cid = self.c.start("counter", "c")

        def check(fn, kind):
            try:
                result = fn()
            except gsd.UnknownMethod as e:
                self.assertEqual(e.code, "unknown_method")
                return None
            if kind is not None:
                self.assertIsInstance(result, kind)
            return result

        check(self.c.stats, dict)
        check(self.c.clients, list)
        check(lambda: self.c.slowlog(), list)
        check(lambda: self.c.slowlog(5), list)
        check(self.c.slowlog_reset, type(None))
        check(self.c.metrics, str)
        check(self.c.nodes, list)
        check(lambda: self.c.suspend("c"), type(None))
        check(lambda: self.c.resume("c"), type(None))
        new = check(lambda: self.c.restart("c"), int)
        if new is not None:
            self.assertNotEqual(new, cid)
        try:
            t = self.c.trace("c", timeout=5)
        except gsd.UnknownMethod:
            self.assertEqual(self.c._core.trace_routes, {})  # nothing left behind
        else:
            self.c.call("c", "get")
            self.assertEqual(next(t).event, "call")
            t.close()
        self.assertEqual(self.c.ping(), "pong")

    def test_connection_lost(self):
        self.c.start("probe", "p")
        m = self.c.monitor("p")
        self.d.kill()
        with self.assertRaises(gsd.ConnectionLost):
            self.c.call("p", ["echo", 1])
        self.assertTrue(self.c.closed)
        with self.assertRaises(gsd.ConnectionLost):
            self.c.ping()
        with self.assertRaises(gsd.ConnectionLost):
            next(m)

    def test_connect_failure_and_close(self):
        with self.assertRaises(gsd.ConnectionLost) as e:
            gsd.connect(os.path.join(self.d.dir, "nothing.sock"))
        self.assertIn("nothing.sock", str(e.exception))
        c = gsd.connect(self.d.sock)
        self.assertEqual(c.path, self.d.sock)
        c.close()
        c.close()
        self.assertTrue(c.closed)
        with self.assertRaises(gsd.ConnectionLost):
            c.ping()

    def test_waits_are_checked(self):
        self.c.start("probe", "p")
        forever = (2**32 + 1) / 1000
        self.assertEqual(self.c.request("call", ["p", ["reply_after", 200, "ok"], "infinity"],
                                        wait=forever), "ok")
        self.assertEqual(self.c.call("p", ["reply_after", 200, "ok"], timeout=(2**31 - 1) / 1000),
                         "ok")
        for bad in (0, -1, -0.5, None, float("nan"), "1"):
            with self.assertRaises(ValueError):
                self.c.request("ping", wait=bad)
        for bad in (0, -1, float("nan")):
            with self.assertRaises(ValueError):
                self.c.call("p", "x", timeout=bad)
        with self.assertRaises(ValueError):
            self.c.monitor("p", timeout=0)
        self.assertEqual(self.c.request("ping", wait=gsd.INFINITY), "pong")
        self.assertEqual(self.c.ping(), "pong")  # none of that cost the connection

    def test_socket_from_environment(self):
        old = os.environ.get("GSD_SOCKET")
        os.environ["GSD_SOCKET"] = self.d.sock
        try:
            with gsd.connect() as c:
                self.assertEqual(c.path, self.d.sock)
                self.assertEqual(c.ping(), "pong")
            with self.assertRaises(gsd.ConnectionLost):  # the explicit path comes first
                gsd.connect(os.path.join(self.d.dir, "other.sock"))
        finally:
            if old is None:
                del os.environ["GSD_SOCKET"]
            else:
                os.environ["GSD_SOCKET"] = old


class ReloadTest(WithDaemon):
    """reload, with counter.so in a module directory of the test's own."""

    def setUp(self):
        self.mods = tempfile.mkdtemp(prefix="gsd-pymods-")
        self.addCleanup(shutil.rmtree, self.mods, True)
        shutil.copy(os.path.join(BUILD, "modules", "counter.so"), self.mods)
        self.module_dirs = [self.mods]
        super().setUp()

    def test_reload_upgrades_running_counters(self):
        with gsd.connect(self.d.sock) as c:
            c.start("counter", "c", 41)
            self.assertEqual(c.call("c", "vsn"), 1)
            tmp = os.path.join(self.mods, "counter.so.new")
            shutil.copy(os.path.join(BUILD, "modules", "upgrade", "counter.so"), tmp)
            os.rename(tmp, os.path.join(self.mods, "counter.so"))
            r = c.reload("counter")
            self.assertEqual((r["name"], r["upgraded"]), ("counter", 1))
            self.assertEqual(c.call("c", "vsn"), 2)
            self.assertEqual(c.call("c", "increment"), 42)
            with self.assertRaises(gsd.ModuleError):
                c.reload("no_such_module")


class PackageTest(WithDaemon):
    def test_no_ctypes_and_where_it_comes_from(self):
        out = subprocess.run(
            [sys.executable, "-c", "import sys, gsd; print('ctypes' in sys.modules); "
             "print(gsd.__file__)"],
            capture_output=True, text=True, timeout=30, check=True).stdout.split("\n")
        self.assertEqual(out[0], "False")
        if os.environ.get("GSD_PY_INSTALLED"):  # make check: the installed package
            self.assertTrue(out[1].startswith(sys.prefix), out[1])
            self.assertTrue(os.path.exists(os.path.join(os.path.dirname(out[1]), "py.typed")))

    def test_public_names(self):
        for name in ["connect", "Connection", "Down", "Monitor", "INFINITY", "GsdError",
                     "ServerError", "ConnectionLost", "NoProc", "Timeout", "Exit",
                     "AlreadyStarted", "BadArg", "Unauthorized", "aconnect",
                     "AsyncConnection", "AsyncMonitor", "Trace", "AsyncTrace", "TraceEvent"]:
            self.assertTrue(hasattr(gsd, name), name)
        codes = ("badarg unknown_method noproc timeout exit already_started init_stop "
                 "ignore module code_change unsupported unauthorized too_large protocol "
                 "shutting_down overloaded nodedown").split()
        self.assertEqual(sorted(gsd.ERRORS), sorted(codes))
        for code in codes:
            e = gsd.error_for(code, "d")
            self.assertIsInstance(e, gsd.ServerError)
            self.assertIsNot(type(e), gsd.ServerError)
            self.assertEqual((e.code, e.detail), (code, "d"))
        e = gsd.error_for("brand_new_code", [1])  # a client must accept codes it does not know
        self.assertIs(type(e), gsd.ServerError)
        self.assertEqual(str(e), "brand_new_code: [1]")
