"""The TLS test client: `python -m retls` and examples/lua/probe.lua (the
language comes from RETLS_INTEROP_LANG).  Both take the same options, print
the same report and exit with the same statuses."""
import hashlib
import json
import socket
import ssl

import pytest

from conftest import Client, need_env
from servers import HOST, GnutlsServ, SServer, SinkServer, free_port

# The keys of a successful --json report, in both languages.
REPORT_KEYS = {"ok", "target", "servername", "protocol", "cipher", "alpn",
               "certificate", "verify", "key_update", "renegotiated",
               "bytes_sent", "bytes_received", "end", "want_read",
               "want_write", "retries", "reply", "session_reused",
               "early_data_status"}


@pytest.fixture(scope="module")
def probe():
    client = Client(need_env("RETLS_INTEROP_LANG"))

    def run(*args, timeout=60):
        p, _ = client.run("probe", *args, timeout=timeout)
        return p
    return run


def verified(pki):
    return ["--cafile", pki.ca, "--servername", "localhost"]


def report(p):
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")
    r = json.loads(p.stdout)
    assert set(r) == REPORT_KEYS
    return r


def fingerprint(pem_path):
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def failure(p, status, kind):
    """A failure: the exit status, one line on stderr, JSON on stdout."""
    err = p.stderr.decode(errors="replace")
    assert p.returncode == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {kind}: "), err
    r = json.loads(p.stdout)
    assert r["ok"] is False and r["error"] == kind
    return r["reason"]


def test_reports_protocol_cipher_certificate_and_reply(probe, pki):
    with SServer(pki, version="tls1_3", extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--send", r"GET / HTTP/1.0\r\n\r\n")
    r = report(p)
    assert r["ok"] is True and r["protocol"] == "TLSv1.3"
    assert r["cipher"].startswith("TLS_")
    assert r["alpn"] is None
    cert = r["certificate"]
    assert cert["subject"] == "CN=localhost"
    assert cert["issuer"] == "CN=retls test CA"
    assert cert["not_before"].endswith("GMT") and cert["not_after"].endswith("GMT")
    assert cert["sha256"] == fingerprint(pki.server_cert)
    assert r["verify"] == "ok (chain and hostname localhost)"
    assert r["bytes_sent"] == len(b"GET / HTTP/1.0\r\n\r\n")
    assert r["reply"].startswith("HTTP/1.0 200 ok\r\n")
    assert r["bytes_received"] >= len(r["reply"]) > 0
    assert r["end"] == "close_notify"


def test_text_report_names_every_field(probe, pki):
    with SServer(pki, version="tls1_2", extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki),
                  "--send", r"GET / HTTP/1.0\r\n\r\n")
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    for field in ("connected", "protocol     TLSv1.2", "cipher", "alpn",
                  "subject      CN=localhost", "issuer       CN=retls test CA",
                  "valid", f"sha256       {fingerprint(pki.server_cert)}",
                  "verify       ok", "sent         18 bytes", "received",
                  "wants", "reply"):
        assert field in out, out


def test_alpn_and_keylog(probe, pki, tmp_path):
    keylog = tmp_path / "keys.txt"
    with SServer(pki, version="tls1_3", extra=["-www", "-alpn", "http/1.1"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--alpn", "h2,http/1.1", "--keylog", str(keylog),
                  "--send", r"GET / HTTP/1.0\r\n\r\n")
    assert report(p)["alpn"] == "http/1.1"
    assert "CLIENT_TRAFFIC_SECRET_0 " in keylog.read_text()


def test_client_certificate(probe, pki):
    with SServer(pki, version="tls1_2", verify_client=True,
                 extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--cert", pki.client_cert, "--key", pki.client_key,
                  "--send", r"GET / HTTP/1.0\r\n\r\n")
    assert report(p)["protocol"] == "TLSv1.2"
    assert b"retls-test-client" in srv.output()  # s_server saw our cert


@pytest.mark.parametrize("mode", [[], ["--nonblocking"]])
def test_sends_file_repeated_and_the_server_gets_it_all(probe, pki,
                                                        tmp_path, mode):
    blob = bytes(range(256)) * 4096  # 1 MiB
    (tmp_path / "blob").write_bytes(blob)
    with SinkServer(pki) as srv:
        # The sink replies only after our close_notify, so the reply phase
        # ends by the timeout: "still open".
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--send-file", str(tmp_path / "blob"), "--repeat", "3",
                  "--timeout", "1", *mode)
        srv.join()
    r = report(p)
    assert r["bytes_sent"] == 3 << 20
    assert r["end"] == "still open after 1 s without data"
    assert srv.received == 3 << 20
    assert srv.sha256 == hashlib.sha256(blob * 3).hexdigest()


def test_nonblocking_echo_through_gnutls(probe, pki):
    with GnutlsServ(pki) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--nonblocking", "--send", r"hello retls\n", "--repeat",
                  "1000", "--timeout", "1")
    r = report(p)
    assert r["bytes_sent"] == r["bytes_received"] == 12000
    assert r["reply"].startswith("hello retls\nhello retls\n")


def test_renegotiate_tls12(probe, pki):
    with SServer(pki, version="tls1_2", extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--renegotiate", "--send", r"GET / HTTP/1.0\r\n\r\n")
        srv.wait()
    r = report(p)
    assert r["renegotiated"] is True
    assert r["reply"].startswith("HTTP/1.0 200 ok")
    assert srv.stats("server renegotiates") == 1


def test_key_update_tls13(probe, pki):
    with SServer(pki, version="tls1_3", extra=["-www", "-msg"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--key-update", "--send", r"GET / HTTP/1.0\r\n\r\n")
        srv.wait()
    r = report(p)
    assert r["key_update"] is True and r["reply"].startswith("HTTP/1.0 200 ok")
    # The server saw our KeyUpdate, and answered with its own (we asked).
    out = srv.output()
    assert b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate" in out
    assert b">>> TLS 1.3, Handshake [length 0005], KeyUpdate" in out


def test_key_update_on_tls12_is_a_usage_error(probe, pki):
    with SServer(pki, version="tls1_2", extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--key-update")
    assert "TLS 1.3" in failure(p, 2, "usage")


def test_refused(probe):
    p = probe(f"127.0.0.1:{free_port()}", "--json")
    assert "refused" in failure(p, 3, "refused").lower()


def test_verify_failure(probe, pki):
    with SServer(pki, version="tls1_3", extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", "--cafile", pki.other_ca,
                  "--servername", "localhost", "--json")
    assert "certificate verify failed" in failure(p, 6, "verify")


def test_hostname_mismatch_is_a_verify_failure(probe, pki):
    with SServer(pki, version="tls1_3", extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", "--cafile", pki.ca,
                  "--servername", "other.example", "--json")
    assert "hostname mismatch" in failure(p, 6, "verify")


def test_handshake_failure(probe, pki):
    with SServer(pki, version="tls1_2", extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                  "--min-version", "TLSv1.3")
    assert "protocol version" in failure(p, 5, "handshake")


@pytest.mark.parametrize("mode", [[], ["--nonblocking"]])
def test_timeout_when_the_server_never_answers(probe, mode):
    # A TCP listener that accepts (the kernel does) but never speaks TLS.
    with socket.create_server((HOST, 0)) as silent:
        p = probe(f"127.0.0.1:{silent.getsockname()[1]}", "--json",
                  "--insecure", "--timeout", "0.5", *mode)
    failure(p, 4, "timeout")


def test_bad_usage(probe):
    p = probe("no-port-here:x")
    assert p.returncode == 2


@pytest.mark.parametrize("args, cipher", [
    (["--max-version", "TLSv1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"],
     "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (["--min-version", "TLSv1.3", "--ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
     "TLS_CHACHA20_POLY1305_SHA256"),
])
def test_versions_and_ciphers_are_honoured(probe, pki, args, cipher):
    with SServer(pki, version="tls1_3" if "TLSv1.3" in args else "tls1_2",
                 extra=["-www"]) as srv:
        p = probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json", *args,
                  "--send", r"GET / HTTP/1.0\r\n\r\n")
    assert report(p)["cipher"] == cipher


def test_a_bad_cipher_list_is_a_usage_error(probe):
    p = probe(f"127.0.0.1:{free_port()}", "--json", "--ciphers", "NO-SUCH-CIPHER")
    failure(p, 2, "usage")


# ---- sessions and 0-RTT -------------------------------------------------------

GET = r"GET / HTTP/1.0\r\n\r\n"


@pytest.mark.parametrize("version", ["tls1_3", "tls1_2"])
def test_sess_out_then_sess_in_resumes(probe, pki, tmp_path, version):
    sess = tmp_path / "session.bin"
    with SServer(pki, version=version, extra=["-www", "-naccept", "2"]) as srv:
        target = f"127.0.0.1:{srv.port}"
        first = report(probe(target, *verified(pki), "--json", "--sess-out",
                             str(sess), "--send", GET))
        second = report(probe(target, *verified(pki), "--json", "--sess-in",
                              str(sess), "--send", GET))
    assert first["session_reused"] is False
    assert second["session_reused"] is True
    assert first["early_data_status"] == second["early_data_status"] \
        == "not_sent"
    assert second["reply"].startswith("HTTP/1.0 200 ok")


def test_reconnect_resumes_the_first_session(probe, pki):
    with SServer(pki, version="tls1_3", extra=["-www", "-naccept", "2"]) as srv:
        r = report(probe(f"127.0.0.1:{srv.port}", *verified(pki), "--json",
                         "--reconnect", "--send", GET))
    assert r["session_reused"] is True
    assert r["reply"].startswith("HTTP/1.0 200 ok")


def test_early_data_accepted_then_stale_ticket_replayed(probe, pki, tmp_path):
    early, sess = tmp_path / "early.txt", tmp_path / "session.bin"
    early.write_bytes(b"EARLY-0RTT\n")
    # s_server's plain mode prints what its application reads: early data
    # under "Early data received:", ordinary data after the banner.
    with SServer(pki, version="tls1_3",
                 extra=["-early_data", "-naccept", "3"]) as srv:
        target = f"127.0.0.1:{srv.port}"
        common = [*verified(pki), "--json", "--timeout", "1"]
        report(probe(target, *common, "--sess-out", str(sess),
                     "--send", r"first\n"))
        accepted = report(probe(target, *common, "--sess-in", str(sess),
                                "--early-data", str(early),
                                "--send", r"second\n"))
        # The same ticket again: anti-replay rejects its early data, and
        # retls sends it as ordinary data right after the handshake.
        rejected = report(probe(target, *common, "--sess-in", str(sess),
                                "--early-data", str(early),
                                "--send", r"third\n"))
        srv.wait()
    assert accepted["session_reused"] is True
    assert accepted["early_data_status"] == "accepted"
    assert rejected["early_data_status"] == "rejected"
    out = srv.output()
    # (s_server's own messages are buffered, the application's bytes are
    # not: only the bytes' order among themselves is meaningful)
    assert b"Early data received:" in out
    assert b"Early data was rejected\n" in out
    # every early byte reached the application once per connection, the
    # replay before the third connection's ordinary data
    assert out.count(b"EARLY-0RTT\n") == 2
    assert b"EARLY-0RTT\nthird\n" in out
    assert rejected["bytes_sent"] == len(b"third\n")


def test_early_data_without_a_session_is_a_usage_error(probe, tmp_path):
    early = tmp_path / "early.txt"
    early.write_bytes(b"x")
    p = probe(f"127.0.0.1:{free_port()}", "--json", "--early-data", str(early))
    assert "--sess-in" in failure(p, 2, "usage")


def test_garbage_session_file_is_a_usage_error(probe, tmp_path):
    sess = tmp_path / "session.bin"
    sess.write_bytes(b"not a session")
    p = probe(f"127.0.0.1:{free_port()}", "--json", "--sess-in", str(sess))
    assert "not a TLS session" in failure(p, 2, "usage")
