"""Fixtures for the interop suite: the PKI and how to run each client.

CMake passes where things are (tests/interop/CMakeLists.txt):
RETLS_SOURCE_DIR, RETLS_C_CLIENT, RETLS_PYTHONPATH, RETLS_LUA (the Lua
version) and RETLS_LUA_PATH / RETLS_LUA_CPATH.  A missing one is an error that says so,
never a skip."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import servers  # noqa: E402

SOURCE_DIR = os.environ.get(
    "RETLS_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
EXAMPLES = os.path.join(SOURCE_DIR, "examples")


def need_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run this suite through ctest "
                    f"(tests/interop/CMakeLists.txt sets it)")
    return value


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return servers.make_pki(str(tmp_path_factory.mktemp("pki")))


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (need_env("RETLS_PYTHONPATH"), env.get("PYTHONPATH")) if p)
    return env


def lua_env():
    env = dict(os.environ)
    # ";;" keeps Lua's default paths (LuaSocket lives there).
    env["LUA_PATH"] = need_env("RETLS_LUA_PATH") + ";;"
    env["LUA_CPATH"] = need_env("RETLS_LUA_CPATH") + ";;"
    return env


def lua_interpreter():
    """The interpreter for RETLS_LUA (the CMake option: 5.1, 5.3, 5.4 or
    luajit), as Debian names it."""
    lua = need_env("RETLS_LUA")
    name = "luajit" if lua == "luajit" else f"lua{lua}"
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH (scripts/setup.sh installs it)")
    return path


class Client:
    """How to run one language's version of an example."""

    def __init__(self, lang):
        self.lang = lang

    def command(self, example):
        """argv prefix and env for examples/<lang>/<example>.<ext>; the
        Python probe is the module's own `python -m retls`."""
        if self.lang == "python" and example == "probe":
            return [sys.executable, "-m", "retls"], python_env()
        if self.lang == "c":
            if example != "nonblocking_client":
                raise ValueError(f"no C version of {example}")
            return [need_env("RETLS_C_CLIENT")], dict(os.environ)
        if self.lang == "python":
            return ([sys.executable,
                     os.path.join(EXAMPLES, "python", example + ".py")],
                    python_env())
        if self.lang == "lua":
            return ([lua_interpreter(),
                     os.path.join(EXAMPLES, "lua", example + ".lua")],
                    lua_env())
        raise ValueError(self.lang)

    def run(self, example, *args, timeout=90.0):
        argv, env = self.command(example)
        return servers.run_client(argv + [str(a) for a in args], env=env,
                                  timeout=timeout)
