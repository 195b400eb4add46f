# Which build of the engine this is. setup.py defines the C macro RELIO_DEBUG_BUILD=1 for a debug build
# (RELIO_DEBUG_BUILD=1 in the environment at build time: bounds, wraparound and initialisation checks,
# -O0 -g); every compiled module exports it as DEBUG_BUILD so that a test can tell which build loaded.
# Declarations only: cimporting this adds no runtime import.
cdef extern from *:
    """
    #ifndef RELIO_DEBUG_BUILD
    #define RELIO_DEBUG_BUILD 0
    #endif
    """
    const bint RELIO_DEBUG_BUILD
