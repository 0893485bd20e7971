"""Channel binding, key export and chains on Python connections (the core
functions LuaSec's methods use; mirrors tests/c/test_exporter.c and
tests/lua/luasec_methods_spec.lua): both ends agree, against a retls peer
and against CPython's own ssl as the peer, where it can tell."""
import os
import socket
import ssl
import threading

import pytest

import retls
from helpers import client_ctx, server_ctx


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_both_ends_agree(version):
    c, s = retls.pair(client_ctx(max_version=version, verify=False),
                      server_ctx(max_version=version))
    assert c.version == version
    assert len(c.finished) >= 12 and c.finished == s.peer_finished
    assert s.finished == c.peer_finished and c.finished != s.finished
    for context in (None, b"", b"ctx"):
        a = c.export_keying_material("EXPERIMENTAL retls", 48, context)
        b = s.export_keying_material("EXPERIMENTAL retls", 48, context)
        assert a == b and len(a) == 48
    none = c.export_keying_material("EXPERIMENTAL retls", 32)
    empty = c.export_keying_material("EXPERIMENTAL retls", 32, b"")
    assert (none != empty) == (version == "TLSv1.2")  # 1.3: the same
    assert c.export_keying_material("EXPERIMENTAL other", 32) != none
    # the server's certificate, from both sides
    assert c.peer_chain == s.local_chain == [c.peer_certificate]
    assert s.peer_chain == [] and c.local_chain == []


def test_sni_name_on_both_ends():
    sctx = server_ctx()
    c = retls.Connection(client_ctx(verify=False), None,
                         server_hostname="example.test")
    s = retls.Connection(sctx, None)
    from helpers import handshake_memory
    handshake_memory(c, s)
    assert c.server_name == s.server_name == "example.test"
    ip = retls.Connection(client_ctx(verify=False), None,
                          server_hostname="127.0.0.1")
    assert ip.server_name is None


def test_exporter_matches_cpython_ssl_as_the_peer(pki):
    """TLS 1.2 tls-unique against CPython's ssl server: its
    get_channel_binding() is the client's first Finished."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki.server_cert, pki.server_key)
    sctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ls = socket.create_server(("127.0.0.1", 0))
    got = {}

    def serve():
        conn, _ = ls.accept()
        conn.settimeout(20)
        with sctx.wrap_socket(conn, server_side=True) as t:
            got["cb"] = t.get_channel_binding("tls-unique")
            t.recv(1)

    th = threading.Thread(target=serve)
    th.start()
    c = retls.connect("127.0.0.1", ls.getsockname()[1],
                      retls.Context("client", cafile=pki.ca),
                      server_hostname="localhost", timeout=20)
    c.do_handshake()
    c.write(b"x")
    th.join(20)
    ls.close()
    assert got["cb"] == c.finished
    c.close()


def test_bad_arguments_and_states():
    c, s = retls.pair(handshake=False)
    assert c.finished == b"" and c.peer_chain == []
    with pytest.raises(retls.ArgumentError, match="handshake"):
        c.export_keying_material("EXPERIMENTAL x", 16)
    retls._handshake_pair(c, s)
    with pytest.raises(TypeError, match="label"):
        c.export_keying_material(b"bytes", 16)
    with pytest.raises(ValueError, match="NUL"):
        c.export_keying_material("a\0b", 16)
    with pytest.raises(ValueError, match="length"):
        c.export_keying_material("EXPERIMENTAL x", 0)
    with pytest.raises(TypeError, match="encode"):
        c.export_keying_material("EXPERIMENTAL x", 16, "text")
    c.close()
    with pytest.raises(retls.Closed):
        c.finished
    with pytest.raises(retls.Closed):
        c.export_keying_material("EXPERIMENTAL x", 16)
