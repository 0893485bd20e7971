"""Certificate verification and hostname checks (mirrors tests/c/
test_verify.c): failures are retls.VerifyError (an SSLError) with OpenSSL's
readable reason; client certificates."""
import ssl

import pytest

import retls

from helpers import handshake_memory


def memory_pair(cctx, sctx, server_hostname=None):
    return (retls.Connection(cctx, None, server_hostname=server_hostname),
            retls.Connection(sctx, None))


def test_verified_handshake_and_peer_certificate(pki):
    client, server = retls.pair(
        retls.Context(cafile=pki.ca),
        retls.Context("server", certfile=pki.server_cert,
                      keyfile=pki.server_key))
    with open(pki.server_cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    assert client.peer_certificate == der


def verify_failure(cctx, sctx, hostname):
    client = retls.Connection(cctx, None, server_hostname=hostname)
    server = retls.Connection(sctx, None)
    with pytest.raises(retls.SSLError) as info:
        handshake_memory(client, server)
    return info.value


def test_verification_failure_unknown_ca(pki):
    sctx = retls.Context("server", certfile=pki.server_cert,
                         keyfile=pki.server_key)
    e = verify_failure(retls.Context(cafile=pki.other_ca), sctx, "localhost")
    assert type(e) is retls.VerifyError
    assert "certificate verify failed" in str(e)
    assert "unable to get local issuer certificate" in str(e)


def test_verification_failure_self_signed():
    sctx = retls.Context("server")
    sctx.use_selfsigned("localhost")
    e = verify_failure(retls.Context(), sctx, "localhost")
    assert type(e) is retls.VerifyError
    assert "self-signed certificate" in str(e)


def test_hostname_mismatch(pki):
    sctx = retls.Context("server", certfile=pki.server_cert,
                         keyfile=pki.server_key)
    e = verify_failure(retls.Context(cafile=pki.ca), sctx, "example.com")
    assert type(e) is retls.VerifyError
    assert "hostname mismatch" in str(e)


def test_ip_address_is_checked_against_ip_san(pki):
    sctx = retls.Context("server", certfile=pki.server_cert,
                         keyfile=pki.server_key)
    client, server = memory_pair(retls.Context(cafile=pki.ca), sctx,
                                 "127.0.0.1")
    handshake_memory(client, server)          # IP:127.0.0.1 is in the SAN
    e = verify_failure(retls.Context(cafile=pki.ca), sctx, "127.0.0.2")
    assert "IP address mismatch" in str(e)


def test_client_certificate_required(pki):
    sctx = retls.Context("server", verify=True, cafile=pki.ca,
                         certfile=pki.server_cert, keyfile=pki.server_key)
    # Without a client certificate the server refuses.
    client, server = memory_pair(retls.Context(cafile=pki.ca), sctx,
                                 "localhost")
    with pytest.raises(retls.SSLError) as info:
        handshake_memory(client, server)
    assert "certificate" in str(info.value)
    # With one it accepts, and sees it.
    cctx = retls.Context(cafile=pki.ca, certfile=pki.client_cert,
                         keyfile=pki.client_key)
    client, server = memory_pair(cctx, sctx, "localhost")
    handshake_memory(client, server)
    with open(pki.client_cert) as f:
        assert server.peer_certificate == ssl.PEM_cert_to_DER_cert(f.read())
