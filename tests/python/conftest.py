"""Fixtures for the Python suite; helpers are in helpers.py.

The suite imports the retls package from PYTHONPATH (CTest points it at
<build>/bindings/python).  Every server started here is stopped here.
"""
import pytest

from helpers import SServer, SocketPair, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def s_server(pki):
    """Factory: s_server(args...) starts one; all are stopped at teardown."""
    started = []

    def start(*args):
        srv = SServer(pki, args).start()
        started.append(srv)
        return srv
    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def sockpair():
    made = []

    def make(cctx=None, sctx=None):
        p = SocketPair(cctx, sctx)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()
