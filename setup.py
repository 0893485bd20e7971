"""Build the retls Python module: `pip install .` from a checkout or an sdist.

SWIG turns bindings/retls.i into the extension retls.__core plus its shadow
module retls/_core.py; the core C sources are compiled into the extension
and linked against OpenSSL.  Nothing generated is committed.

SWIG comes from PyPI (pyproject.toml's build requirements: the `swig`
wheel carries the executable), or from the system when that package is
absent (`--no-build-isolation`).  A C compiler and the OpenSSL 3 headers
are the only system requirements; their absence is reported by name.
"""
import glob
import os
import re
import shutil
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.errors import CompileError

PKG_DIR = os.path.join("bindings", "python")

OPENSSL_MISSING = """
retls needs the OpenSSL 3 development headers (openssl/ssl.h with
OpenSSL >= 3.0), and a test program including them did not compile (the
compiler's message is above).  Install them, then build again:
    Debian, Ubuntu:     apt-get install libssl-dev
    Fedora, RHEL:       dnf install openssl-devel
    Alpine:             apk add openssl-dev
    macOS (Homebrew):   brew install openssl@3, then
                        CFLAGS=-I$(brew --prefix openssl@3)/include
                        LDFLAGS=-L$(brew --prefix openssl@3)/lib
"""

OPENSSL_PROBE = """\
#include <openssl/ssl.h>
#if OPENSSL_VERSION_MAJOR < 3
#error "OpenSSL >= 3.0 is needed; these headers are older"
#endif
int main(void) { return 0; }
"""


def core_version():
    """RETLS_VERSION from the C header: the one version for C, Python,
    CMake and Lua."""
    with open(os.path.join("core", "include", "retls.h")) as f:
        return re.search(r'#define RETLS_VERSION "([^"]+)"', f.read()).group(1)


def find_swig():
    """The swig executable: PyPI's swig package (a build requirement in
    pyproject.toml) first, then one on PATH."""
    try:
        import swig  # sets SWIG_LIB in os.environ for its bundled executable
    except ImportError:
        pass
    else:
        exe = os.path.join(swig.BIN_DIR, "swig")
        if os.path.isfile(exe):
            return exe
    exe = shutil.which("swig4.0") or shutil.which("swig")
    if exe:
        return exe
    raise SystemExit(
        "error: SWIG not found.  `pip install .` gets it from PyPI by itself "
        "(pyproject.toml); with --no-build-isolation install it first: "
        "`pip install swig` (or apt-get install swig).")


class BuildExt(build_ext):
    """Checks the OpenSSL headers before SWIG and the compiler run, so a
    missing libssl-dev ends in one message naming the package rather than
    a page of compiler errors; and uses find_swig()."""

    def finalize_options(self):
        super().finalize_options()
        if not self.swig:
            self.swig = find_swig()

    def build_extensions(self):
        self.check_openssl()
        super().build_extensions()

    def check_openssl(self):
        with tempfile.TemporaryDirectory(prefix="retls-probe-") as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OPENSSL_PROBE)
            try:
                self.compiler.compile([src], output_dir=tmp,
                                      include_dirs=self.include_dirs)
            except CompileError:
                raise SystemExit("error: OpenSSL 3 headers not found\n"
                                 + OPENSSL_MISSING) from None


class BuildPyAfterExt(build_py):
    """SWIG writes the shadow module _core.py during build_ext (into the
    package directory, through -outdir below); build_py copies the package
    and must therefore run after it, or _core.py is missing from the
    install.  M2Crypto's setup.py explains the same fix."""

    def run(self):
        self.run_command("build_ext")
        super().run()


core = Extension(
    "retls.__core",
    sources=[os.path.join("bindings", "retls.i")]
    + sorted(glob.glob(os.path.join("core", "src", "*.c"))),
    depends=[os.path.join("core", "include", "retls.h"),
             os.path.join("core", "src", "internal.h")],
    include_dirs=[os.path.join("core", "include")],
    define_macros=[("_GNU_SOURCE", None)],
    libraries=["ssl", "crypto"],
    swig_opts=["-builtin", "-I" + os.path.join("core", "include"),
               "-outdir", os.path.join(PKG_DIR, "retls")],
)

setup(
    version=core_version(),
    packages=["retls"],
    package_dir={"": PKG_DIR},
    package_data={"retls": ["py.typed", "*.pyi"]},
    ext_modules=[core],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPyAfterExt},
    # Keep setuptools' scratch files away from CMake's build/ directory.
    options={"build": {"build_base": "build-setuptools"}},
)
