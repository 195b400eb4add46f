"""Build relio's compiled engine (Cython) alongside the pure-Python package.

Every ``ext/relio/engine/*.pyx`` becomes the extension module ``relio.engine.<name>``. The ``.pxd``
files sit beside them (a package path that matches the module names) so that Cython finds them for
cimports; see the layout note in ``docs/PROTOCOL.md``.

The ``.pyx`` files are translated to C when the extensions are built (``build_ext``), not when this
file is read, so an sdist carries the Cython sources (``MANIFEST.in``) and no generated C, and a
wheel built from it compiles them (Cython is a build requirement in ``pyproject.toml``). The
generated C goes to ``build/cython/<variant>/``, one directory per variant (release, debug, trace),
so that switching variants never reuses C generated with other directives.

Environment knobs (for development only):

``RELIO_DEBUG_BUILD=1``
    a debug build: Cython's bounds, wraparound and initialisation checks on, ``-O0 -g``, and the
    C macro ``RELIO_DEBUG_BUILD`` defined, so that every compiled module reports
    ``DEBUG_BUILD = True`` (``tests/test_compiled.py`` checks which build loaded).
``RELIO_EXTENSIONS=_idset,_lru``
    build only these modules (lets several people work on separate modules at once).
``RELIO_CYTHON_ANNOTATE=1``
    write Cython's HTML annotation next to each generated ``.c`` (under ``build/cython/``).
``RELIO_CYTHON_TRACE=1``
    compile with line tracing (coverage, profiling); slower.
"""

import glob
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
EXT_DIR = os.path.join("ext", "relio", "engine")


def _flag(name):
    return os.environ.get(name) == "1"


def _variant():
    parts = (["debug"] if _flag("RELIO_DEBUG_BUILD") else []) + (
        ["trace"] if _flag("RELIO_CYTHON_TRACE") else [])
    return "-".join(parts) or "release"


def _extensions():
    """One Extension per engine source; an incomplete source tree is an error, not a pure wheel."""
    pyx_files = sorted(glob.glob(os.path.join(HERE, EXT_DIR, "*.pyx")))
    if not pyx_files:
        raise SystemExit(
            f"relio: no {EXT_DIR}/*.pyx found: the engine's Cython sources are missing from this "
            "source tree (an sdist must include them; see MANIFEST.in)")
    only = {n.strip() for n in os.environ.get("RELIO_EXTENSIONS", "").split(",") if n.strip()}
    macros = []
    if _flag("RELIO_CYTHON_TRACE"):
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    if _flag("RELIO_DEBUG_BUILD"):
        macros += [("RELIO_DEBUG_BUILD", "1")]
    exts = []
    for pyx in pyx_files:
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        exts.append(Extension(f"relio.engine.{name}", [os.path.relpath(pyx, HERE)],
                              define_macros=list(macros)))
    return exts


def _directives():
    debug = _flag("RELIO_DEBUG_BUILD")
    directives = {
        "language_level": "3",
        "boundscheck": debug,
        "wraparound": debug,
        "cdivision": True,
        "initializedcheck": debug,
        "embedsignature": True,
    }
    if _flag("RELIO_CYTHON_TRACE"):
        directives["linetrace"] = True
    return directives


# Compiler flags by compiler family: distutils' compiler_type is "unix" for gcc and clang (Linux,
# macOS), "mingw32"/"cygwin" for gcc on Windows, "msvc" for Visual C++ (and clang-cl).
_GCC_STYLE = {"unix", "mingw32", "cygwin"}
_FLAGS = {
    ("gcc", False): ["-O3", "-Wno-unused-function", "-Wno-unreachable-code"],
    ("gcc", True): ["-O0", "-g", "-UNDEBUG", "-Wno-unused-function", "-Wno-unreachable-code"],
    ("msvc", False): ["/O2"],
    ("msvc", True): ["/Od", "/Zi", "/UNDEBUG"],
}


class BuildExt(build_ext):
    """Translate the ``.pyx`` sources to C, then compile with flags that suit the compiler."""

    def build_extensions(self):
        from Cython.Build import cythonize  # a build requirement; imported only when building

        cythonized = cythonize(
            self.extensions,
            include_path=["ext"],
            compiler_directives=_directives(),
            build_dir=os.path.join("build", "cython", _variant()),
            annotate=_flag("RELIO_CYTHON_ANNOTATE"),
            force=self.force,
            nthreads=self.parallel if isinstance(self.parallel, int) and self.parallel > 1 else 0,
        )
        family = "msvc" if self.compiler.compiler_type == "msvc" else (
            "gcc" if self.compiler.compiler_type in _GCC_STYLE else None)
        flags = _FLAGS.get((family, _flag("RELIO_DEBUG_BUILD")), [])
        # Keep setuptools' own Extension objects (finalize_options annotated them): take the C
        # sources from Cython's copies.
        by_name = {ext.name: ext for ext in cythonized}
        for ext in self.extensions:
            ext.sources = list(by_name[ext.name].sources)
            ext.depends = list(by_name[ext.name].depends or [])
            ext.extra_compile_args = list(ext.extra_compile_args or []) + flags
        super().build_extensions()


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
