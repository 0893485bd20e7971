"""Type information and help(): the stub (bindings/python/retls/__init__.pyi)
matches the module, the examples pass `mypy --strict` against it, and
help(retls.Connection.write) states the retry contract.

The module under test is the one on PYTHONPATH (CTest: the CMake build);
mypy reads the stub from the source tree.
"""
import glob
import os
import pydoc
import subprocess
import sys

import pytest

import retls

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PKG_PARENT = os.path.join(ROOT, "bindings", "python")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One mypy cache for the module: the standard library is analysed once."""
    return tmp_path_factory.mktemp("mypy-cache")


def mypy(args, tmp_path):
    # the stub from the source tree; the runtime (stubtest imports it) is
    # the module this process imported
    env = dict(os.environ, MYPYPATH=PKG_PARENT,
               PYTHONPATH=os.path.dirname(os.path.dirname(retls.__file__)))
    env.pop("LD_PRELOAD", None)
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))


def test_examples_pass_mypy_strict(tmp_path, cache):
    files = sorted(glob.glob(os.path.join(ROOT, "examples", "python", "*.py")))
    files.append(os.path.join(ROOT, "examples", "demo.py"))
    runs = [files]
    if os.path.exists(os.path.join(PKG_PARENT, "retls", "aio.py")):
        # annotated inline, checked as well (mypy takes files or modules
        # in one run, not both)
        runs.append(["-m", "retls.aio"])
    for args in runs:
        proc = mypy(["mypy", "--strict", "--cache-dir",
                     str(cache), *args], tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Success: no issues found" in proc.stdout


def test_mypy_strict_catches_a_misuse(tmp_path, cache):
    """The check above can fail: the stub's types reach the caller."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import retls\n"
        "client, server = retls.pair()\n"
        "n: str = client.write(b'x')\n"              # write returns int
        "client.write('text')\n"                     # str is no buffer
        "retls.Context('both')\n"                    # role is a Literal
        "retls.Connection(retls.Context(), None, capacity='1')\n")
    proc = mypy(["mypy", "--strict", "--cache-dir", str(cache),
                 str(bad)], tmp_path)
    assert proc.returncode == 1
    for line in (3, 4, 5, 6):
        assert f"bad.py:{line}: error" in proc.stdout, proc.stdout


def test_stub_matches_the_module(tmp_path):
    """mypy's stubtest imports the module and compares every public name,
    signature and default with the stub."""
    proc = mypy(["mypy.stubtest", "retls", "--allowlist",
                 os.path.join(HERE, "stubtest_allowlist.txt")], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_package_is_marked_typed():
    pkg = os.path.dirname(retls.__file__)
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    assert os.path.exists(os.path.join(pkg, "__init__.pyi"))


def test_help_on_write_explains_the_retry_contract():
    text = pydoc.render_doc(retls.Connection.write, renderer=pydoc.plaintext)
    for words in ("WantRead/WantWrite", "keeps a copy of the pending bytes",
                  "flush()", "the same bytes", "RetryMismatch",
                  "sends nothing"):
        assert words in " ".join(text.split()), text
    # help(retls.Connection) shows it too, under write()
    assert "keeps a copy of the pending bytes" in " ".join(  # no "|" margins
        pydoc.render_doc(retls.Connection, renderer=pydoc.plaintext)
        .replace("|", " ").split())


def test_help_on_a_connections_write_too():
    """conn.write on an instance is the C method (bound for speed): its
    docstring comes from retls.i and says the same."""
    client, server = retls.pair()
    for method in (client.write, client.flush):
        text = " ".join(pydoc.render_doc(method, renderer=pydoc.plaintext)
                        .split())
        assert "pending write" in text or "pending bytes" in text, text
    text = " ".join(pydoc.render_doc(client.write,
                                     renderer=pydoc.plaintext).split())
    assert "keeps a copy of the pending bytes" in text, text
    assert "RetryMismatch" in text and "flush()" in text, text
