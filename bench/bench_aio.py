"""bench_aio.py - retls.aio against asyncio's own TLS, on the same loop, in
one run, on asyncio's default loop and on uvloop.  Prints ratios
(retls.aio / asyncio TLS; above 1.0 retls.aio is better); no test asserts
any of this.

Workloads:
  stream 64 B    a client streams 64-byte writer.write() calls, with
                 `await writer.drain()` after every 64 writes, to a sink
  stream 16 KiB  16 KiB writer.write() calls, each followed by drain()
  scale          --conns concurrent connections (default 10,000) to one
                 server process from a client process, both running the
                 stack under test: handshakes/s while they are opened, the
                 RSS each established idle connection adds to the server
                 and to the client process, and the time of one echo round
                 (every connection sends 64 bytes, waits for them back)

The sink is bench/aio_sink.c (compiled here with cc): a C TLS server that
reads each connection to its close_notify and prints the byte count,
which is checked; a stream's time runs from its first write until
wait_closed() returned, i.e. the sink has read every byte.  Same TLS 1.3
suite (TLS_AES_128_GCM_SHA256) for both stacks.  Stream rows are the best
of --rounds runs, alternating the two stacks.

Targets (printed as PASS/FAIL): at least 1.3x asyncio's TLS at 64 B and
1.0x at 16 KiB, on both loops; idle memory per connection no more than
asyncio TLS's.

Run: PYTHONPATH=build/bindings/python python3 bench/bench_aio.py [--quick]
"""

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

import retls
import retls.aio as aio

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = "TLS_AES_128_GCM_SHA256"
LOOPS = ("asyncio", "uvloop")
STACKS = ("retls.aio", "asyncio TLS")


def loop_factory(name):
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def make_pki(d):
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "common"))
    from pki import make_pki as mk
    return mk(d)


def rss_kib(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def contexts(pki):
    """(retls client, ssl client, retls server, ssl server) contexts, the
    same suite on all."""
    rc = retls.Context("client", cafile=pki.ca, ciphersuites=SUITE)
    sc = ssl.create_default_context(cafile=pki.ca)
    rs = retls.Context("server", certfile=pki.server_cert,
                       keyfile=pki.server_key, ciphersuites=SUITE)
    ss = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ss.load_cert_chain(pki.server_cert, pki.server_key)
    # CPython's ssl cannot restrict TLS 1.3 suites on its side: the sink
    # allows only SUITE, so both stacks stream with it.
    return rc, sc, rs, ss


async def open_stack(stack, host, port, rc, sc):
    if stack == "retls.aio":
        return await aio.open_connection(host, port, ctx=rc,
                                         server_hostname="localhost")
    return await asyncio.open_connection(host, port, ssl=sc,
                                         server_hostname="localhost")


# ---- streaming to the sink -----------------------------------------------------

class Sink:
    def __init__(self, tmp, pki):
        exe = os.path.join(tmp, "aio_sink")
        subprocess.run(["cc", "-O2", "-o", exe,
                        os.path.join(HERE, "aio_sink.c"), "-lssl",
                        "-lcrypto"], check=True)
        portfile = os.path.join(tmp, "port")
        self.proc = subprocess.Popen([exe, pki.server_cert, pki.server_key,
                                      portfile, SUITE],
                                     stdout=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(portfile):
                text = open(portfile).read()
                if text.endswith("\n"):
                    self.port = int(text)
                    return
            time.sleep(0.02)
        raise RuntimeError("the sink did not start")

    def received(self):
        return int(self.proc.stdout.readline())

    def stop(self):
        self.proc.kill()
        self.proc.wait()


async def stream(stack, sink, rc, sc, size, total):
    r, w = await open_stack(stack, "127.0.0.1", sink.port, rc, sc)
    buf = b"\x5a" * size
    n = total // size
    every = 64 if size < 1024 else 1
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        w.write(buf)
        if i % every == 0:
            await w.drain()
    w.close()
    await w.wait_closed()
    elapsed = time.perf_counter() - t0
    got = sink.received()
    if got != n * size:
        raise RuntimeError(f"{stack}: the sink received {got} bytes, "
                           f"not {n * size}")
    return n / elapsed


def bench_streams(loop, sink, ctxs, rounds, quick):
    rc, sc = ctxs[0], ctxs[1]
    rows = []
    for size, total in ((64, (2 if quick else 8) << 20),
                        (16384, (64 if quick else 256) << 20)):
        best = {s: 0.0 for s in STACKS}
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            for _ in range(rounds):
                for s in STACKS:
                    best[s] = max(best[s], runner.run(
                        stream(s, sink, rc, sc, size, total)))
        rows.append((loop, size, best))
    return rows


# ---- scale: many connections to one server process -----------------------------

async def serve(stack, pki):
    rc, sc, rs, ss = contexts(pki)

    async def echo(reader, writer):
        try:
            msg = await reader.readexactly(64)
            writer.write(msg)
            await writer.drain()
            await reader.read()
        except (ConnectionError, retls.Error, asyncio.IncompleteReadError):
            pass
        writer.close()
    if stack == "retls.aio":
        srv = await aio.start_server(echo, "127.0.0.1", 0, ctx=rs,
                                     backlog=4096)
    else:
        srv = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ss,
                                         backlog=4096)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def scale_client(stack, port, server_pid, pki, conns):
    rc, sc, rs, ss = contexts(pki)
    gc.collect()
    srv0, me0 = rss_kib(server_pid), rss_kib()
    sem = asyncio.Semaphore(256)     # handshakes in flight at once

    async def one():
        async with sem:
            return await open_stack(stack, "127.0.0.1", port, rc, sc)
    t0 = time.perf_counter()
    streams = await asyncio.gather(*(one() for _ in range(conns)))
    hs_time = time.perf_counter() - t0
    await asyncio.sleep(0.5)         # tickets read, everything idle
    gc.collect()
    srv1, me1 = rss_kib(server_pid), rss_kib()
    msg = b"\x42" * 64

    async def echo(r, w):
        w.write(msg)
        await w.drain()
        return await r.readexactly(64) == msg
    t0 = time.perf_counter()
    ok = await asyncio.gather(*(echo(r, w) for r, w in streams))
    echo_time = time.perf_counter() - t0
    assert all(ok)
    for _, w in streams:
        w.close()
    await asyncio.gather(*(w.wait_closed() for _, w in streams),
                         return_exceptions=True)
    return {"hs_per_s": conns / hs_time,
            "server_kib": (srv1 - srv0) / conns,
            "client_kib": (me1 - me0) / conns,
            "echo_s": echo_time}


def bench_scale(loop, pki, conns):
    """Server and client each in a fresh process, so neither inherits
    memory freed by an earlier run."""
    out = {}
    for stack in STACKS:
        common = ["--loop", loop, "--pki", pki.dir]
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", stack, *common],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            port = server.stdout.readline().decode().strip()
            client = subprocess.run(
                [sys.executable, __file__, "--scale-client", stack, *common,
                 "--port", port, "--server-pid", str(server.pid),
                 "--conns", str(conns)],
                stdout=subprocess.PIPE, check=True, timeout=1800)
            out[stack] = json.loads(client.stdout)
        finally:
            server.stdin.close()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    return out


# ---- report -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="less data, 1,000 connections, 1 round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--only", choices=("stream", "scale"),
                    help="run one half of the benchmark")
    ap.add_argument("--serve", choices=STACKS)
    ap.add_argument("--loop", choices=LOOPS, default="asyncio")
    ap.add_argument("--pki")
    ap.add_argument("--scale-client", choices=STACKS)
    ap.add_argument("--port", type=int)
    ap.add_argument("--server-pid", type=int)
    args = ap.parse_args()
    raise_nofile()
    if args.serve or args.scale_client:
        sys.path.insert(0, os.path.join(HERE, "..", "tests", "common"))
        from pki import PKI
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as r:
            if args.serve:
                r.run(serve(args.serve, PKI(args.pki)))
            else:
                print(json.dumps(r.run(scale_client(
                    args.scale_client, args.port, args.server_pid,
                    PKI(args.pki), args.conns))))
        return
    if args.quick:
        args.rounds, args.conns = 1, 1000
    tmp = tempfile.mkdtemp(prefix="bench_aio.")
    try:
        pki = make_pki(tmp)
        ctxs = contexts(pki)
        sink = Sink(tmp, pki)
        print(f"retls.aio vs asyncio TLS  (retls {retls.__version__}, "
              f"{retls.OPENSSL_VERSION}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs, {SUITE})")
        print("ratios are retls.aio / asyncio TLS on the same loop in this "
              "run; absolute numbers vary with the machine's load\n")
        results = []
        try:
            for loop in LOOPS if args.only != "scale" else ():
                results += bench_streams(loop, sink, ctxs, args.rounds,
                                         args.quick)
        finally:
            sink.stop()
        print(f"{'workload':<24}{'loop':<9}{'retls.aio':>14}"
              f"{'asyncio TLS':>14}{'ratio':>8}  target")
        verdicts = []
        for loop, size, best in results:
            a, b = best["retls.aio"], best["asyncio TLS"]
            target = 1.3 if size == 64 else 1.0
            ok = a / b >= target
            verdicts.append(ok)
            label = f"stream {size} B" if size < 1024 else "stream 16 KiB"
            print(f"{label:<24}{loop:<9}{a:>10,.0f} w/s{b:>10,.0f} w/s"
                  f"{a / b:>7.2f}x  >= {target}x {'PASS' if ok else 'FAIL'}")
        print()
        print(f"scale: {args.conns:,} connections to one server process "
              f"(client in another process, both on the stack measured)")
        print(f"{'':<24}{'loop':<9}{'retls.aio':>14}{'asyncio TLS':>14}"
              f"{'ratio':>8}")
        for loop in LOOPS if args.only != "stream" else ():
            sc = bench_scale(loop, pki, args.conns)
            a, b = sc["retls.aio"], sc["asyncio TLS"]
            for key, label, fmt, better_low in (
                    ("hs_per_s", "handshakes/s", "{:,.0f}", False),
                    ("server_kib", "server RSS/conn (KiB)", "{:.1f}", True),
                    ("client_kib", "client RSS/conn (KiB)", "{:.1f}", True),
                    ("echo_s", "echo round (s)", "{:.3f}", True)):
                ratio = a[key] / b[key] if b[key] else float("nan")
                mark = ""
                if key in ("server_kib", "client_kib"):
                    ok = a[key] <= b[key]
                    verdicts.append(ok)
                    mark = "  <= 1.0x " + ("PASS" if ok else "FAIL")
                print(f"{label:<24}{loop:<9}{fmt.format(a[key]):>14}"
                      f"{fmt.format(b[key]):>14}{ratio:>7.2f}x{mark}")
        print()
        print("all targets met" if all(verdicts)
              else "some targets missed (see FAIL)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
