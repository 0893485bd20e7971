"""Blocking socket I/O releases the GIL: another thread makes progress
while a write waits on a full socket or a read waits for data.

Each scenario runs in a child interpreter with a deadline: if the blocked
call held the GIL, the main thread could never run again and the child
would hang, which the deadline turns into a failure (no timing is
asserted).  Nobody reads the socket while the progress is measured, so the
writer is provably still inside write() at that point.
"""
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))

PRELUDE = """
import socket, select, sys, threading, time
sys.path.insert(0, %r)
import retls
from helpers import SocketPair
p = SocketPair()

def wait_until_blocked(conn):
    # Calls that touch a connection another thread is blocked in are
    # refused; a harmless one tells when the other thread got there.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn.peer_certificate
        except retls.ArgumentError:
            return
        time.sleep(0.01)
    raise AssertionError("the other thread never blocked")
""" % HERE


def run_child(body, timeout=60):
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_blocking_write_releases_the_gil():
    out = run_child("""
        data = bytes(range(256)) * (32 * 1024)        # 8 MiB >> socket buffers
        result = []
        t = threading.Thread(target=lambda: result.append(p.client.write(data)))
        t.start()
        # Wait (releasing the GIL) until ciphertext arrives: the writer is
        # inside write() now, and will block once the buffers are full.
        select.select([p.b], [], [], 30)
        progress = 0
        while progress < 2_000_000:      # pure Python: needs the GIL
            progress += 1
        alive_while_blocked = t.is_alive() and not result
        got = bytearray()
        while len(got) < len(data):
            got += p.server.read(1 << 20)
        t.join(30)
        print(progress, alive_while_blocked, result[0] == len(data),
              bytes(got) == data)
    """)
    assert out == ["2000000", "True", "True", "True"]


def test_blocking_read_releases_the_gil():
    out = run_child("""
        result = []
        t = threading.Thread(target=lambda: result.append(p.client.read(100)))
        t.start()
        wait_until_blocked(p.client)     # it is inside read() now
        progress = 0
        while progress < 2_000_000:
            progress += 1
        alive_while_blocked = t.is_alive() and not result
        p.server.write(b"wake up")
        t.join(30)
        print(progress, alive_while_blocked, result == [b"wake up"])
    """)
    assert out == ["2000000", "True", "True"]


def test_blocking_handshake_releases_the_gil():
    out = run_child("""
        a, b = socket.socketpair()
        client = retls.Connection(retls.Context(verify=False), a)
        server = retls.Connection(retls.Context("server"), b)
        errors = []
        def handshake():
            try:
                client.do_handshake()
            except retls.Error as e:
                errors.append(e)
        t = threading.Thread(target=handshake)
        t.start()
        select.select([b], [], [], 30)   # the ClientHello is out: it waits
        progress = 0
        while progress < 2_000_000:
            progress += 1
        alive = t.is_alive()
        b.close()                        # make it fail: nobody answers
        t.join(30)
        print(progress, alive, type(errors[0]).__name__)
    """)
    assert out[:2] == ["2000000", "True"]
    assert out[2] in ("EOFError", "Error")


def test_other_threads_cannot_pull_the_connection_away():
    # While one thread is blocked in read() with the GIL released, close()
    # from another thread would free the TLS state under it (a crash):
    # retls refuses, and so it does concurrent I/O and state changes.  The
    # child process keeps a crash from taking the test runner down.
    out = run_child("""
        result = []
        def reader():
            try:
                result.append(p.client.read(100))
            except retls.Error as e:
                result.append(type(e).__name__)
        t = threading.Thread(target=reader)
        t.start()
        wait_until_blocked(p.client)
        refused = []
        for op in (p.client.close, lambda: p.client.write(b"x"),
                   p.client.read, p.client.key_update,
                   lambda: p.client.peer_certificate):
            try:
                op()
            except retls.ArgumentError as e:
                refused.append("another thread" in str(e))
        p.a.shutdown(socket.SHUT_RDWR)   # the way to wake it
        t.join(30)
        p.client.close()                 # now it may close
        print(len(refused), all(refused), result[0], p.client.fileno())
    """)
    assert out == ["5", "True", "EOFError", "-1"]
