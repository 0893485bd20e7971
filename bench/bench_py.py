"""bench_py.py - the Python rows of ./run.sh bench (run_bench.py drives it).

One workload per process; each prints ONE JSON line on stdout.

  bench_py.py mem IMPL SIZE SECONDS CERT KEY
      An in-process client and server over memory BIOs, untimed handshake,
      then for about SECONDS: write SIZE bytes on the client, drain all of
      its outgoing ciphertext into one bytes object, drop it.
      -> {"writes":N,"seconds":S,"ct_one_write":BYTES}
  bench_py.py sock IMPL SIZE TOTAL HOST PORT
      A blocking client to bench/sink: TOTAL bytes in SIZE writes, then
      close_notify and wait for the sink's.  -> {"writes":N,"seconds":S}
  bench_py.py footprint-mem IMPL N CERT KEY
      RSS growth per established memory-mode connection over N handshaken
      client+server pairs.  -> {"conns":2N,"kib_per_conn":K}
  bench_py.py footprint-sock IMPL N HOST PORT
      RSS growth per established client connection over N connections to
      the sink, all open at once.  -> {"conns":N,"kib_per_conn":K}
  bench_py.py alt-mem SIZE SECONDS CERT KEY
  bench_py.py alt-sock SIZE TOTAL HOST PORT
      retls and CPython's ssl in ONE process, alternating slices of about
      1 MiB (memory: the workload of "mem"; sockets: one client of each
      to the sink), CPU time summed per side, so a slow phase of a loaded
      machine hits both alike.  -> {"retls":W,"ssl":W} (writes/s)
  bench_py.py cycles N
      RSS over N write/retry cycles on retls.pair(capacity=1024): each 2 KiB
      write raises WantWrite, the peer reads, flush() finishes it.
      -> {"cycles":N,"wants":W,"rss_kib":[at 0, 10%, 50%, 100%]}

IMPL: retls, ssl (CPython's SSLObject + MemoryBIO / SSLSocket), pyopenssl,
m2crypto.  The server end of every memory workload is a retls connection
limited to TLS 1.3 with TLS_AES_128_GCM_SHA256 (CPython's ssl cannot limit
TLS 1.3 suites itself), so every client negotiates the same cipher; each
workload checks that it did.
"""

import gc
import json
import os
import resource
import socket
import sys
import time

import retls

SUITE = "TLS_AES_128_GCM_SHA256"
BATCH = 64   # writes between two looks at the clock


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGESIZE") // 1024)


def retls_server_ctx(cert, key):
    return retls.Context("server", certfile=cert, keyfile=key,
                         min_version="TLSv1.3", ciphersuites=SUITE)


def retls_client_ctx():
    return retls.Context("client", verify=False, min_version="TLSv1.3",
                         ciphersuites=SUITE)


def memory_connection(ctx):
    # Unbounded like ssl.MemoryBIO (retls' default since issue 11); older
    # builds need an explicit capacity above the largest write.
    try:
        return retls.Connection(ctx, None, capacity=None)
    except TypeError:
        return retls.Connection(ctx, None, capacity=1 << 20)


# ---- memory-mode clients: (client, write, drain, cipher) -------------------
# Each returns an object with .hs() (one handshake step, True when done),
# .out() (ciphertext for the server), .into(b) (ciphertext from it), and
# the two hot calls write(data) and drain().

class RetlsMem:
    def __init__(self):
        self.c = memory_connection(retls_client_ctx())
        self.write = self.c.write
        self.drain = self.c.bio_read

    def hs(self):
        try:
            self.c.do_handshake()
            return True
        except retls.WantRead:
            return False

    def out(self):
        return self.c.bio_read()

    def into(self, data):
        self.c.bio_write(data)

    def cipher(self):
        return self.c.cipher


class SslMem:
    def __init__(self):
        import ssl
        self.ssl = ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.c = ctx.wrap_bio(self.inc, self.outg)
        self.write = self.c.write
        self.drain = self.outg.read

    def hs(self):
        try:
            self.c.do_handshake()
            return True
        except self.ssl.SSLWantReadError:
            return False

    def out(self):
        return self.outg.read()

    def into(self, data):
        self.inc.write(data)

    def cipher(self):
        return self.c.cipher()[0]


class PyOpenSSLMem:
    def __init__(self):
        from OpenSSL import SSL
        self.SSL = SSL
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        self.c = SSL.Connection(ctx, None)
        self.c.set_connect_state()
        # pyOpenSSL turns on SSL_MODE_ENABLE_PARTIAL_WRITE: send() may take
        # one record only, so whole writes are sendall().
        self.write = self.c.sendall
        self.bufsize = 1 << 20

    def setup(self, size):
        # bio_read(n) needs a size; the whole ciphertext of one write plus
        # one byte, so one call takes it all (see the table's notes).
        read, n = self.c.bio_read, ct_size(size) + 1
        self.drain = lambda: read(n)

    def hs(self):
        try:
            self.c.do_handshake()
            return True
        except self.SSL.WantReadError:
            return False

    def out(self):
        try:
            return self.c.bio_read(self.bufsize)
        except self.SSL.WantReadError:
            return b""

    def into(self, data):
        self.c.bio_write(data)

    def cipher(self):
        return self.c.get_cipher_name()


class M2Mem:
    def __init__(self):
        from M2Crypto import BIO, SSL, m2
        self.m2 = m2
        ctx = SSL.Context("tls")
        ctx.set_verify(SSL.verify_none, 0)
        self.c = SSL.Connection(ctx)   # makes an unused socket; closed below
        self.c.socket.close()
        self.rb, self.wb = BIO.MemoryBuffer(), BIO.MemoryBuffer()
        self.c.set_bio(self.rb, self.wb)
        self.c.set_connect_state()
        self.write = self.c.write
        self.drain = self.wb.read

    def hs(self):
        return self.m2.ssl_do_handshake(self.c.ssl) == 1

    def out(self):
        return self.wb.read() or b""

    def into(self, data):
        self.rb.write(data)

    def cipher(self):
        return self.c.get_cipher().name()


MEM_CLIENTS = {"retls": RetlsMem, "ssl": SslMem, "pyopenssl": PyOpenSSLMem,
               "m2crypto": M2Mem}


def ct_size(n):
    return n + 22 * -(-n // 16384)


def mem_handshake(client, server):
    done_c = done_s = False
    for _ in range(100):
        done_c = done_c or client.hs()
        data = client.out()
        if data:
            server.bio_write(data)
        if not done_s:
            try:
                server.do_handshake()
                done_s = True
            except retls.WantRead:
                pass
        data = server.bio_read()
        if data:
            client.into(data)
        if done_c and done_s:
            return
    raise SystemExit("memory handshake made no progress")


def run_mem(impl, size, seconds, cert, key):
    client = MEM_CLIENTS[impl]()
    server = memory_connection(retls_server_ctx(cert, key))
    mem_handshake(client, server)
    if client.cipher() != SUITE:
        raise SystemExit(f"{impl} negotiated {client.cipher()}, not {SUITE}")
    if hasattr(client, "setup"):
        client.setup(size)
    data = os.urandom(size)
    write, drain = client.write, client.drain
    batch = range(BATCH)
    writes = 0
    cpu = time.process_time   # CPU time: see bench_c.c's cpu_now()
    t0, c0 = time.perf_counter(), cpu()
    while True:
        for _ in batch:
            write(data)
            drain()
        writes += BATCH
        cpu_elapsed = cpu() - c0
        if cpu_elapsed >= seconds:
            break
    elapsed = time.perf_counter() - t0
    if write(data) not in (None, size):   # sendall() returns None
        raise SystemExit(f"{impl}: short write")
    ct = len(drain())
    rest = client.out()
    print(json.dumps({"writes": writes, "seconds": elapsed,
                      "cpu_seconds": cpu_elapsed,
                      "ct_one_write": ct + len(rest)}))


# ---- socket clients ------------------------------------------------------------

def sock_retls(host, port):
    conn = retls.connect(host, port, retls_client_ctx())
    conn.do_handshake()

    def finish():
        conn.shutdown()
        try:
            while conn.read(16384):
                pass
        except retls.ZeroReturn:
            pass
        conn.close()
    return conn, conn.write, finish, conn.cipher


def sock_ssl(host, port):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection((host, port)))

    def finish():
        s.unwrap().close()
    return s, s.send, finish, s.cipher()[0]


def sock_pyopenssl(host, port):
    from OpenSSL import SSL
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    c = SSL.Connection(ctx, socket.create_connection((host, port)))
    c.set_connect_state()
    c.do_handshake()

    def finish():
        c.shutdown()
        try:
            while c.recv(16384):
                pass
        except SSL.ZeroReturnError:
            pass
        c.close()
    return c, c.sendall, finish, c.get_cipher_name()   # see PyOpenSSLMem


def sock_m2crypto(host, port):
    from M2Crypto import SSL, m2
    ctx = SSL.Context("tls")
    ctx.set_verify(SSL.verify_none, 0)
    c = SSL.Connection(ctx)
    c.set_post_connection_check_callback(None)
    c.connect((host, port))

    def finish():
        m2.ssl_shutdown(c.ssl)   # close_notify (close() would free the fd)
        while c.socket.recv(4096):   # until the sink closed
            pass
        c.close()
    return c, c.write, finish, c.get_cipher().name()


SOCK_CLIENTS = {"retls": sock_retls, "ssl": sock_ssl,
                "pyopenssl": sock_pyopenssl, "m2crypto": sock_m2crypto}


def run_sock(impl, size, total, host, port):
    obj, write, finish, cipher = SOCK_CLIENTS[impl](host, port)
    if cipher != SUITE:
        raise SystemExit(f"{impl} negotiated {cipher}, not {SUITE}")
    data = os.urandom(size)
    n = total // size
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        if write(data) not in (None, size):   # the sink counts the bytes
            raise SystemExit(f"{impl}: short write")
    finish()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"writes": n, "seconds": elapsed,
                      "cpu_seconds": time.process_time() - c0}))


# ---- footprint -------------------------------------------------------------------

def run_footprint_mem(impl, n, cert, key):
    sctx = retls_server_ctx(cert, key)
    if impl == "ssl":
        import ssl
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname = False
        cctx.verify_mode = ssl.CERT_NONE
        ssctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssctx.load_cert_chain(cert, key)

        def make():
            ci, co, si, so = (ssl.MemoryBIO() for _ in range(4))
            c = cctx.wrap_bio(ci, co)
            s = ssctx.wrap_bio(si, so, server_side=True)
            for _ in range(20):
                for side in (c, s):
                    try:
                        side.do_handshake()
                    except ssl.SSLWantReadError:
                        pass
                si.write(co.read())
                ci.write(so.read())
            if c.version() is None or s.version() is None:
                raise SystemExit("ssl handshake failed")
            return (c, s, ci, co, si, so)
    else:
        cctx = retls_client_ctx()

        def make():
            c = memory_connection(cctx)
            s = memory_connection(sctx)
            retls._handshake_pair(c, s)
            return (c, s)
    keep = [make()]
    gc.collect()
    before = rss_kib()
    keep += [make() for _ in range(n)]
    gc.collect()
    after = rss_kib()
    print(json.dumps({"conns": 2 * n,
                      "kib_per_conn": (after - before) / (2 * n)}))


def run_footprint_sock(impl, n, host, port):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    if impl == "ssl":
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def make():
            return ctx.wrap_socket(socket.create_connection((host, port)))
    else:
        ctx = retls_client_ctx()

        def make():
            c = retls.connect(host, port, ctx)
            c.do_handshake()
            return c
    keep = [make()]
    gc.collect()
    before = rss_kib()
    keep += [make() for _ in range(n)]
    gc.collect()
    after = rss_kib()
    print(json.dumps({"conns": n, "kib_per_conn": (after - before) / n}))
    for c in keep:
        c.close()


def alternate(loops, slice_writes, total_seconds=None, total_writes=None):
    """Run each loop(n) in turn until the time or write budget is spent;
    writes per CPU-second of each."""
    tot = {k: [0, 0.0] for k in loops}
    cpu = time.process_time
    end = cpu() + (total_seconds or 0) * len(loops)
    while (cpu() < end if total_seconds else
           min(v[0] for v in tot.values()) < total_writes):
        for k, loop in loops.items():
            t = cpu()
            loop(slice_writes)
            tot[k][1] += cpu() - t
            tot[k][0] += slice_writes
    return {k: v[0] / v[1] for k, v in tot.items()}


def run_alt_mem(size, seconds, cert, key):
    loops = {}
    for impl in ("retls", "ssl"):
        client = MEM_CLIENTS[impl]()
        mem_handshake(client, memory_connection(retls_server_ctx(cert, key)))
        if client.cipher() != SUITE:
            raise SystemExit(f"{impl} negotiated {client.cipher()}")
        data = os.urandom(size)

        def loop(n, write=client.write, drain=client.drain, data=data):
            for _ in range(n):
                write(data)
                drain()
        loops[impl] = loop
    print(json.dumps(alternate(loops, max(1, (1 << 20) // max(size, 64)),
                               total_seconds=seconds)))


def run_alt_sock(size, total, host, port):
    loops, finish = {}, []
    for impl in ("retls", "ssl"):
        _, write, fin, cipher = SOCK_CLIENTS[impl](host, port)
        if cipher != SUITE:
            raise SystemExit(f"{impl} negotiated {cipher}, not {SUITE}")
        data = os.urandom(size)

        def loop(n, write=write, data=data):
            for _ in range(n):
                if write(data) != size:
                    raise SystemExit("short write")
        loops[impl] = loop
        finish.append(fin)
    n = max(1, (1 << 20) // size)
    r = alternate(loops, n, total_writes=max(n, total // size))
    for fin in finish:
        fin()
    print(json.dumps(r))


def run_cycles(n):
    client, server = retls.pair(capacity=1024)
    data = os.urandom(2048)
    wants = 0
    marks = [rss_kib()]
    checkpoints = {n // 10, n // 2, n}
    for k in range(1, n + 1):
        try:
            client.write(data)
        except retls.WantWrite:
            while True:
                wants += 1
                while True:
                    try:
                        server.read(4096)
                    except retls.WantRead:
                        break
                try:
                    client.flush()
                    break
                except retls.WantWrite:
                    pass
        while True:
            try:
                server.read(4096)
            except retls.WantRead:
                break
        if k in checkpoints:
            marks.append(rss_kib())
    if wants < n:
        raise SystemExit("cycles: writes did not stop on WantWrite")
    print(json.dumps({"cycles": n, "wants": wants, "rss_kib": marks}))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "mem":
        run_mem(args[0], int(args[1]), float(args[2]), args[3], args[4])
    elif cmd == "sock":
        run_sock(args[0], int(args[1]), int(args[2]), args[3], int(args[4]))
    elif cmd == "footprint-mem":
        run_footprint_mem(args[0], int(args[1]), args[2], args[3])
    elif cmd == "footprint-sock":
        run_footprint_sock(args[0], int(args[1]), args[2], int(args[3]))
    elif cmd == "alt-mem":
        run_alt_mem(int(args[0]), float(args[1]), args[2], args[3])
    elif cmd == "alt-sock":
        run_alt_sock(int(args[0]), int(args[1]), args[2], int(args[3]))
    elif cmd == "cycles":
        run_cycles(int(args[0]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
