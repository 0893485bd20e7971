"""examples/demo.py, the README's first command, passes every check with
its defaults (64 MiB from Python and from Lua, a wrong retry), honours its
flags, and exits non-zero when a part fails."""
import os
import subprocess
import sys

from conftest import SOURCE_DIR, need_env

DEMO = os.path.join(SOURCE_DIR, "examples", "demo.py")


def run_demo(*args, build_dir=None):
    p = subprocess.run(
        [sys.executable, DEMO, "--build-dir",
         build_dir or need_env("RETLS_BUILD_DIR"), *args],
        capture_output=True, text=True, timeout=120)
    return p, p.stdout


def checks(out):
    return [line.split(None, 1)[1] for line in out.splitlines()
            if line.strip().startswith("check ")]


def test_defaults_pass_every_check():
    p, out = run_demo()
    assert p.returncode == 0, out + p.stderr
    assert out.rstrip().endswith("all checks passed")
    assert "[1/3] Python client: 64.0 MiB in 256 KiB writes" in out
    assert "[2/3] Lua client" in out
    assert "write(other bytes) RetryMismatch:" in out
    assert len(checks(out)) == 10 and all(c.endswith(": OK") for c in checks(out))
    # Both clients pushed 64 MiB and the server's SHA-256 matched.
    assert out.count("bytes sent         67,108,864 (64.0 MiB)") == 2
    assert out.count("server received exactly what was sent "
                     "(SHA-256 on both sides): OK") == 2


def test_flags_change_the_run():
    p, out = run_demo("--size", "8M", "--write-size", "100K",
                      "--sndbuf", "16K", "--tls-version", "TLSv1.2")
    assert p.returncode == 0, out + p.stderr
    assert "8.0 MiB in 100 KiB writes, SO_SNDBUF 16 KiB" in out
    assert out.count("bytes sent         8,388,608 (8.0 MiB)") == 2
    assert "handshake          TLSv1.2 " in out
    assert "--tls-version TLSv1.2" in out  # passed on to the Lua client


def test_a_failed_part_gives_a_non_zero_exit(tmp_path):
    # A build directory with the Python module but no Lua module: the Lua
    # run cannot happen, and the demo must say so and fail.
    os.makedirs(tmp_path / "bindings")
    os.symlink(os.path.join(need_env("RETLS_BUILD_DIR"), "bindings", "python"),
               tmp_path / "bindings" / "python")
    p, out = run_demo("--size", "1M", build_dir=str(tmp_path))
    assert p.returncode == 1, out
    assert "the Lua module is not built" in out
    assert "1 check(s) FAILED: Lua client run" in out


def test_bad_flags_are_usage_errors():
    p, _ = run_demo("--size", "lots")
    assert p.returncode == 2
    assert "want a size like 1000, 256K or 64M, not 'lots'" in p.stderr
