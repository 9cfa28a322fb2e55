"""Build the aredis asyncio package: a C extension over libaredis.

The extension links libaredis statically. By default the library is built
here with CMake from the enclosing source tree (Release, no sanitizers) in
build/libaredis; set AREDIS_BUILD_DIR to another CMake build directory of
the library (one without sanitizers) to build and use that one instead,
and AREDIS_SOURCE_DIR to the library's source tree when this directory is
not inside it.

    /usr/bin/python3 -m pip install --no-index --no-build-isolation .
"""
import os
import re
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
# The library's source tree: the enclosing one, or AREDIS_SOURCE_DIR when
# this directory was copied elsewhere.
ROOT = os.environ.get("AREDIS_SOURCE_DIR", os.path.dirname(HERE))


def private_libs(build_dir):
    """The libraries libaredis.a needs, from the pkg-config template CMake
    configured (Libs.private), so that TLS and the cache codecs link."""
    pc = os.path.join(build_dir, "aredis.pc.in")
    libs = ["-lm", "-pthread"]
    if os.path.exists(pc):
        with open(pc, encoding="utf-8") as f:
            for line in f:
                if line.startswith("Libs.private:"):
                    libs = line.split(":", 1)[1].split()
    return libs


class BuildExt(build_ext):
    def run(self):
        build_dir = os.path.abspath(os.environ.get(
            "AREDIS_BUILD_DIR", os.path.join(HERE, "build", "libaredis")))
        lib_dir = os.path.join(build_dir, "src")
        # The library, built (or brought up to date) first.
        if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
            subprocess.check_call([
                "cmake", "-S", ROOT, "-B", build_dir,
                "-DCMAKE_BUILD_TYPE=Release",
                "-DAREDIS_BUILD_TESTS=OFF", "-DAREDIS_BUILD_EXAMPLES=OFF",
                "-DAREDIS_BUILD_BENCH=OFF", "-DAREDIS_BUILD_TOOLS=OFF",
                "-DAREDIS_ASAN=OFF", "-DAREDIS_UBSAN=OFF",
            ])
        subprocess.check_call([
            "cmake", "--build", build_dir, "--target", "aredis_static",
            "-j", os.environ.get("JOBS", "2"),
        ])
        for ext in self.extensions:
            ext.include_dirs.append(os.path.join(ROOT, "include"))
            ext.extra_objects.append(os.path.join(lib_dir, "libaredis.a"))
            # Relink when the library changed, not only the extension's
            # own sources.
            ext.depends.append(os.path.join(lib_dir, "libaredis.a"))
            ext.extra_link_args.extend(private_libs(build_dir))
        super().run()


setup(
    name="aredis",
    version="0.1.0",
    description="asyncio Redis client on the aredis C core",
    packages=["aredis"],
    ext_modules=[
        Extension(
            "aredis._core",
            sources=["src/_core.c", "src/future.c"],
            depends=["src/future.h"],
            extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra",
                                "-Wstrict-prototypes", "-Wwrite-strings",
                                "-Wno-missing-field-initializers",
                                "-Wno-cast-function-type"] +
            (["-Werror"] if os.environ.get("AREDIS_WERROR") == "1" else []),
        )
    ],
    cmdclass={"build_ext": BuildExt},
    python_requires=">=3.9",
)
