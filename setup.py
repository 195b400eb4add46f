"""Build relio's compiled engine (Cython) alongside the pure-Python package.

Every ``ext/relio/engine/*.pyx`` becomes the extension module ``relio.engine.<name>``. The ``.pxd`` files
sit beside them (a package path that matches the module names) so that Cython finds them for cimports;
see the layout note in ``docs/PROTOCOL.md``.

Environment knobs (for development only):

``RELIO_EXTENSIONS=_idset,_lru``
    build only these modules (lets several people work on separate modules at once).
``RELIO_CYTHON_ANNOTATE=1``
    write Cython's HTML annotation next to each ``.pyx``.
``RELIO_CYTHON_TRACE=1``
    compile with line tracing (coverage, profiling); slower.
"""

import glob
import os

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError as exc:  # pragma: no cover - the PEP 517 build installs Cython
    raise SystemExit("relio needs Cython to build its engine: pip install cython") from exc

HERE = os.path.dirname(os.path.abspath(__file__))
EXT_DIR = os.path.join("ext", "relio", "engine")


def _extensions():
    only = {n.strip() for n in os.environ.get("RELIO_EXTENSIONS", "").split(",") if n.strip()}
    trace = os.environ.get("RELIO_CYTHON_TRACE") == "1"
    macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if trace else []
    exts = []
    for pyx in sorted(glob.glob(os.path.join(HERE, EXT_DIR, "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        exts.append(
            Extension(
                f"relio.engine.{name}",
                [os.path.relpath(pyx, HERE)],
                extra_compile_args=["-O3", "-Wno-unused-function", "-Wno-unreachable-code"],
                define_macros=macros,
            )
        )
    return exts, trace


def _cythonized():
    exts, trace = _extensions()
    directives = {
        "language_level": "3",
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
        "embedsignature": True,
    }
    if trace:
        directives["linetrace"] = True
    return cythonize(
        exts,
        include_path=["ext"],
        compiler_directives=directives,
        annotate=os.environ.get("RELIO_CYTHON_ANNOTATE") == "1",
    )


setup(ext_modules=_cythonized())
