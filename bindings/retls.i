/*
 * retls.i - THE SWIG interface for both the Python and the Lua module
 * (libsolv's bindings/solv.i serves five languages from one file the same
 * way).  Shared part first; then one section per language, only for what
 * really differs between them.
 *
 * Python: swig -python builds the extension "retls._core"; the idiomatic
 *         layer (exceptions, Context/Connection classes) is
 *         bindings/python/retls/__init__.py.
 * Lua:    swig -lua builds the C module "retls_core"; the idiomatic layer
 *         is bindings/lua/retls.lua.
 */

/* ======================================================================== */
/* SHARED PART                                                              */
/* ======================================================================== */

/* (to be written: opaque handles, lifetimes, the wrapped calls) */

/* ======================================================================== */
/* PYTHON SECTION                                                           */
/* ======================================================================== */
#if defined(SWIGPYTHON)

/* (to be written) */

/* ======================================================================== */
/* LUA SECTION                                                              */
/* ======================================================================== */
#elif defined(SWIGLUA)

/* (to be written) */

#else
#error "retls.i supports SWIG's -python and -lua targets only"
#endif
