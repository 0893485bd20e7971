"""pki.py - the throwaway certificates the Python and interop suites share.

make_pki(d) writes, with the openssl CLI, into directory d: a CA, a server
certificate for localhost/127.0.0.1 and a client certificate signed by it,
and an unrelated CA that trusts neither (EC P-256, valid one day, so
nothing that can expire is committed).  It imports nothing from retls, so
the interop suite can use it in builds without the Python module.
"""
import os
import subprocess


class PKI:
    """Paths of the PEM files make_pki() wrote."""

    def __init__(self, d):
        self.dir = d
        p = lambda name: os.path.join(d, name)
        self.ca, self.other_ca = p("ca.pem"), p("other-ca.pem")
        self.server_cert, self.server_key = p("server.pem"), p("server.key")
        self.client_cert, self.client_key = p("client.pem"), p("client.key")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d):
    """Create the PKI files in directory d and return their paths."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca, cn in (("ca", "retls test CA"), ("other-ca", "unrelated CA")):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out",
                 f"{ca}.pem", "-days", "1", "-subj", f"/CN={cn}", cwd=d)
    for name, cn, ext in (
            ("server", "localhost",
             "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
             "extendedKeyUsage=serverAuth\n"),
            ("client", "retls-test-client", "extendedKeyUsage=clientAuth\n")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
                 "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return PKI(d)
