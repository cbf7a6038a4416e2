"""End-to-end tests of the gsd Python package against a real daemon.

Run by `make check` (plain build) as
    GSD_BUILD=build python3 -m unittest discover -s client/python
Each test starts its own build/gsd on a throwaway socket and stops it by PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("GSD_BUILD", os.path.join(HERE, "..", "..", "build")))
os.environ.setdefault("GSD_LIBGSCLIENT", os.path.join(BUILD, "libgsclient.so"))
sys.path.insert(0, HERE)

import gsd  # noqa: E402


class Daemon:
    """A build/gsd of our own, on a socket in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gsd-py-")
        self.sock = os.path.join(self.dir, "gsd.sock")
        self.log = open(os.path.join(self.dir, "gsd.log"), "wb")
        mods = "%s/modules:%s/test-modules" % (BUILD, BUILD)
        self.proc = subprocess.Popen([os.path.join(BUILD, "gsd"), "-s", self.sock, "-M", mods],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 5
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.sock)
                s.close()
                return
            except OSError:
                s.close()
                if self.proc.poll() is not None or time.monotonic() > end:
                    self.stop()
                    raise RuntimeError("gsd did not start")
                time.sleep(0.01)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


class GsdTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon()
        self.c = gsd.connect(self.d.sock)

    def tearDown(self):
        self.c.close()
        killed = self.d.proc.returncode == -signal.SIGKILL
        self.assertEqual(self.d.stop(), -signal.SIGKILL if killed else 0)

    def test_ping_version(self):
        self.assertEqual(self.c.ping(), "pong")
        self.assertEqual(self.c.version()["protocol"], 1)

    def test_counter(self):
        cid = self.c.start("counter", "c", 5)
        self.assertIsInstance(cid, int)
        self.assertEqual(self.c.whereis("c"), cid)
        self.assertIsNone(self.c.whereis("nobody"))
        self.assertEqual(self.c.call("c", ["add", 10]), 15)
        self.assertIsNone(self.c.cast("c", "increment"))
        self.assertEqual(self.c.call(cid, "get"), 16)  # by id
        self.assertEqual(self.c.get_state("c"), 16)

    def test_values_round_trip(self):
        self.c.start("probe", "p")
        for v in [None, True, False, 0, -1, 2**64 - 1, -2**63, 1.5, "", "héllo",
                  b"\x00\xff", [1, [2, [3]]], {"a": {"b": [None]}}, {1: "int key"}]:
            self.assertEqual(self.c.call("p", ["echo", v]), v)
        self.assertEqual(self.c.call("p", ["echo", (1, 2)]), [1, 2])  # a tuple is an array

    def test_errors_carry_code_and_detail(self):
        with self.assertRaises(gsd.NoProc) as e:
            self.c.call("ghost", "get")
        self.assertEqual(e.exception.code, "noproc")
        self.assertIsInstance(e.exception, gsd.ServerError)
        cid = self.c.start("counter", "c")
        with self.assertRaises(gsd.AlreadyStarted) as e:
            self.c.start("counter", "c")
        self.assertEqual(e.exception.detail, cid)
        with self.assertRaises(gsd.ServerError) as e:
            self.c.request("no_such_method")
        self.assertEqual(e.exception.code, "unknown_method")
        self.assertIn("unknown_method", str(e.exception))
        with self.assertRaises(TypeError):
            self.c.call("c", object())
        self.assertEqual(self.c.ping(), "pong")  # all of that left c usable

    def test_call_timeout(self):
        self.c.start("probe", "p")
        t0 = time.monotonic()
        with self.assertRaises(gsd.Timeout):
            self.c.call("p", ["reply_after", 2000, "late"], timeout=0.1)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(self.c.call("p", ["reply_after", 100, "ok"], timeout=gsd.INFINITY), "ok")
        self.assertEqual(self.c.call("p", ["echo", 1]), 1)

    def test_exit_while_calling(self):
        self.c.start("probe", "p")
        with self.assertRaises(gsd.Exit) as e:
            self.c.call("p", ["stop_noreply", "boom"])
        self.assertEqual(e.exception.detail, "boom")

    def test_send_stop_which_info_modules(self):
        self.c.start("probe", "p")
        self.assertIsNone(self.c.send("p", ["raw", 1]))
        self.assertEqual(self.c.call("p", "infos"), [["raw", 1]])
        names = [s["name"] for s in self.c.which()]
        self.assertEqual(names, ["p"])
        self.assertEqual(self.c.info("p")["module"], "probe")
        self.assertIn("probe", [m["name"] for m in self.c.modules()])
        self.assertEqual(self.c.load("stack")["name"], "stack")
        self.assertIsNone(self.c.stop("p", ["shutdown", "tests"]))
        self.assertIsNone(self.c.whereis("p"))
        with self.assertRaises(gsd.NoProc):
            self.c.stop("p")

    def test_start_options(self):
        with gsd.connect(self.d.sock) as other:
            other.start("counter", "linked", link=True)
            self.assertIsNotNone(self.c.whereis("linked"))
        self.assertTrue(other.closed)
        end = time.monotonic() + 3
        while self.c.whereis("linked") is not None and time.monotonic() < end:
            time.sleep(0.01)
        self.assertIsNone(self.c.whereis("linked"))
        with self.assertRaises(gsd.Timeout):
            self.c.start("forms", "slow", {"init": "slow", "ms": 600}, timeout=0.1)
        self.c.start("counter", "r", restart="transient", mailbox_limit=10)

    def test_monitor_iterates_downs(self):
        a = self.c.start("counter", "a")
        self.c.start("counter", "b")
        m = self.c.monitor("a", "b", "ghost")
        self.assertEqual(sorted(m.refs.values()), ["a", "b", "ghost"])
        first = next(m)
        self.assertEqual(first.reason, "noproc")  # ghost was never alive
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
        mb = self.c.monitor("b")
        with self.assertRaises(gsd.Timeout):
            next(ma)
        self.c.stop("b")
        self.c.stop("a")
        self.assertEqual(next(ma).name, "a")  # b's down, read meanwhile, is kept for mb
        self.assertEqual(next(mb).name, "b")

    def test_waits_are_checked(self):
        self.c.start("probe", "p")
        # (2**32 + 1) ms would wrap to 1 ms in a C int: it is "forever".
        forever = (2**32 + 1) / 1000
        self.assertEqual(self.c.request("call", ["p", ["reply_after", 200, "ok"], "infinity"],
                                        wait=forever), "ok")
        # The longest call timeout the daemon takes: with the grace added,
        # the client's wait is past an int.
        self.assertEqual(self.c.call("p", ["reply_after", 200, "ok"], timeout=(2**31 - 1) / 1000),
                         "ok")
        for bad in (0, -1, -0.5, None, float("nan")):
            with self.assertRaises(ValueError):
                self.c.request("ping", wait=bad)
        with self.assertRaises(ValueError):
            self.c.monitor("p", timeout=0)
        self.assertEqual(self.c.request("ping", wait=gsd.INFINITY), "pong")
        self.assertEqual(self.c.ping(), "pong")  # none of that cost the connection

    def test_failed_monitor_leaves_no_monitor_behind(self):
        import ctypes
        self.c.start("counter", "a")
        with self.assertRaises(TypeError):
            self.c.monitor("a", object())  # the second cannot be sent
        self.c.stop("a")
        d = ctypes.c_void_p()
        # No down comes: the monitor of "a" was removed.
        self.assertEqual(gsd._lib.gsc_next_down(self.c._c, 300, ctypes.byref(d)), gsd._ERROR)

    def test_downs_of_a_dropped_monitor_are_not_kept(self):
        import gc
        self.c.start("counter", "a")
        self.c.start("counter", "b")
        ma = self.c.monitor("a")
        ref_a = list(ma.refs)[0]
        del ma
        gc.collect()
        mb = self.c.monitor("b")
        self.c.stop("a")
        self.c.stop("b")
        self.assertEqual(next(mb).name, "b")  # a's down was read on the way
        self.assertNotIn(ref_a, self.c._downs)
        self.assertEqual(self.c._downs, {})

    def test_connection_lost(self):
        self.c.start("probe", "p")
        self.d.kill()
        with self.assertRaises(gsd.ConnectionLost):
            self.c.call("p", ["echo", 1])
        with self.assertRaises(gsd.ConnectionLost):
            self.c.ping()

    def test_connect_failure_and_close(self):
        with self.assertRaises(gsd.ConnectionLost):
            gsd.connect(os.path.join(self.d.dir, "nothing.sock"))
        c = gsd.connect(self.d.sock)
        c.close()
        c.close()
        with self.assertRaises(gsd.ConnectionLost):
            c.ping()

    def test_socket_from_environment(self):
        os.environ["GSD_SOCKET"] = self.d.sock
        try:
            with gsd.connect() as c:
                self.assertEqual(c.ping(), "pong")
        finally:
            del os.environ["GSD_SOCKET"]


if __name__ == "__main__":
    unittest.main()
