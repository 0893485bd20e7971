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


def test_every_other_call_is_refused_while_a_thread_is_blocked():
    # Not only close() and I/O: reading a connection's state (pending_write,
    # want, stats, fileno, version, ...) while another thread is inside a
    # call that changes it is a data race (ThreadSanitizer runs this file).
    # Every method of the C type, and every getter of retls.Connection,
    # refuses with the same ArgumentError until the blocked thread is
    # woken; then they all answer again.
    out = run_child("""
        result = []
        def reader():
            try:
                result.append(p.client.read(100))    # the peer sends nothing
            except retls.Error as e:
                result.append(type(e).__name__)
        c = p.client
        getters = {
            "pending_write": lambda: c.pending_write,
            "want": lambda: c.want,
            "pending_read": lambda: c.pending_read,
            "stats": lambda: c.stats,
            "fileno": c.fileno,
            "version": lambda: c.version,
            "cipher": lambda: c.cipher,
            "alpn_protocol": lambda: c.alpn_protocol,
            "peer_certificate": lambda: c.peer_certificate,
            "established": lambda: c.established,
            "session": lambda: c.session,
            "session_reused": lambda: c.session_reused,
            "early_data_status": lambda: c.early_data_status,
            "early_data_rejected_bytes": lambda: c.early_data_rejected_bytes,
            "bio_pending": lambda: c.bio_pending,
            "finished": lambda: c.finished,
            "peer_chain": lambda: c.peer_chain,
            "server_name": lambda: c.server_name,
        }
        # Every public method of the C type (what a getter calls), with
        # arguments of the right types: a method added later is covered.
        args = {"write": (b"x",), "write_early": (b"x",), "read": (1,),
                "read_early": (1,), "close": (0,), "key_update": (0,),
                "set_server_name": ("localhost",), "bio_write": (b"x",),
                "bio_read": (1,), "set_session": (None,),
                "finished": (64, 0), "chain_certificate": (0, 0),
                "export_keying_material": (16, "EXPERIMENTAL x", b"", 0)}
        raw = {name: (lambda f=getattr(c._c, name), a=args.get(name, ()):
                      f(*a))
               for name in vars(type(c._c))
               if not name.startswith("_") and name not in ("this", "thisown")}
        before = {name: g() for name, g in getters.items()}
        t = threading.Thread(target=reader)
        t.start()
        wait_until_blocked(c)
        refused, answered = [], []
        try:
            for name, op in list(getters.items()) + list(raw.items()):
                try:
                    op()
                    answered.append(name)
                except retls.ArgumentError as e:
                    if "another thread is inside a blocking call" in str(e) \\
                            and "sock.shutdown" in str(e):
                        refused.append(name)
                    else:
                        answered.append(name + ": " + str(e))
                except Exception as e:
                    answered.append(name + ": " + repr(e))
            blocked_repr = repr(c)
        finally:
            p.a.shutdown(socket.SHUT_RDWR)   # wake the reader
            t.join(30)
        # Woken by EOF, the connection has failed: the facts still answer,
        # session (I/O state) says Closed, as on any failed connection.
        after = {}
        for name, g in getters.items():
            try:
                after[name] = g()
            except retls.Error as e:
                after[name] = type(e).__name__
        print(len(raw) > 30, len(refused) == len(getters) + len(raw),
              "answered:" + ",".join(answered), result[0],
              "another thread" in blocked_repr,
              [n for n, v in after.items() if isinstance(v, str)
               and v.endswith("Error") or v == "Closed"],
              after["fileno"] == before["fileno"] >= 0,
              before["version"] == "TLSv1.3",
              after["peer_certificate"] == before["peer_certificate"],
              after["pending_write"] == 0,
              after["stats"] == before["stats"])
    """)
    assert out == ["True", "True", "answered:", "EOFError", "True",
                   "['session']", "True", "True", "True", "True", "True"]
