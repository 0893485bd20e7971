#!/usr/bin/env python3
"""fuzz/python/fuzz_api.py - atheris fuzzing of the Python API.

Where scripts break the retry rule: the buffer given to a write that
raised WantRead/WantWrite is mutated, resized, released or collected
before the retry.  Each input is a sequence of operations on one connected
pair, retls.pair() with a small capacity or two memory-mode connections
whose ciphertext the harness moves: writes of bytes, bytearray and
memoryview objects (mutated, resized or released after a WANT, and
gc.collect() at random points), flush, read, renegotiate, key_update,
shutdown, close, and a second thread calling close() while the first is
blocked inside a call on a socket.

The invariant, checked after every operation: what each end has read is a
prefix of what its peer was told was written followed by the pending
write (retls's own copy: never the mutated buffer); after the final drain,
exactly the acknowledged bytes wherever both ends are still open.  Every
exception must be one the call documents in that state.

    PYTHONPATH=build/bindings/python python3 fuzz/python/fuzz_api.py \\
        -runs=20000 fuzz/python/corpus-work       # atheris = libFuzzer flags

Under the ASan build (build-asan) run it with the ASan runtime preloaded,
as fuzz/python/run.sh does.
"""
import gc
import os
import socket
import sys
import threading
import time

import atheris

with atheris.instrument_imports(include=["retls"]):
    import retls

CTX = {}
VERBOSE = bool(os.environ.get("FUZZ_API_VERBOSE"))


def contexts(version):
    if version not in CTX:
        s = retls.Context("server", min_version=version, max_version=version)
        s.use_selfsigned("localhost")
        c = retls.Context("client", verify=False, min_version=version,
                          max_version=version)
        CTX[version] = (c, s)
    return CTX[version]


class Broken(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Broken(what)


class End:
    def __init__(self, name, conn):
        self.name = name
        self.conn = conn
        self.peer = None
        self.acked = bytearray()   # bytes it was told were written
        self.pending = None        # bytes of the pending write (a copy)
        self.lost_tail = b""       # a pending write dropped by a failure
                                   # or close(discard): records of it may
                                   # have reached the peer
        self.received = bytearray()
        self.open = True           # not closed
        self.failed = False        # a fatal error happened
        self.shut = False          # shutdown() got through
        self.got_zero = False

    def usable(self):
        return self.open and not self.failed

    def check_prefix(self):
        p = self.peer
        sent = bytes(p.acked) + (p.pending or p.lost_tail)
        n = len(self.received)
        check(n <= len(sent), f"{self.name} read {n} bytes, peer told "
              f"{len(p.acked)} (+{len(p.pending or b'')} pending): invented "
              "or repeated bytes")
        check(self.received == sent[:n], f"{self.name}: bytes lost, "
              "repeated, reordered or taken from a mutated buffer")


class Harness:
    def __init__(self, fdp):
        self.fdp = fdp
        self.rekeyed = False
        self.version = "TLSv1.3" if fdp.ConsumeBool() else "TLSv1.2"
        self.memory = fdp.ConsumeBool()
        cap = 64 + fdp.ConsumeIntInRange(0, 255) ** 2
        c, s = contexts(self.version)
        if self.memory:
            a = retls.Connection(c, None, capacity=cap)
            b = retls.Connection(s, None, capacity=cap)
        else:
            a, b = retls.pair(c, s, capacity=cap, handshake=False)
        self.a, self.b = End("client", a), End("server", b)
        self.a.peer, self.b.peer = self.b, self.a
        self.handshake()
        if VERBOSE:
            print(f"{self.version} {'memory' if self.memory else 'pair'} "
                  f"capacity {cap}", file=sys.stderr)

    def ends(self):
        return (self.a, self.b)

    # -- moving ciphertext and the handshake ------------------------------

    def transfer(self, e, limit=None):
        if not self.memory or not e.open or not e.peer.open:
            return
        data = e.conn.bio_read(-1 if limit is None else limit)
        if data:
            e.peer.conn.bio_write(data)

    def handshake(self):
        done = [False, False]
        for _ in range(200):
            for i, e in enumerate(self.ends()):
                try:
                    if not done[i]:
                        e.conn.do_handshake()
                        done[i] = True
                    else:  # take in what follows (TLS 1.3 tickets)
                        check(e.conn.read(1) == b"", "data in a handshake")
                except retls.WantIO:
                    pass
                self.transfer(e)
            if all(done):
                return
        raise Broken("handshake did not finish")

    # -- operations ---------------------------------------------------------

    def fatal(self, e, exc):
        """A failure: allowed where the protocol explains it."""
        explained = (not e.peer.open or e.peer.failed or self.rekeyed
                     or e.got_zero)
        check(explained, f"{e.name}: unexpected {type(exc).__name__}: {exc}")
        e.failed = True
        if e.pending is not None:  # retls drops the copy: never
            e.lost_tail = e.pending  # acknowledged, perhaps partly sent
        e.pending = None

    def gate(self, e, exc):
        """Closed/ArgumentError answers of a connection that is done."""
        if isinstance(exc, retls.Closed):
            check(not e.usable(), f"{e.name}: Closed on an open connection")
            return True
        return False

    def make_buffer(self, data):
        kind = self.fdp.ConsumeIntInRange(0, 3)
        if kind == 0:
            return bytes(data)
        if kind == 1:
            return bytearray(data)
        if kind == 2:
            return memoryview(bytearray(data))
        return memoryview(bytes(data))

    def spoil(self, obj):
        """What scripts do to a buffer after a WANT: mutate, resize,
        release, drop."""
        how = self.fdp.ConsumeIntInRange(0, 3)
        target = obj.obj if isinstance(obj, memoryview) else obj
        if how == 0 and isinstance(target, bytearray) and len(target):
            for i in range(0, len(target), 97):
                target[i] ^= 0x5A
        elif how == 1 and isinstance(obj, bytearray):
            try:
                if len(obj) > 1:
                    del obj[len(obj) // 2:]
                obj.extend(b"appended")
            except BufferError:
                pass  # still exported somewhere: Python refuses, fine
        elif how == 2 and isinstance(obj, memoryview):
            obj.release()
        if self.fdp.ConsumeBool():
            gc.collect()

    def write(self, e, retry):
        fdp = self.fdp
        if retry and e.pending is not None:
            data = e.pending
            if fdp.ConsumeBool() and data:  # other bytes: refused
                data = bytes([data[0] ^ 1]) + data[1:]
        else:
            n = fdp.ConsumeIntInRange(0, 3)
            size = (0, 16, 600, 70000)[n]
            size = fdp.ConsumeIntInRange(0, size) if size else 0
            data = os.urandom(size)
        obj = self.make_buffer(data)
        snapshot = bytes(obj)
        try:
            n = e.conn.write(obj)
        except retls.WantIO:
            check(e.usable(), "WantIO on a closed connection")
            if e.pending is None:
                e.pending = snapshot
            else:
                check(snapshot == e.pending, "a retry with other bytes "
                      "was taken as the pending write")
            self.spoil(obj)
            return
        except retls.RetryMismatch:
            check(e.pending is not None and snapshot != e.pending,
                  f"{e.name}: RetryMismatch without a different pending write")
            return
        except retls.SSLError as exc:
            if e.shut and e.pending is None and e.usable():
                return  # write after shutdown(): refused, still readable
            return self.fatal(e, exc)
        except retls.Error as exc:
            if self.gate(e, exc):
                return
            return self.fatal(e, exc)
        check(e.usable(), f"{e.name}: write on a closed connection worked")
        if not snapshot:
            check(n == 0, "0-byte write")
            return
        if e.pending is not None:
            check(snapshot == e.pending, f"{e.name}: write of other bytes "
                  "while one was pending succeeded")
            e.pending = None
        check(n == len(snapshot), f"{e.name}: write took {n} of "
              f"{len(snapshot)}")
        e.acked += snapshot
        self.spoil(obj)

    def flush(self, e):
        try:
            n = e.conn.flush()
        except retls.WantIO:
            check(e.pending is not None, "flush WantIO with nothing pending")
            return
        except retls.Error as exc:
            if self.gate(e, exc):
                return
            return self.fatal(e, exc)
        if e.pending is None:
            check(n == 0, f"{e.name}: flush with nothing pending gave {n}")
        else:
            check(n == len(e.pending), "flush took part of the write")
            e.acked += e.pending
            e.pending = None

    def read(self, e, size, times):
        for _ in range(times):
            try:
                data = e.conn.read(size)
            except retls.WantIO:
                return False
            except retls.ZeroReturn:
                check(e.peer.shut, f"{e.name}: ZeroReturn, peer never shut")
                e.got_zero = True
                check(e.received == e.peer.acked, "close_notify before all "
                      "acknowledged bytes")
                return False
            except retls.Error as exc:
                if not self.gate(e, exc):
                    self.fatal(e, exc)
                return False
            e.received += data
            e.check_prefix()
        return True

    def rekey(self, e, key_update):
        try:
            if key_update:
                e.conn.key_update(request_peer=self.fdp.ConsumeBool())
            else:
                e.conn.renegotiate()
            self.rekeyed = True
        except (retls.ArgumentError, retls.SSLError):
            pass  # wrong protocol, after close_notify, or refused now
        except retls.Error as exc:
            if not self.gate(e, exc):
                self.fatal(e, exc)

    def shutdown(self, e):
        try:
            e.conn.shutdown()
            check(e.pending is None, "shutdown with a pending write worked")
            e.shut = True
        except retls.WritePending:
            check(e.pending is not None, "WritePending with nothing pending")
        except retls.WantIO:
            e.shut = True
        except retls.ArgumentError:
            pass  # a renegotiation is pending
        except retls.Error as exc:
            if not self.gate(e, exc):
                self.fatal(e, exc)

    def close(self, e):
        discard = self.fdp.ConsumeBool()
        try:
            e.conn.close(discard=discard)
        except retls.WritePending:
            check(e.pending is not None and not discard and e.open,
                  "WritePending from close")
            return
        check(e.pending is None or discard or not e.open,
              "close dropped a pending write")
        if e.open and self.memory and e.peer.open:
            e.peer.conn.bio_write_eof()
        e.open = False
        if e.pending is not None:
            e.lost_tail = e.pending
        e.pending = None

    def close_from_other_thread(self):
        """A thread blocked in a call on a socket; close() from another
        thread must be refused (ArgumentError), the socket's shutdown
        wakes the blocked one, then close works."""
        ctx = contexts(self.version)[0]
        s1, s2 = socket.socketpair()
        conn = retls.Connection(ctx, s1)
        result = []

        def blocked():
            try:
                conn.do_handshake()  # waits for a ServerHello forever
            except retls.Error as exc:
                result.append(exc)

        t = threading.Thread(target=blocked)
        t.start()
        # Its ClientHello arriving means the thread is inside the call
        # (listed busy before it released the GIL), waiting for an answer.
        s2.settimeout(30)
        check(s2.recv(1, socket.MSG_PEEK) != b"", "no ClientHello")
        try:
            conn.close()
            refused = False
        except retls.ArgumentError as exc:
            refused = "another thread" in str(exc)
        check(refused, "close() from another thread during a blocking call "
              "was not refused")
        s1.shutdown(socket.SHUT_RDWR)  # the documented way to wake it
        t.join(30)
        check(not t.is_alive(), "the blocked thread did not wake up")
        check(result and isinstance(result[0], (retls.EOFError, retls.Error)),
              f"blocked call ended with {result}")
        conn.close()
        s1.close()
        s2.close()

    def pump(self, rounds):
        for _ in range(rounds):
            for e in self.ends():
                self.transfer(e)
                if e.usable():
                    self.read(e, 16384, 64)
                if e.usable() and e.pending is not None:
                    self.flush(e)
                self.transfer(e)

    # -- the input ----------------------------------------------------------

    def run(self):
        fdp = self.fdp
        for _ in range(fdp.ConsumeIntInRange(0, 40)):
            if fdp.remaining_bytes() == 0:
                break
            op = fdp.ConsumeIntInRange(0, 12)
            e = self.a if fdp.ConsumeBool() else self.b
            if VERBOSE:
                print(f"op {op} {e.name} pending {e.pending and len(e.pending)}"
                      f" acked {len(e.acked)} open {e.open} failed "
                      f"{e.failed} shut {e.shut}", file=sys.stderr)
            if op in (0, 1):
                self.write(e, retry=op == 1)
            elif op == 2:
                self.flush(e)
            elif op == 3:
                self.read(e, 1 + fdp.ConsumeIntInRange(0, 300),
                          1 + fdp.ConsumeIntInRange(0, 7))
            elif op == 4:
                gc.collect()
            elif op in (5, 6):
                self.rekey(e, key_update=op == 6)
            elif op == 7:
                self.shutdown(e)
            elif op == 8:
                if fdp.ConsumeIntInRange(0, 3) == 0:
                    self.close(e)
            elif op == 9:
                if self.memory:
                    self.transfer(e, 1 + fdp.ConsumeIntInRange(0, 4096))
                else:
                    self.pump(1)
            elif op == 10:
                self.pump(1 + fdp.ConsumeIntInRange(0, 4))
            elif op == 11:
                if fdp.ConsumeIntInRange(0, 7) == 0:
                    self.close_from_other_thread()
            else:
                self.write(e, retry=False)
            for x in self.ends():
                if x.open:
                    x.check_prefix()
        self.drain()

    def drain(self):
        quiet = 0
        for _ in range(300):  # until three rounds in a row change nothing
            before = (len(self.a.received), len(self.b.received),
                      self.a.pending, self.b.pending)
            self.pump(1)
            quiet = quiet + 1 if before == (
                len(self.a.received), len(self.b.received), self.a.pending,
                self.b.pending) else 0
            if quiet == 3:
                break
        for rx in self.ends():
            tx = rx.peer
            rx.check_prefix()
            if (rx.usable() and tx.usable() and tx.pending is None
                    and not self.rekeyed):
                check(rx.received == tx.acked, f"after the drain {rx.name} "
                      f"read {len(rx.received)} of {len(tx.acked)} "
                      "acknowledged bytes")
        for e in self.ends():
            e.conn.close(discard=True)


def test_one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    Harness(fdp).run()


def main():
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
