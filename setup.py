"""Build the retls Python module: `pip install .` from a clean checkout.

SWIG turns bindings/retls.i into the extension retls.__core plus its shadow
module retls/_core.py; the core C sources are compiled into the extension
and linked against OpenSSL.  Nothing generated is committed.
"""
import glob
import os
import re

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PKG_DIR = os.path.join("bindings", "python")


def core_version():
    """RETLS_VERSION from the C header: one version for C and Python."""
    with open(os.path.join("core", "include", "retls.h")) as f:
        return re.search(r'#define RETLS_VERSION "([^"]+)"', f.read()).group(1)


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
    ext_modules=[core],
    cmdclass={"build_py": BuildPyAfterExt},
    # Keep setuptools' scratch files away from CMake's build/ directory.
    options={"build": {"build_base": "build-setuptools"}},
)
