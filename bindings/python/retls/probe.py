"""python -m retls HOST:PORT [options] - a scriptable TLS test client.

Connects, handshakes, optionally sends data, reads the reply until the
server closes or --timeout passes without data, and prints a report:
protocol, cipher, ALPN, the server certificate (subject, issuer, validity,
SHA-256 fingerprint), the verification result, bytes each way and the
WantRead/WantWrite counts.  --json prints the same as one JSON object.

Sessions: --sess-in FILE resumes a session saved by --sess-out FILE (in
this run or an earlier one); --reconnect opens a second connection that
resumes the first's session (the report describes the second);
--early-data FILE sends FILE's bytes as TLS 1.3 0-RTT early data on a
resuming connection (if the server rejects them, retls sends them again
after the handshake).  The report says session_reused and
early_data_status.

Exit status: 0 success; 2 bad usage; 3 connection refused or host not
found; 4 timeout; 5 handshake failure; 6 certificate verification failure;
1 anything else.  A failure prints one line "error: <kind>: <reason>" to
stderr (with --json also {"ok": false, "error": kind, "reason": ...} on
stdout).

The certificate is decoded by the openssl command (`openssl x509 -inform
DER`), the same one examples/lua/probe.lua uses: it is present wherever
retls builds, adds no Python dependency, and both probes print identical
fields.  Without it the report says so and the probe still succeeds.
"""
import argparse
import codecs
import json
import selectors
import socket
import subprocess
import sys

import retls

EXIT = {"error": 1, "usage": 2, "refused": 3, "timeout": 4,
        "handshake": 5, "verify": 6}


class Failure(Exception):
    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind = kind


def parse_target(text):
    """'host:port', '[v6]:port' or 'host' (port 443) -> (host, port)."""
    host, port = text, "443"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"want HOST:PORT (e.g. example.org:443), not {text!r}")
    return host, int(port)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="python -m retls",
        description="Connect to a TLS server, handshake, optionally send "
                    "data, read the reply, and report what happened.",
        epilog="exit status: 0 ok, 2 usage, 3 refused/not found, 4 timeout, "
               "5 handshake failure, 6 verify failure, 1 other")
    ap.add_argument("target", type=parse_target, metavar="HOST:PORT")
    ap.add_argument("--servername", help="name for SNI and verification "
                    "(default: HOST)")
    ap.add_argument("--alpn", help="protocols to offer, comma-separated "
                    "(e.g. h2,http/1.1)")
    ap.add_argument("--min-version", default="TLSv1.2",
                    choices=["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])
    ap.add_argument("--max-version",
                    choices=["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])
    ap.add_argument("--ciphers", help="TLS 1.2 cipher list (OpenSSL syntax)")
    ap.add_argument("--ciphersuites", help="TLS 1.3 ciphersuites")
    ap.add_argument("--cafile", help="trust these CAs (PEM) instead of the "
                    "system store")
    ap.add_argument("--insecure", action="store_true",
                    help="do not verify the certificate or the hostname")
    ap.add_argument("--cert", help="client certificate (PEM)")
    ap.add_argument("--key", help="client private key (PEM; default: in --cert)")
    ap.add_argument("--keylog", metavar="FILE",
                    help="append TLS secrets in NSS key log format")
    ap.add_argument("--send", metavar="TEXT", help="send TEXT (escapes like "
                    r"\r\n and \xNN are understood)")
    ap.add_argument("--send-file", metavar="FILE", help="send FILE's bytes")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="send the data N times (default 1)")
    ap.add_argument("--nonblocking", action="store_true",
                    help="non-blocking socket driven by selectors (counts "
                         "WantRead/WantWrite)")
    ap.add_argument("--key-update", action="store_true",
                    help="TLS 1.3: send a KeyUpdate (asking the server to "
                         "update too) after the handshake")
    ap.add_argument("--renegotiate", action="store_true",
                    help="TLS 1.2: renegotiate after the handshake")
    ap.add_argument("--sess-out", metavar="FILE",
                    help="save the (last) connection's session to FILE")
    ap.add_argument("--sess-in", metavar="FILE",
                    help="resume the session saved in FILE")
    ap.add_argument("--reconnect", action="store_true",
                    help="then connect again, resuming the first "
                         "connection's session; the report describes the "
                         "second connection")
    ap.add_argument("--early-data", metavar="FILE",
                    help="send FILE's bytes as TLS 1.3 0-RTT early data "
                         "(needs --sess-in or --reconnect)")
    ap.add_argument("--timeout", type=float, default=5.0, metavar="S",
                    help="bounds connect, handshake and every wait (default "
                         "5); while reading the reply it ends the reply")
    ap.add_argument("--json", action="store_true",
                    help="print the report as one JSON object")
    o = ap.parse_args(argv)
    if o.send is not None and o.send_file is not None:
        ap.error("--send and --send-file exclude each other")
    if o.repeat < 1:
        ap.error("--repeat must be at least 1")
    if o.key and not o.cert:
        ap.error("--key needs --cert")
    if o.timeout <= 0:
        ap.error("--timeout must be > 0")
    return o


def read_file(path, option):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Failure("usage", f"{option}: {e}") from None


def load_session(o):
    if o.sess_in is None:
        return None
    try:
        return retls.Session.from_bytes(read_file(o.sess_in, "--sess-in"))
    except retls.ArgumentError as e:
        raise Failure("usage", f"--sess-in {o.sess_in}: {e}") from None


def payload(o):
    if o.send is not None:
        data = codecs.escape_decode(o.send.encode())[0]
    elif o.send_file is not None:
        try:
            with open(o.send_file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Failure("usage", f"--send-file: {e}") from None
    else:
        data = b""
    return data * o.repeat


def decode_certificate(der):
    """Subject, issuer, validity and SHA-256 fingerprint via openssl x509."""
    if der is None:
        return None
    try:
        p = subprocess.run(
            ["openssl", "x509", "-inform", "DER", "-noout", "-subject",
             "-issuer", "-startdate", "-enddate", "-fingerprint", "-sha256",
             "-nameopt", "RFC2253"],
            input=der, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"cannot run openssl to decode it ({e}); install "
                         f"openssl"}
    if p.returncode != 0:
        return {"error": "openssl x509: " + p.stderr.decode(errors="replace")
                .strip().splitlines()[0]}
    fields = {}
    for line in p.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    return {"subject": fields.get("subject"),
            "issuer": fields.get("issuer"),
            "not_before": fields.get("notBefore"),
            "not_after": fields.get("notAfter"),
            "sha256": fields.get("sha256 Fingerprint")}


class Blocking:
    """Blocking I/O: retls.connect() with a timeout on every operation."""

    def __init__(self, o, ctx, host, port, servername, session=None):
        try:
            self.conn = retls.connect(host, port, ctx,
                                      server_hostname=servername,
                                      timeout=o.timeout, session=session)
        except retls.TimeoutError as e:
            raise Failure("timeout", str(e)) from None
        except retls.Error as e:
            text = str(e)
            kind = ("refused" if "refused" in text or "resolve" in text
                    else "timeout" if "timed out" in text
                    else "usage" if "set_session" in text else "error")
            raise Failure(kind, text) from None

    def call(self, op):
        return op()


class NonBlocking:
    """Non-blocking socket; every Want* waits with selectors."""

    def __init__(self, o, ctx, host, port, servername, session=None):
        self.timeout = o.timeout
        try:
            self.sock = socket.create_connection((host, port), o.timeout)
        except socket.timeout:
            raise Failure("timeout", f"connect to {host}:{port} timed out") \
                from None
        except socket.gaierror as e:
            raise Failure("refused", f"cannot resolve {host!r}: {e}") from None
        except OSError as e:
            raise Failure("refused", f"connect to {host}:{port}: "
                                     f"{e.strerror or e}") from None
        self.sock.setblocking(False)
        try:
            self.conn = retls.Connection(ctx, self.sock,
                                         server_hostname=servername,
                                         session=session)
        except retls.ArgumentError as e:
            self.sock.close()
            raise Failure("usage", str(e)) from None
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)

    def call(self, op):
        """op() until it stops asking to wait; retls.TimeoutError after
        --timeout seconds without progress."""
        while True:
            try:
                return op()
            except retls.WantIO as e:
                self.sel.modify(self.sock, selectors.EVENT_WRITE
                                if isinstance(e, retls.WantWrite)
                                else selectors.EVENT_READ)
                if not self.sel.select(self.timeout):
                    raise retls.TimeoutError(
                        f"no progress for {self.timeout} s (waiting to "
                        f"{'write' if isinstance(e, retls.WantWrite) else 'read'})"
                    ) from None


def probe(o):
    host, port = o.target
    servername = o.servername or host
    try:
        ctx = retls.Context(
            "client", verify=not o.insecure, cafile=o.cafile,
            certfile=o.cert, keyfile=o.key, min_version=o.min_version,
            max_version=o.max_version, ciphers=o.ciphers,
            ciphersuites=o.ciphersuites, keylog=o.keylog,
            alpn=o.alpn.split(",") if o.alpn else None)
    except (retls.Error, ValueError, TypeError) as e:
        raise Failure("usage", f"bad TLS settings: {e}") from None
    data = payload(o)
    if o.early_data and not (o.sess_in or o.reconnect):
        raise Failure("usage", "--early-data needs a session to resume: "
                               "--sess-in FILE or --reconnect")
    session = load_session(o)
    early = read_file(o.early_data, "--early-data") if o.early_data else None
    report, session = connection(o, ctx, host, port, servername, data,
                                 session, early if session else None)
    if o.reconnect:
        report, session = connection(o, ctx, host, port, servername, data,
                                     session, early)
    if o.sess_out:
        if session is None:
            raise Failure("error", "--sess-out: the server gave no session "
                                   "to save")
        try:
            with open(o.sess_out, "wb") as f:
                f.write(session.to_bytes())
        except OSError as e:
            raise Failure("usage", f"--sess-out: {e}") from None
    return report


def connection(o, ctx, host, port, servername, data, session, early):
    """One connection: handshake (with early data when given), the data,
    the reply.  Returns (report, the newest session or None)."""
    io = (NonBlocking if o.nonblocking else Blocking)(o, ctx, host, port,
                                                      servername, session)
    conn = io.conn
    report = {"ok": True, "target": f"{host}:{port}",
              "servername": servername}
    if early is not None:
        try:
            io.call(lambda: conn.write_early(early))
        except retls.ArgumentError as e:
            raise Failure("usage", f"--early-data: {e}") from None
        except retls.TimeoutError as e:
            raise Failure("timeout", f"early data: {e}") from None
    try:
        io.call(conn.do_handshake)
    except retls.VerifyError as e:
        raise Failure("verify", str(e)) from None
    except retls.TimeoutError as e:
        raise Failure("timeout", f"handshake: {e}") from None
    except retls.Error as e:
        raise Failure("handshake", str(e) or type(e).__name__) from None
    report.update(protocol=conn.version, cipher=conn.cipher,
                  alpn=conn.alpn_protocol,
                  certificate=decode_certificate(conn.peer_certificate),
                  verify="skipped (--insecure)" if o.insecure else
                  f"ok (chain and hostname {servername})")

    try:
        if o.key_update:
            conn.key_update(request_peer=True)
            io.call(conn.do_handshake)  # sends it now, even with no data
        if o.renegotiate:
            conn.renegotiate()
            io.call(conn.do_handshake)  # runs the new handshake
    except retls.ArgumentError as e:
        raise Failure("usage", str(e)) from None
    except retls.TimeoutError as e:
        raise Failure("timeout", f"{'key update' if o.key_update else 'renegotiation'}: {e}") from None
    except retls.Error as e:
        raise Failure("handshake", str(e)) from None
    report.update(key_update=o.key_update, renegotiated=o.renegotiate)

    sent = 0
    try:
        view = memoryview(data)
        while sent < len(data):
            try:
                sent += conn.write(view[sent:sent + (256 << 10)])
            except retls.WantIO:
                sent += io.call(conn.flush)  # the connection kept the bytes
    except retls.TimeoutError as e:
        raise Failure("timeout", f"sending: {e}") from None

    reply, closed = bytearray(), None
    while closed is None:
        try:
            reply += io.call(lambda: conn.read(65536))
        except retls.ZeroReturn:
            closed = "close_notify"
        except retls.EOFError:
            closed = "closed without close_notify"
        except retls.TimeoutError:
            closed = f"still open after {o.timeout:g} s without data"
    if closed != "closed without close_notify":
        try:
            io.call(conn.shutdown)
        except retls.Error:
            pass  # the peer may be gone already; the report is complete
    stats = conn.stats
    newest = conn.session   # TLS 1.3 tickets came with the reply
    report.update(
        bytes_sent=sent, bytes_received=len(reply), end=closed,
        want_read=stats["want_read"], want_write=stats["want_write"],
        retries=stats["retries"],
        reply=bytes(reply[:4096]).decode("utf-8", errors="replace"),
        session_reused=conn.session_reused,
        early_data_status=conn.early_data_status)
    conn.close(discard=True)
    return report, newest


def print_text(r):
    def row(name, value):
        print(f"{name:12} {value}")
    row("connected", f"{r['target']} (servername {r['servername']})")
    row("protocol", r["protocol"])
    row("cipher", r["cipher"])
    row("alpn", r["alpn"] or "(none)")
    cert = r["certificate"]
    if cert is None:
        row("certificate", "(none sent)")
    elif "error" in cert:
        row("certificate", cert["error"])
    else:
        row("subject", cert["subject"])
        row("issuer", cert["issuer"])
        row("valid", f"{cert['not_before']} .. {cert['not_after']}")
        row("sha256", cert["sha256"])
    row("verify", r["verify"])
    if r["key_update"]:
        row("key update", "sent (server asked to update too)")
    if r["renegotiated"]:
        row("renegotiate", "done")
    row("session", "resumed" if r["session_reused"] else "new")
    row("early data", r["early_data_status"].replace("_", " "))
    row("sent", f"{r['bytes_sent']} bytes")
    row("received", f"{r['bytes_received']} bytes, then {r['end']}")
    row("wants", f"want_read={r['want_read']} want_write={r['want_write']} "
                 f"retries={r['retries']}")
    if r["reply"]:
        preview = r["reply"][:200]
        row("reply", repr(preview) + (" ..." if len(r["reply"]) > 200 else ""))


def main(argv=None):
    o = parse_args(argv)
    try:
        report = probe(o)
    except Failure as f:
        if o.json:
            print(json.dumps({"ok": False, "error": f.kind, "reason": str(f)}))
        print(f"error: {f.kind}: {f}", file=sys.stderr)
        return EXIT[f.kind]
    except (retls.Error, OSError) as e:
        if o.json:
            print(json.dumps({"ok": False, "error": "error", "reason": str(e)}))
        print(f"error: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT["error"]
    if o.json:
        print(json.dumps(report))
    else:
        print_text(report)
    return 0
