"""run_bench.py - every row of issue 9 side by side in one run, one table.

./run.sh bench builds everything and calls this; by hand:

  python3 bench/run_bench.py --build build --build-luajit build-luajit [--quick]

Rows: raw C (SSL_write_ex + BIO_read / SSL_write_ex on a socket: the
practical limit), the retls C API, retls from Python, CPython's ssl,
pyOpenSSL, M2Crypto (all in this python3), retls from Lua 5.4 and LuaJIT,
LuaSec (sockets), and openssl speed as the cipher's ceiling.  Every row
runs in its own process, one cell at a time, rows interleaved within each
repetition so a slow phase of the machine hits all rows alike.  Each
number is the median of --runs repetitions; "vs C" is the row's writes/s
over raw C's in the same repetition (median of those ratios); spread is
(max - min) / median of the row's writes/s.  TLS 1.3 with
TLS_AES_128_GCM_SHA256 everywhere; each workload checks the negotiated
cipher, each memory cell that one write made exactly
n + 22 * ceil(n / 16384) bytes of ciphertext, each socket cell that the
sink (bench/sink.c, pinned to the other core) read every byte.
"""

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
SUITE = "TLS_AES_128_GCM_SHA256"
MEM_SIZES = [64, 1024, 16384, 262144]
SOCK_SIZES = [64, 16384]
CLIENT_CPU, SINK_CPU = 0, 1


def ct_size(n):
    return n + 22 * -(-n // 16384)


def human(n):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


def size_name(n):
    return f"{n >> 10} KiB" if n >= 1024 else f"{n} B"


class Sink:
    """bench/sink as a child process; its per-connection lines in a queue."""

    def __init__(self, exe, cert, key):
        self.proc = subprocess.Popen([exe, cert, key, str(SINK_CPU)],
                                     stdout=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline().split()
        if first[:1] != ["port"]:
            raise SystemExit(f"sink did not start: {first}")
        self.port = int(first[1])
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def clear(self):
        while not self.lines.empty():
            self.lines.get_nowait()

    def result(self, timeout=30):
        return self.lines.get(timeout=timeout)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Runner:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.cert = os.path.join(tmp, "cert.pem")
        self.key = os.path.join(tmp, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
             "/CN=localhost", "-keyout", self.key, "-out", self.cert],
            check=True, capture_output=True)
        build = os.path.abspath(args.build)
        self.bench_c = os.path.join(build, "bench", "bench_c")
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.path.join(build, "bindings", "python")
        self.lua_env = {}
        for lua, bdir in (("lua5.4", args.build),
                          ("luajit", args.build_luajit)):
            e = dict(os.environ)
            e["LUA_CPATH"] = os.path.join(os.path.abspath(bdir or ""),
                                          "lua", "?.so") + ";;"
            e["LUA_PATH"] = os.path.join(SRC, "bindings", "lua",
                                         "?.lua") + ";;"
            self.lua_env[lua] = e
        self.sink = Sink(os.path.join(build, "bench", "sink"), self.cert,
                         self.key)
        self.wall_clock = set()   # rows whose memory cells had no CPU time

    def run_json(self, cmd, env=None, timeout=600):
        """Run one workload; its JSON line, plus "process_cpu": the CPU
        time of the whole child (for rows that report no cpu_seconds)."""
        with tempfile.TemporaryFile("w+") as out, \
                tempfile.TemporaryFile("w+") as err:
            p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                 env=env or self.env,
                                 preexec_fn=lambda: os.sched_setaffinity(
                                     0, {CLIENT_CPU}))
            timer = threading.Timer(timeout, p.kill)
            timer.start()
            try:
                _, status, ru = os.wait4(p.pid, 0)
            finally:
                timer.cancel()
                p.returncode = 0   # reaped by wait4
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        code = os.waitstatus_to_exitcode(status)
        if code == -9:
            raise RuntimeError(f"killed after {timeout} s")
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if code != 0 or not lines:
            why = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
            raise RuntimeError((why or [f"exit {code}"])[0][:70])
        r = json.loads(lines[-1])
        r["process_cpu"] = ru.ru_utime + ru.ru_stime
        return r

    def cmd_mem(self, row, size):
        secs = str(self.args.seconds)
        kind, what = row["kind"], row["impl"]
        if kind == "c":
            return [self.bench_c, "mem", what, str(size), secs, self.cert,
                    self.key], None
        if kind == "py":
            return [sys.executable, os.path.join(HERE, "bench_py.py"), "mem",
                    what, str(size), secs, self.cert, self.key], None
        if kind == "lua":
            return [what, os.path.join(HERE, "bench_lua.lua"), "mem",
                    str(size), secs], self.lua_env[what]
        return None, None

    def cmd_sock(self, row, size, total):
        host, port = "127.0.0.1", str(self.sink.port)
        kind, what = row["kind"], row["impl"]
        if kind == "c":
            return [self.bench_c, "sock", what, str(size), str(total), host,
                    port], None
        if kind == "py":
            return [sys.executable, os.path.join(HERE, "bench_py.py"), "sock",
                    what, str(size), str(total), host, port], None
        if kind in ("lua", "luasec", "copas"):
            sub = row.get("sub", "sock")
            return [what, os.path.join(HERE, "bench_lua.lua"), sub,
                    str(size), str(total), host, port], self.lua_env[what]
        return None, None

    def one(self, row, work):
        """writes/s of row on work, or raises RuntimeError(reason)."""
        kind, size = work
        if kind == "mem":
            cmd, env = self.cmd_mem(row, size)
            if cmd is None:
                return None
            r = self.run_json(cmd, env)
            if r.get("ct_one_write") != ct_size(size):
                raise RuntimeError(f"one write made {r.get('ct_one_write')} "
                                   f"bytes, not {ct_size(size)}")
        else:
            total = self.args.sock_total[size]
            cmd, env = self.cmd_sock(row, size, total)
            if cmd is None:
                return None
            self.sink.clear()
            r = self.run_json(cmd, env)
            try:
                line = self.sink.result()
            except queue.Empty:
                raise RuntimeError("the sink reported nothing") from None
            want = (total // size) * size
            if line != f"bytes {want} ok":
                raise RuntimeError(f"sink: {line} (expected {want})")
        if "cpu_seconds" in r:
            return r["writes"] / r["cpu_seconds"]
        # No CPU time of its own: the child's whole CPU time (start-up and
        # handshake included, a few ms: slightly pessimistic).
        self.wall_clock.add((row["name"], kind))
        return r["writes"] / r["process_cpu"]


ROWS = [
    {"name": "raw C (SSL_write_ex)", "kind": "c", "impl": "raw"},
    {"name": "retls C API", "kind": "c", "impl": "retls"},
    {"name": "retls Python", "kind": "py", "impl": "retls"},
    {"name": "CPython ssl", "kind": "py", "impl": "ssl"},
    {"name": "pyOpenSSL", "kind": "py", "impl": "pyopenssl"},
    {"name": "M2Crypto", "kind": "py", "impl": "m2crypto"},
    {"name": "retls Lua 5.4", "kind": "lua", "impl": "lua5.4"},
    {"name": "retls LuaJIT", "kind": "lua", "impl": "luajit"},
    {"name": "LuaSec (Lua 5.4)", "kind": "luasec", "impl": "lua5.4",
     "sub": "luasec-sock"},
    # the LuaSec row's code unchanged over require "retls.luasec" (send())
    {"name": "retls.luasec send (Lua 5.4)", "kind": "luasec",
     "impl": "lua5.4", "sub": "retls-send"},
    # Debian's lua-copas (copas 1.1.7) loads on Lua 5.1 / LuaJIT only
    {"name": "Copas + retls (LuaJIT)", "kind": "copas", "impl": "luajit",
     "sub": "copas-retls"},
    {"name": "Copas + LuaSec (LuaJIT)", "kind": "copas", "impl": "luajit",
     "sub": "copas-luasec"},
]


def openssl_speed(size):
    p = subprocess.run(["openssl", "speed", "-seconds", "1", "-bytes",
                        str(size), "-aead", "-evp", "aes-128-gcm"],
                       capture_output=True, text=True,
                       preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}))
    for line in p.stdout.splitlines():
        if line.upper().startswith("AES-128-GCM"):
            return float(line.split()[-1].rstrip("k")) * 1000   # bytes/s
    raise RuntimeError("no openssl speed result")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--build-luajit", default="build-luajit")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="short cells (0.3 s, 1/8 of the socket bytes)")
    ap.add_argument("--only", default="",
                    help="comma-separated row name prefixes (raw C is "
                         "always run)")
    args = ap.parse_args()
    args.seconds = 0.3 if args.quick else 1.0
    scale = 8 if args.quick else 1
    args.sock_total = {64: (64 << 20) // scale, 16384: (256 << 20) // scale}
    n_conns = 400 if args.quick else 2000
    n_cycles = 100_000 if args.quick else 1_000_000
    rows = [r for r in ROWS if r["impl"] == "raw" or not args.only or any(
        r["name"].startswith(p) for p in args.only.split(","))]
    works = [("mem", s) for s in MEM_SIZES] + [("sock", s) for s in SOCK_SIZES]
    os.sched_setaffinity(0, {CLIENT_CPU})

    tmp = tempfile.mkdtemp(prefix="retls-bench-")
    runner = Runner(args, tmp)
    # results[(row, work)] = list of (writes/s, raw C writes/s) or a reason
    results, failed = {}, {}
    by_rep = {}   # by_rep[(row, work)][repetition] = writes/s
    try:
        for rep in range(args.runs):
            print(f"run {rep + 1}/{args.runs} ...", file=sys.stderr)
            for work in works:
                base = None
                for row in rows:
                    key = (row["name"], work)
                    if key in failed:
                        continue
                    try:
                        wps = runner.one(row, work)
                    except (RuntimeError, subprocess.TimeoutExpired,
                            FileNotFoundError) as e:
                        failed[key] = str(e) or type(e).__name__
                        continue
                    if wps is None:
                        continue
                    if row["impl"] == "raw":
                        base = wps
                    if base is None:
                        failed[key] = "raw C failed"
                        continue
                    results.setdefault(key, []).append((wps, base))
                    by_rep.setdefault(key, {})[rep] = wps
        extra = run_extras(runner, n_conns, n_cycles)
        retry = []
        for _ in range(args.runs):
            r = {impl: runner.run_json([runner.bench_c, "retry", impl,
                                        str(args.seconds), runner.cert,
                                        runner.key])
                 for impl in ("raw", "retls")}
            retry.append(r)
        speed = {s: openssl_speed(min(s, 16384)) for s in (64, 1024, 16384)}
        alt = run_alt(runner, rows, works, args)
        pairs = run_pairs(runner, rows, args)
    finally:
        runner.sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(rows, works, results, failed, retry, speed, extra, args,
                runner.wall_clock)
    print_alt(alt, args)
    print_targets(by_rep, retry, extra, alt, pairs)
    return 0


def run_alt(runner, rows, works, args):
    """retls Python against CPython's ssl alternating inside one process
    (bench_py.py alt-mem / alt-sock): the two rows the Python targets
    compare, measured so that a slow phase of the machine hits both."""
    names = {r["name"] for r in rows}
    if not {"retls Python", "CPython ssl"} <= names:
        return {}
    py = [sys.executable, os.path.join(HERE, "bench_py.py")]
    out = {}
    for _ in range(args.runs):
        for kind, size in works:
            if kind == "mem":
                cmd = py + ["alt-mem", str(size), str(args.seconds),
                            runner.cert, runner.key]
            else:
                cmd = py + ["alt-sock", str(size),
                            str(args.sock_total[size]), "127.0.0.1",
                            str(runner.sink.port)]
                runner.sink.clear()
            try:
                r = runner.run_json(cmd)
                if kind == "sock":
                    want = (args.sock_total[size] // size) * size
                    for _ in range(2):   # one line per client
                        line = runner.sink.result()
                        if not line.startswith("bytes ") or \
                                not line.endswith(" ok") or \
                                int(line.split()[1]) < want:
                            raise RuntimeError(f"sink: {line}")
            except (RuntimeError, queue.Empty) as e:
                out[(kind, size)] = f"n/a ({e or 'the sink reported nothing'})"
                continue
            if isinstance(out.get((kind, size)), str):
                continue
            out.setdefault((kind, size), []).append(r["retls"] / r["ssl"])
    return out


def print_alt(alt, args):
    if not alt:
        return
    print()
    print("retls Python vs CPython ssl, alternating ~1 MiB slices inside "
          f"one process (bench_py.py alt-*), median of {args.runs} runs "
          "[min-max]:")
    for (kind, size), v in alt.items():
        if isinstance(v, str):
            print(f"  {kind} {size_name(size)}: {v}")
        else:
            print(f"  {kind} {size_name(size)}: {statistics.median(v):.2f}x "
                  f"[{min(v):.2f}-{max(v):.2f}]")


# Issue 9's and 14's targets: (row, peer row or None for raw C, work, at
# least).  Each is checked on ratios measured in the same repetition (the
# two processes ran one after the other, seconds apart), never on medians
# of writes/s taken from different moments.
TARGETS = [
    ("retls Python", "CPython ssl", ("mem", 64), 1.25),
    ("retls Python", "CPython ssl", ("mem", 1024), 1.25),
    ("retls Python", None, ("mem", 16384), 0.97),
    ("retls Python", None, ("mem", 262144), 0.97),
    ("retls Python", "CPython ssl", ("sock", 64), 1.0),
    ("retls Python", "CPython ssl", ("sock", 16384), 1.0),
    ("retls Lua 5.4", None, ("mem", 64), 0.85),
    ("retls Lua 5.4", "LuaSec (Lua 5.4)", ("sock", 64), 1.2),
    ("retls Lua 5.4", "LuaSec (Lua 5.4)", ("sock", 16384), 1.2),
    ("Copas + retls (LuaJIT)", "Copas + LuaSec (LuaJIT)", ("sock", 64), 1.2),
    ("Copas + retls (LuaJIT)", "Copas + LuaSec (LuaJIT)", ("sock", 16384),
     1.2),
]


def run_pairs(runner, rows, args):
    """Each target's two rows again, back to back, many times: the machine
    has slow phases lasting seconds to minutes, and in the table's
    repetitions the two rows of a target run up to ten processes apart.
    Here they alternate (A B, then B A, ...) in short cells (0.3 s of
    memory writes, 1/8 of the socket bytes), and each ratio is taken from
    two neighbouring cells.  -> {target index: [ratios]} or a reason."""
    import copy
    pair_args = copy.copy(args)
    pair_args.seconds = 0.3
    pair_args.sock_total = {64: (64 << 20) // 8, 16384: (256 << 20) // 8}
    saved, runner.args = runner.args, pair_args
    names = {r["name"]: r for r in rows}
    names.setdefault(ROWS[0]["name"], ROWS[0])
    out = {}
    try:
        for t, (row, peer, work, _) in enumerate(TARGETS):
            a, b = names.get(row), names.get(peer or ROWS[0]["name"])
            if a is None or b is None:
                continue
            ratios = []
            for k in range(max(6, 2 * args.runs)):
                try:
                    if k % 2 == 0:
                        wa, wb = runner.one(a, work), runner.one(b, work)
                    else:
                        wb, wa = runner.one(b, work), runner.one(a, work)
                except (RuntimeError, subprocess.TimeoutExpired,
                        FileNotFoundError) as e:
                    ratios = f"n/a ({e or type(e).__name__})"
                    break
                ratios.append(wa / wb)
            out[t] = ratios
    finally:
        runner.args = saved
    return out


def print_targets(by_rep, retry, extra, alt, pairs):
    """One line per target: the median of the ratios of neighbouring cells
    (run_pairs), their range, whether the median reaches the target; then
    the same from the table's repetitions and, for the Python rows, from
    the alternation inside one process."""
    print()
    print("Targets (issues 9 and 14): the median of ratios of two cells run "
          "back to back [min-max]; 'table' is the same from the table's "
          "repetitions, 'alternating' from bench_py.py alt-*:")

    def line(what, ratios, want, note=""):
        if not ratios:
            print(f"  {what}: not measured")
            return
        med = statistics.median(ratios)
        verdict = "met" if med >= want else "NOT met"
        print(f"  {what}: {med:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
              f" (target {want:g}x): {verdict}{note}")

    for t, (row, peer, work, want) in enumerate(TARGETS):
        wl = f"{work[0]} {size_name(work[1])}"
        what = f"{row} vs {peer or 'raw C'}, {wl}"
        if isinstance(pairs.get(t), str):
            print(f"  {what}: {pairs[t]}")
        else:
            line(what, pairs.get(t), want)
        mine = by_rep.get((row, work), {})
        base = by_rep.get((peer or "raw C (SSL_write_ex)", work), {})
        ratios = [mine[r] / base[r] for r in mine if r in base]
        line(f"    table", ratios, want)
        if peer == "CPython ssl" and isinstance(alt.get(work), list):
            line(f"    alternating in one process", alt[work], want)
    line("retls C API retry vs raw C retry loop",
         [r["retls"]["writes"] / r["retls"]["cpu_seconds"] /
          (r["raw"]["writes"] / r["raw"]["cpu_seconds"]) for r in retry],
         0.90)
    for kind in ("mem", "sock"):
        mine, theirs = extra.get(("retls", kind)), extra.get(("ssl", kind))
        if isinstance(mine, float) and isinstance(theirs, float):
            print(f"  footprint, {kind}: retls {mine:.1f} KiB vs CPython ssl "
                  f"{theirs:.1f} KiB per connection (target: no more): "
                  f"{'met' if mine <= theirs else 'NOT met'}")


def run_extras(runner, n_conns, n_cycles):
    """Footprint and RSS over cycles: one run each (RSS does not jitter
    like time does)."""
    out = {}
    py = [sys.executable, os.path.join(HERE, "bench_py.py")]
    for impl in ("retls", "ssl"):
        for kind in ("mem", "sock"):
            if kind == "mem":
                cmd = py + ["footprint-mem", impl, str(n_conns), runner.cert,
                            runner.key]
            else:
                cmd = py + ["footprint-sock", impl, str(n_conns),
                            "127.0.0.1", str(runner.sink.port)]
            try:
                out[(impl, kind)] = runner.run_json(cmd)["kib_per_conn"]
            except RuntimeError as e:
                out[(impl, kind)] = f"n/a ({e})"
            runner.sink.clear()
    try:
        out["c-footprint"] = runner.run_json(
            [runner.bench_c, "footprint", str(n_conns), runner.cert,
             runner.key])["kib_per_conn"]
    except RuntimeError as e:
        out["c-footprint"] = f"n/a ({e})"
    for who, cmd in (("C", [runner.bench_c, "cycles", str(n_cycles),
                            runner.cert, runner.key]),
                     ("Python", py + ["cycles", str(n_cycles)])):
        try:
            out[("cycles", who)] = runner.run_json(cmd)["rss_kib"]
        except RuntimeError as e:
            out[("cycles", who)] = f"n/a ({e})"
    out["n_conns"], out["n_cycles"] = n_conns, n_cycles
    return out


def cell(samples):
    wps = [w for w, _ in samples]
    ratios = [w / b for w, b in samples]
    med = statistics.median(wps)
    spread = (max(wps) - min(wps)) / med * 100 if len(wps) > 1 else 0.0
    return med, statistics.median(ratios), spread


def print_table(rows, works, results, failed, retry, speed, extra, args,
                wall_clock):
    import platform
    print(f"retls bench: {platform.node()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} "
          f"{platform.python_version()}, "
          f"{subprocess.run(['openssl', 'version'], capture_output=True, text=True).stdout.strip()}; "
          f"TLS 1.3 {SUITE}; median of {args.runs} runs, "
          f"{args.seconds:g} s per memory cell; socket cells "
          f"{args.sock_total[64] >> 20} MiB in 64 B writes, {args.sock_total[16384] >> 20} MiB in 16 KiB "
          f"writes; clients on core {CLIENT_CPU}, sink on core {SINK_CPU}")
    print()
    print("| row | workload | writes/s | MB/s | vs raw C | spread |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        for work in works:
            key = (row["name"], work)
            wl = f"{work[0]} {size_name(work[1])}"
            if key in results:
                med, ratio, spread = cell(results[key])
                if (row["name"], work[0]) in wall_clock:
                    wl += " (process CPU)"
                print(f"| {row['name']} | {wl} | {human(med)} | "
                      f"{med * work[1] / 1e6:.0f} | {ratio * 100:.0f}% | "
                      f"{spread:.0f}% |")
            elif key in failed:
                print(f"| {row['name']} | {wl} | n/a ({failed[key]}) | | | |")
    # the retry workload: retls C vs the hand-written raw loop
    samples = {impl: [(r[impl]["writes"] / r[impl]["cpu_seconds"],
                       r["raw"]["writes"] / r["raw"]["cpu_seconds"])
                      for r in retry] for impl in ("raw", "retls")}
    wants = retry[-1]["retls"]["wants"] / retry[-1]["retls"]["writes"]
    for impl, name in (("raw", "raw C retry loop"),
                       ("retls", "retls C API (write, flush)")):
        med, ratio, spread = cell(samples[impl])
        print(f"| {name} | retry: 64 KiB writes, 16 KiB pair, "
              f"{wants:.1f} WANT_WRITE each | {human(med)} | "
              f"{med * 65536 / 1e6:.0f} | {ratio * 100:.0f}% | {spread:.0f}% |")
    raw16 = [cell(results[(rows[0]["name"], ("mem", s))])[0] * s
             for s in (64, 1024, 16384) if (rows[0]["name"], ("mem", s))
             in results]
    for (s, bps), raw in zip(speed.items(), raw16):
        print(f"| openssl speed -aead -evp aes-128-gcm | cipher only, "
              f"{size_name(s)} records | {human(bps / s)} | {bps / 1e6:.0f} "
              f"| {bps / raw * 100:.0f}% | |")
    n = extra["n_conns"]
    for kind, what in (("mem", f"memory mode, {n} client+server pairs"),
                       ("sock", f"sockets, {n} connections to the sink")):
        for impl, name in (("retls", "retls Python"), ("ssl", "CPython ssl")):
            v = extra[(impl, kind)]
            v = f"{v:.1f} KiB/conn" if isinstance(v, float) else v
            print(f"| {name} | footprint: RSS per established idle "
                  f"connection, {what} | {v} | | | |")
    v = extra["c-footprint"]
    v = f"{v:.1f} KiB/conn" if isinstance(v, float) else v
    print(f"| retls C API | footprint: memory mode, {n} pairs | {v} | | | |")
    for who in ("C", "Python"):
        v = extra[("cycles", who)]
        if isinstance(v, list):
            v = "RSS KiB at 0/10/50/100%: " + " / ".join(map(str, v))
        print(f"| retls {who} | {extra['n_cycles']:,} write/WANT_WRITE/"
              f"flush cycles (2 KiB writes, 1 KiB pair) | {v} | | | |")
    print()
    print("writes/s are per CPU-second of the writing process (user + "
          "system, from the first write to the sink's close for sockets), "
          "so other processes preempting it on a loaded machine stay out "
          "of the numbers; cells marked (process CPU) reported none "
          "themselves and count the whole child process (start-up and "
          "handshake included).")
    print("Not equal by construction: raw C and the retls C API drain into "
          "a reused buffer, the scripting rows into a new bytes/string per "
          "drain; pyOpenSSL's bio_read(n) needs a size (given the exact "
          "ciphertext size + 1) and its send() takes one record at a time "
          "(SSL_MODE_ENABLE_PARTIAL_WRITE), so it uses sendall(); M2Crypto's "
          "Connection opens an unused socket in memory mode; LuaSec and "
          "Copas have sockets only.  vs raw C for openssl speed: cipher "
          "MB/s over raw C's memory-mode MB/s at that size.")


if __name__ == "__main__":
    sys.exit(main())
