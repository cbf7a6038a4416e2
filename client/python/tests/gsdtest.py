"""What the tests share: a real daemon of their own, a fake one, time bounds.

The build directory is ``$GSD_BUILD``, else the source tree's ``build/``
(``make check`` sets it). Each test starts its own daemon on a socket in a
temporary directory and stops it by PID within a bounded time.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("GSD_BUILD", os.path.join(HERE, "..", "..", "..", "build")))
TEST_SECONDS = 60  # no test runs longer than this


class Daemon:
    """A build/gsd of our own, on a socket in a temporary directory."""

    def __init__(self, module_dirs=None):
        self.dir = tempfile.mkdtemp(prefix="gsd-py-")
        self.sock = os.path.join(self.dir, "gsd.sock")
        self.log = open(os.path.join(self.dir, "gsd.log"), "wb")
        mods = module_dirs or ["%s/modules" % BUILD, "%s/test-modules" % BUILD]
        self.proc = subprocess.Popen([os.path.join(BUILD, "gsd"), "-s", self.sock,
                                      "-M", ":".join(mods)],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while True:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.sock)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    self.stop()
                    raise RuntimeError("gsd did not start")
                time.sleep(0.01)
            finally:
                s.close()

    def kill(self):
        """SIGKILL, by PID."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        """SIGTERM by PID, 5 s for it to end, then SIGKILL; its exit status."""
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


class _TestTimedOut(Exception):
    pass


def _alarm(signum, frame):
    raise _TestTimedOut("the test ran past %d s" % TEST_SECONDS)


class Bounded(unittest.TestCase):
    """A test case no test of which runs past TEST_SECONDS (SIGALRM)."""

    def setUp(self):
        self._old_alarm = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TEST_SECONDS)
        self.addCleanup(self._disarm)

    def _disarm(self):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self._old_alarm)


class WithDaemon(Bounded):
    """Each test with a daemon of its own, ``self.d`` (stopped by PID after)."""

    module_dirs = None

    def setUp(self):
        super().setUp()
        self.d = Daemon(self.module_dirs)
        self.addCleanup(self._stop_daemon)

    def _stop_daemon(self):
        killed = self.d.proc.returncode == -signal.SIGKILL
        self.assertEqual(self.d.stop(), -signal.SIGKILL if killed else 0)


def wait_until(predicate, seconds=5.0):
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


class FakeDaemon:
    """A stand-in daemon on a socket of its own, in a thread: it records each
    message it reads and answers with ``handler(msg, fake)``, which returns
    the messages to send back (as one write)."""

    def __init__(self, handler):
        self.dir = tempfile.mkdtemp(prefix="gsd-pyfake-")
        self.sock = os.path.join(self.dir, "fake.sock")
        self.handler = handler
        self.received = []
        self.held = []  # for handlers that answer later
        self.error = None
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(self.sock)
        self._listener.listen(4)
        self._listener.settimeout(10)
        self._conn = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        try:
            self._conn, _ = self._listener.accept()
            self._conn.settimeout(20)
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
            while True:
                data = self._conn.recv(65536)
                if not data:
                    return
                unpacker.feed(data)
                for msg in unpacker:
                    self.received.append(msg)
                    out = self.handler(msg, self)
                    if out is None:
                        continue
                    if out == "close":
                        self._conn.close()
                        return
                    self._conn.sendall(b"".join(msgpack.packb(m, use_bin_type=True) for m in out))
        except Exception as e:  # seen by the test as self.error
            self.error = e

    def close(self):
        for s in (self._conn, self._listener):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self._thread.join(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def answer(result=None, error=None):
    """A handler that answers every request with ``result`` (or ``error``)."""
    def handler(msg, fake):
        if msg[0] == 0:
            return [[1, msg[1], error, result]]
        return None
    return handler
