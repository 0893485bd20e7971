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
/*
 * Layout of this file.  SWIG applies a typemap or %exception only to the
 * declarations that FOLLOW it, so the shared part comes in two pieces:
 *
 *   SHARED PART (this block)      module name, C helpers, the typemap NAMES
 *                                 and the typemaps both languages share
 *   PYTHON SECTION / LUA SECTION  the typemap bodies that differ
 *   SHARED PART, CONTINUED        (after the #endif) the wrapped API itself
 *
 * CONVENTIONS (the contract between the shared part and each section)
 * -------------------------------------------------------------------
 * Every wrapped call that can fail returns a retls_result: the status and
 * the detail text of the object it failed on (connection or context),
 * captured right after the call.  Outputs are parameters named after what
 * they carry; the shared part turns them into hidden arguments
 * (numinputs=0), each language section pushes them as results.
 *
 * Each language section MUST provide these typemaps, and nothing else is
 * needed for the shared API to build:
 *
 *   %typemap(out) retls_result
 *       $1.status == RETLS_OK: return no value of its own (Python: None,
 *       replaced by any argout value; Lua: push nothing).  Otherwise raise
 *       the error for $1.status with the text $1.detail ("" means use
 *       retls_strerror($1.status)), then SWIG_fail.  The status -> error
 *       table lives in ONE place per language.
 *   %typemap(argout) size_t *out
 *       push *$1 as an integer (bytes written/taken).
 *   %typemap(argout) retls_ctx **out  and  %typemap(argout) retls_conn **out
 *       push *$1 as a new object OWNED by the script (SWIG_POINTER_OWN), so
 *       its destructor (~retls_ctx / ~retls_conn below) frees it.  This is
 *       the %newobject of out-parameter factories.  Only reached on success.
 *       (retls_conn **out_client / out_server get it through %apply.)
 *   %typemap(in) (const void *buf, size_t len)   [+ freearg if needed]
 *       one script argument holding bytes: Python any contiguous buffer,
 *       Lua a string.  Anything else raises a clear type error.
 *   %typemap(in, numinputs=1) (void *buf, size_t cap, size_t *got)
 *   %typemap(argout)           (void *buf, size_t cap, size_t *got)
 *   %typemap(freearg)          (void *buf, size_t cap, size_t *got)
 *       read buffers: one integer argument (the most bytes to read, >= 0;
 *       negative raises), allocate cap bytes, set $3 to a size_t local;
 *       argout pushes the first *$3 bytes as bytes/string; freearg frees.
 *   %typemap(argout) (const unsigned char **der, size_t *der_len)
 *       push the DER bytes (*$1, *$2), or None/nil when *$1 is NULL.
 *
 * A section may add its own %exception (Python releases the GIL around
 * calls that can block) and language-only functions.
 */
#if defined(SWIGPYTHON)
%module(package="retls") _core
#elif defined(SWIGLUA)
%module retls_core
#endif

%{
#include "retls.h"

/* A status plus the detail text of the object it failed on.  The text
 * points into that object (retls_*_last_error) and is used at once by the
 * out typemap, before any other call on the object. */
typedef struct {
  int status;
  const char *detail;
} retls_result;

static retls_result w_result(int status, const char *detail) {
  retls_result r;
  r.status = status;
  r.detail = status == RETLS_OK || detail == NULL ? "" : detail;
  return r;
}

/* The status must be computed before the detail is read, hence a function
 * (argument evaluation order is unspecified in C). */
static retls_result w_conn_rc(const retls_conn *conn, int status) {
  return w_result(status, status == RETLS_OK ? "" : retls_conn_last_error(conn));
}

static retls_result w_ctx_rc(const retls_ctx *ctx, int status) {
  return w_result(status, status == RETLS_OK ? "" : retls_ctx_last_error(ctx));
}
%}

/*
 * %extend turns method NAME of struct retls_conn into a C helper named
 * retls_conn_NAME, which would collide with the core's own
 * retls_conn_NAME().  So every wrapper is declared as w_NAME and the w_ is
 * stripped from the name the scripting language sees.
 */
%rename("%(strip:[w_])s") "";

/* Shared halves of the output typemaps: the script never passes these. */
%typemap(in, numinputs=0) size_t *out (size_t tmp = 0) "$1 = &tmp;";
%typemap(in, numinputs=0) retls_ctx **out (retls_ctx *tmp = NULL) "$1 = &tmp;";
%typemap(in, numinputs=0) retls_conn **out (retls_conn *tmp = NULL) "$1 = &tmp;";
%typemap(in, numinputs=0) retls_session **out (retls_session *tmp = NULL) "$1 = &tmp;";
%typemap(in, numinputs=0) (const unsigned char **der, size_t *der_len)
    (const unsigned char *tmp_der = NULL, size_t tmp_len = 0)
    "$1 = ($1_ltype)&tmp_der; $2 = &tmp_len;";

/* ======================================================================== */
/* PYTHON SECTION                                                           */
/* ======================================================================== */
#if defined(SWIGPYTHON)
/*
 * Built with -builtin: Ctx and Conn are real extension types, so
 * conn.write(data) is one C call with no Python frame in between (the
 * benchmark compares small writes with CPython's ssl).  The idiomatic
 * layer is bindings/python/retls/__init__.py.
 */

/* ---- status -> exception ---------------------------------------------- */
/* The table itself is in __init__.py (one dict, status -> class), handed
 * over once at import through set_exception(), as pygit2 registers its
 * exception classes.  Raising is then an array lookup. */
%{
#define RETLS_PY_NSTATUS (RETLS_WANT_WRITE - RETLS__STATUS_END + 1)
static PyObject *retls_py_exc[RETLS_PY_NSTATUS];

static void retls_py_raise(int status, const char *detail) {
  PyObject *cls = NULL;
  if (status > RETLS__STATUS_END && status <= RETLS_WANT_WRITE)
    cls = retls_py_exc[status - RETLS__STATUS_END];
  if (cls == NULL)
    cls = PyExc_OSError; /* only before retls/__init__.py registered */
  PyErr_SetString(cls, detail != NULL && *detail ? detail
                                                 : retls_strerror(status));
}

static PyObject *w_set_exception(int status, PyObject *cls) {
  PyObject **slot;
  if (status <= RETLS__STATUS_END || status > RETLS_WANT_WRITE ||
      status == RETLS_OK) {
    PyErr_Format(PyExc_ValueError, "set_exception: %d is not a failure status",
                 status);
    return NULL;
  }
  if (!PyType_Check(cls) ||
      !PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)PyExc_Exception)) {
    PyErr_SetString(PyExc_TypeError, "set_exception: need an exception class");
    return NULL;
  }
  slot = &retls_py_exc[status - RETLS__STATUS_END];
  Py_INCREF(cls);
  Py_XSETREF(*slot, cls);
  Py_RETURN_NONE;
}
%}
PyObject *w_set_exception(int status, PyObject *cls);

%typemap(out) retls_result {
  if ($1.status != RETLS_OK) {
    retls_py_raise($1.status, $1.detail);
    SWIG_fail;
  }
  $result = SWIG_Py_Void();
}

/* ---- outputs ---------------------------------------------------------- */
/* An output replaces the None the retls_result typemap left in $result; a
 * second one makes a list (pair_new).  SWIG_AppendOutput did exactly this
 * before SWIG 4.3; from 4.3 (PyPI's swig, which `pip install .` uses) it
 * keeps the None of a non-void C function and returns [None, value]. */
%{
static PyObject *retls_py_output(PyObject *result, PyObject *obj) {
  PyObject *list;
  if (result == NULL || result == Py_None) {
    Py_XDECREF(result);
    return obj;
  }
  if (obj == NULL)
    return result;
  if (!PyList_Check(result)) {
    list = PyList_New(1);
    if (list == NULL) {
      Py_DECREF(obj);
      return result;
    }
    PyList_SET_ITEM(list, 0, result);
    result = list;
  }
  PyList_Append(result, obj);
  Py_DECREF(obj);
  return result;
}
%}
%typemap(argout) size_t *out {
  $result = retls_py_output($result, PyLong_FromSize_t(*$1));
}
%typemap(argout) retls_ctx **out {
  $result = retls_py_output($result,
      SWIG_NewPointerObj(*$1, $*1_descriptor, SWIG_POINTER_OWN));
}
%typemap(argout) retls_conn **out {
  $result = retls_py_output($result,
      SWIG_NewPointerObj(*$1, $*1_descriptor, SWIG_POINTER_OWN));
}
%typemap(argout) (const unsigned char **der, size_t *der_len) {
  PyObject *o;
  if (*$1 != NULL) {
    o = PyBytes_FromStringAndSize((const char *)*$1, (Py_ssize_t)*$2);
    if (o == NULL)
      SWIG_fail;
  } else {
    o = Py_None;
    Py_INCREF(o);
  }
  $result = retls_py_output($result, o);
}

/* ---- bytes in: any contiguous buffer ---------------------------------- */
/* bytes is read in place without the buffer protocol (the common case,
 * and the cheapest); everything else goes through PyObject_GetBuffer so
 * bytearray, memoryview and array.array work.  The buffer stays exported
 * for the whole call, so a bytearray cannot be resized under OpenSSL; the
 * core copies what it must keep before returning. */
%{
/* 0 and *view filled (release it), or -1 with the TypeError set. */
static int retls_py_get_buffer(PyObject *o, Py_buffer *view) {
  if (!PyUnicode_Check(o) && PyObject_CheckBuffer(o)) {
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) == 0)
      return 0;
    PyErr_Format(PyExc_TypeError,
                 "data must be a contiguous bytes-like object; this "
                 "'%.100s' is not contiguous (copy it with bytes(data))",
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  PyErr_Format(PyExc_TypeError,
               "data must be a bytes-like object (bytes, bytearray, "
               "memoryview, array.array), not '%.100s'%s",
               Py_TYPE(o)->tp_name,
               PyUnicode_Check(o) ? "; encode text first, e.g. "
                                   "s.encode()" : "");
  return -1;
}
%}
%typemap(in) (const void *buf, size_t len) (Py_buffer view, int have_view = 0) {
  if (PyBytes_Check($input)) {
    $1 = PyBytes_AS_STRING($input);
    $2 = (size_t)PyBytes_GET_SIZE($input);
  } else {
    if (retls_py_get_buffer($input, &view) != 0)
      SWIG_fail;
    have_view = 1;
    $1 = view.buf;
    $2 = (size_t)view.len;
  }
}
%typemap(freearg) (const void *buf, size_t len) {
  if (have_view$argnum)
    PyBuffer_Release(&view$argnum);
}

/* ---- bytes out: read straight into a new bytes object ------------------ */
%typemap(in, numinputs=1) (void *buf, size_t cap, size_t *got)
    (PyObject *bytes = NULL, size_t got = 0) {
  Py_ssize_t n;
  if (!PyIndex_Check($input)) {
    PyErr_Format(PyExc_TypeError, "size must be an int, not '%.100s'",
                 Py_TYPE($input)->tp_name);
    SWIG_fail;
  }
  n = PyNumber_AsSsize_t($input, PyExc_OverflowError);
  if (n == -1 && PyErr_Occurred())
    SWIG_fail;
  if (n < 0) {
    PyErr_Format(PyExc_ValueError, "size must be >= 0, not %zd", n);
    SWIG_fail;
  }
  bytes = PyBytes_FromStringAndSize(NULL, n);
  if (bytes == NULL)
    SWIG_fail;
  $1 = PyBytes_AS_STRING(bytes);
  $2 = (size_t)n;
  $3 = &got;
}
%typemap(argout) (void *buf, size_t cap, size_t *got) {
  if ((Py_ssize_t)got$argnum != PyBytes_GET_SIZE(bytes$argnum) &&
      _PyBytes_Resize(&bytes$argnum, (Py_ssize_t)got$argnum) != 0)
    SWIG_fail;
  $result = retls_py_output($result, bytes$argnum);
  bytes$argnum = NULL;
}
%typemap(freearg) (void *buf, size_t cap, size_t *got) {
  Py_XDECREF(bytes$argnum);
}

/* ---- the GIL ---------------------------------------------------------- */
/* Released only where a call can block: I/O on a socket (fd transport).
 * Memory and pair connections never wait, so they keep the GIL and skip
 * the cost (the M2Crypto %threadallow idea, decided per connection).  A
 * non-blocking socket pays the release too; it costs less than the
 * syscall it surrounds, and the fd's mode can change at any time.
 *
 * While the GIL is released another Python thread may reach the same
 * connection.  retls connections are for one thread at a time, and
 * close() would free the SSL object under the running call (a crash), so
 * the connections inside such a call are listed here and every other
 * call that would touch them is refused with a clear error instead.  The
 * list is only read and written with the GIL held. */
%{
static retls_conn **retls_py_busy;
static size_t retls_py_nbusy, retls_py_capbusy;

static int retls_py_is_busy(const retls_conn *conn) {
  size_t i;
  for (i = 0; i < retls_py_nbusy; i++)
    if (retls_py_busy[i] == conn)
      return 1;
  return 0;
}

/* 0: listed, the GIL may be released.  -1: the exception is set. */
static int retls_py_enter(retls_conn *conn) {
  if (retls_py_is_busy(conn)) {
    retls_py_raise(RETLS_BAD_ARG,
                   "another thread is inside a blocking call on this "
                   "connection; a connection is used by one thread at a "
                   "time (to wake a blocked thread, shut its socket down "
                   "with sock.shutdown(socket.SHUT_RDWR))");
    return -1;
  }
  if (retls_py_nbusy == retls_py_capbusy) {
    size_t cap = retls_py_capbusy ? 2 * retls_py_capbusy : 16;
    retls_conn **p = PyMem_Realloc(retls_py_busy, cap * sizeof(*p));
    if (p == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    retls_py_busy = p;
    retls_py_capbusy = cap;
  }
  retls_py_busy[retls_py_nbusy++] = conn;
  return 0;
}

static void retls_py_leave(const retls_conn *conn) {
  size_t i;
  for (i = 0; i < retls_py_nbusy; i++)
    if (retls_py_busy[i] == conn) {
      retls_py_busy[i] = retls_py_busy[--retls_py_nbusy];
      return;
    }
}
%}

%define RETLS_PY_MAY_BLOCK(method)
%exception retls_conn::method {
  /* Busy first: while another thread is inside a call on this
   * connection, even reading its fd and state races with that call
   * (ThreadSanitizer, tests/python/test_gil.py); retls_py_enter refuses. */
  if (retls_py_is_busy(arg1) || retls_conn_fileno(arg1) >= 0) {
    if (retls_py_enter(arg1) != 0)
      SWIG_fail;
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
    retls_py_leave(arg1);
  } else {
    $action
  }
}
%enddef
RETLS_PY_MAY_BLOCK(w_handshake)
RETLS_PY_MAY_BLOCK(w_flush)
RETLS_PY_MAY_BLOCK(w_read)
RETLS_PY_MAY_BLOCK(w_shutdown)
RETLS_PY_MAY_BLOCK(w_write_early)
RETLS_PY_MAY_BLOCK(w_read_early)

/* Every other Conn method (close, renegotiate, set_session, and the
 * getters too: pending_write, want, stats, fileno, version, cipher, ...)
 * is refused while another thread is inside a blocking call on the same
 * connection: even reading its state races with that call.  One default
 * %exception covers everything wrapped after this point, so a method
 * added later is covered too.  Which wrappers check is decided by the
 * type of their first argument (_Generic): a connection (a Conn method)
 * is looked up in the busy list, anything else (contexts, sessions,
 * module functions) passes.  Only when some thread is blocked at all:
 * otherwise the cost is one load and a branch.  Methods with their own
 * %exception above check the list themselves, and so do the hand-written
 * write() and bio_read() below.  A wrapper without arguments has no arg1
 * for the guard: give it %noexception, as below. */
%{
static int retls_py_guard_conn(const void *argp) {
  const retls_conn *conn = *(retls_conn *const *)argp;
  if (!retls_py_is_busy(conn))
    return 0;
  retls_py_raise(RETLS_BAD_ARG,
                 "another thread is inside a blocking call on this "
                 "connection; wake it first (sock.shutdown("
                 "socket.SHUT_RDWR)), then call this");
  return -1;
}
static int retls_py_guard_none(const void *argp) {
  (void)argp;
  return 0;
}
#define RETLS_PY_GUARD(arg)                                              \
  if (retls_py_nbusy != 0 &&                                             \
      _Generic((arg), struct retls_conn *: retls_py_guard_conn,          \
               default: retls_py_guard_none)(&(arg)) != 0)               \
    SWIG_fail;
%}
%exception {
  RETLS_PY_GUARD(arg1)
  $action
}
%noexception retls_version;
%noexception retls_openssl_version;
%noexception w_install_fast_methods;
/* Freeing cannot meet a blocked call: that call holds a reference. */
%noexception retls_conn::~retls_conn;

/* DNS and connect(2) always block. */
%exception w_connect {
  Py_BEGIN_ALLOW_THREADS
  $action
  Py_END_ALLOW_THREADS
}

/* ---- the hot path: write() and bio_read() ------------------------------ */
/* Memory connections keep their outgoing ciphertext in bytes objects that
 * bio_read() hands out (retls_py_outbuf below). */
%exception w_conn_new_memory {
  $action
  if (result.status == RETLS_OK && arg4 == 0)
    retls_conn_set_outbuf(*arg1, &retls_py_outbuf);
}

/* Hand-written methods of Conn instead of SWIG's wrappers: the method
 * descriptor has already checked that self is a Conn, so the pointer is
 * read directly (no SWIG_ConvertPtr), the result is built once (no
 * None-then-append), and bio_read() with no argument takes everything
 * waiting into ONE new bytes object in one C call (the Python layer used
 * to call bio_pending() and then bio_read(n)).  install_fast_methods()
 * puts them into the type at import (retls/__init__.py); SWIG's own
 * w_write / w_bio_read stay for Lua. */
%ignore retls_conn::w_write;
%ignore retls_conn::w_bio_read;
%{
static retls_conn *retls_py_self(PyObject *self) {
  retls_conn *conn = (retls_conn *)((SwigPyObject *)self)->ptr;
  if (conn == NULL)
    PyErr_SetString(PyExc_TypeError,
                    "this Conn was not made by retls (no connection)");
  return conn;
}

static PyObject *retls_py_fail(retls_conn *conn, int status) {
  retls_py_raise(status, retls_conn_last_error(conn));
  return NULL;
}

/* The outgoing buffer of a memory connection is a bytes object
 * (retls_conn_set_outbuf): bio_read() returns that very object when it
 * takes everything, so ciphertext is copied once (OpenSSL -> bytes)
 * instead of twice (-> queue -> new bytes).  Memory connections never
 * release the GIL, so these run with it held.
 *
 * The spare: the module keeps one reference to the last bytes object
 * bio_read() handed out whole.  When the caller has dropped it (the usual
 * drain: send it, forget it) its refcount is 1 again, nobody can see it,
 * and the next buffer of about its size is that object, refilled: a
 * writer of small records then makes no malloc/free per record (~700 of
 * ~11,900 instructions per 1 KiB write+drain, glibc's slow path for
 * blocks above its 1 KiB tcache).  io.BytesIO.getvalue() shares its
 * buffer the same way.  Not reused when anyone else holds it, when it was
 * hashed (the hash is cached in the object), or on builds whose bytes
 * layout is not this one. */
#if PY_VERSION_HEX >= 0x030E0000 || defined(Py_GIL_DISABLED) || \
    defined(Py_LIMITED_API)
#define RETLS_PY_SPARE 0
#else
#define RETLS_PY_SPARE 1
#endif
/* Larger buffers are rare and their malloc is cheap next to the record
 * work; the spare never holds more than this. */
#define RETLS_PY_SPARE_MAX (64 * 1024)
static PyObject *retls_py_spare;  /* a bytes object, or NULL */
static size_t retls_py_spare_cap; /* its allocated size */

static int retls_py_spare_fits(PyObject *b, size_t cap) {
#if RETLS_PY_SPARE
  Py_hash_t hash;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
  hash = ((PyBytesObject *)b)->ob_shash;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
  /* at most a quarter unused, like retls_conn_bio_take's rule */
  return Py_REFCNT(b) == 1 && hash == -1 && cap <= retls_py_spare_cap &&
         retls_py_spare_cap - cap <= cap / 4;
#else
  (void)b;
  (void)cap;
  return 0;
#endif
}

static void *retls_py_outbuf_alloc(unsigned char **out, size_t cap,
                                   void *ud) {
  PyObject *b = retls_py_spare;
  (void)ud;
  if (cap > (size_t)PY_SSIZE_T_MAX - 64)
    return NULL;
  if (b != NULL) {
    retls_py_spare = NULL;
    if (retls_py_spare_fits(b, cap)) {
      Py_SET_SIZE(b, (Py_ssize_t)cap);
      PyBytes_AS_STRING(b)[cap] = '\0';
      *out = (unsigned char *)PyBytes_AS_STRING(b);
      return b; /* the spare's reference is now the queue's */
    }
    Py_DECREF(b);
  }
  /* Fresh: NULL contents never give a shared singleton (size >= 1). */
  b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
  if (b == NULL) {
    PyErr_Clear(); /* the write fails with retls' own error */
    return NULL;
  }
  *out = (unsigned char *)PyBytes_AS_STRING(b);
  return b;
}

static void retls_py_outbuf_free(void *handle, void *ud) {
  (void)ud;
  Py_DECREF((PyObject *)handle);
}

static const retls_outbuf retls_py_outbuf = {retls_py_outbuf_alloc,
                                             retls_py_outbuf_free, NULL};

/* All waiting ciphertext as the queue's own bytes object, or NULL with no
 * exception when the core says copy instead (retls_conn_bio_take). */
static PyObject *retls_py_bio_take(retls_conn *conn) {
  void *h = NULL;
  size_t len = 0;
  PyObject *b;
  if (retls_conn_bio_take(&h, &len, conn) != RETLS_OK || h == NULL)
    return NULL;
  b = (PyObject *)h;
  if (RETLS_PY_SPARE && (size_t)Py_SIZE(b) <= RETLS_PY_SPARE_MAX) {
    Py_XDECREF(retls_py_spare);
    retls_py_spare = b;
    retls_py_spare_cap = (size_t)Py_SIZE(b); /* before the shrink below */
    Py_INCREF(b);
  }
  /* Nobody else has seen it (refcount 1, never hashed): shrink its
   * length to the bytes written, within the allocation, keeping the
   * terminating NUL bytes objects have. */
  Py_SET_SIZE(b, (Py_ssize_t)len);
  PyBytes_AS_STRING(b)[len] = '\0';
  return b;
}

/* write(data) -> bytes taken; the retry contract is the core's. */
static PyObject *retls_py_write(PyObject *self, PyObject *data) {
  retls_conn *conn = retls_py_self(self);
  Py_buffer view;
  const void *buf;
  size_t len, n = 0;
  int status, have_view = 0;
  if (conn == NULL)
    return NULL;
  if (PyBytes_Check(data)) {
    buf = PyBytes_AS_STRING(data);
    len = (size_t)PyBytes_GET_SIZE(data);
  } else {
    if (retls_py_get_buffer(data, &view) != 0)
      return NULL;
    have_view = 1;
    buf = view.buf;
    len = (size_t)view.len;
  }
  /* Busy first, as in RETLS_PY_MAY_BLOCK: reading the fd races with
   * another thread inside a call on this connection. */
  if (retls_py_is_busy(conn) || retls_conn_fileno(conn) >= 0) {
    if (retls_py_enter(conn) != 0) { /* a socket: may block */
      if (have_view)
        PyBuffer_Release(&view);
      return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    status = retls_conn_write(&n, conn, buf, len);
    Py_END_ALLOW_THREADS
    retls_py_leave(conn);
  } else {
    status = retls_conn_write(&n, conn, buf, len);
  }
  if (have_view)
    PyBuffer_Release(&view);
  if (status != RETLS_OK)
    return retls_py_fail(conn, status);
  return PyLong_FromSize_t(n);
}

/* bio_read([n]) -> up to n bytes of waiting ciphertext (all when n is
 * missing or negative; never more than is waiting, so a huge n allocates
 * nothing big); b"" when nothing is waiting. */
static PyObject *retls_py_bio_read(PyObject *self, PyObject *const *args,
                                   Py_ssize_t nargs) {
  retls_conn *conn = retls_py_self(self);
  Py_ssize_t want = -1;
  size_t pending, got = 0;
  PyObject *bytes;
  int status;
  if (conn == NULL)
    return NULL;
  /* Busy: refused, as every Conn method is (the GIL section). */
  if (retls_py_nbusy != 0 && retls_py_guard_conn(&conn) != 0)
    return NULL;
  if (nargs > 1) {
    PyErr_Format(PyExc_TypeError,
                 "bio_read() takes at most 1 argument (%zd given)", nargs);
    return NULL;
  }
  if (nargs == 1) {
    int overflow = 0;
    long long v;
    if (PyBool_Check(args[0]) || !PyLong_Check(args[0])) {
      PyErr_Format(PyExc_TypeError, "n must be an int, not '%.100s'",
                   Py_TYPE(args[0])->tp_name);
      return NULL;
    }
    v = PyLong_AsLongLongAndOverflow(args[0], &overflow);
    if (v == -1 && PyErr_Occurred())
      return NULL;
    if (overflow)
      v = overflow < 0 ? -1 : PY_SSIZE_T_MAX;
    if (v == 0)
      return PyBytes_FromStringAndSize(NULL, 0);
    want = v < 0 ? -1 : v > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)v;
  }
  pending = retls_conn_bio_pending(conn);
  if (pending == 0) {
    /* Nothing waiting; the core still checks the connection (closed, or
     * not in memory mode) and says so. */
    char one;
    status = retls_conn_bio_read(&got, conn, &one, 1);
    if (status != RETLS_OK)
      return retls_py_fail(conn, status);
    return PyBytes_FromStringAndSize(&one, (Py_ssize_t)got);
  }
  if (want < 0 || (size_t)want >= pending) {
    if ((bytes = retls_py_bio_take(conn)) != NULL)
      return bytes;
    want = (Py_ssize_t)pending;
  }
  bytes = PyBytes_FromStringAndSize(NULL, want);
  if (bytes == NULL)
    return NULL;
  status = retls_conn_bio_read(&got, conn, PyBytes_AS_STRING(bytes),
                               (size_t)want);
  if (status != RETLS_OK) {
    Py_DECREF(bytes);
    return retls_py_fail(conn, status);
  }
  if ((Py_ssize_t)got != want && _PyBytes_Resize(&bytes, (Py_ssize_t)got) != 0)
    return NULL;
  return bytes;
}

static PyObject *w_install_fast_methods(void) {
  static PyMethodDef defs[] = {
      {"write", (PyCFunction)retls_py_write, METH_O,
       "write(data) -> int: bytes taken.  On WantRead/WantWrite the "
       "connection\nkeeps a copy of the pending bytes: wait, then flush() "
       "(or write the same\nbytes again); other bytes raise RetryMismatch "
       "and send nothing."},
      {"bio_read", (PyCFunction)(void (*)(void))retls_py_bio_read,
       METH_FASTCALL,
       "bio_read([n]) -> up to n bytes of ciphertext for the peer (all "
       "that is waiting without n)"},
      {NULL, NULL, 0, NULL}};
  SwigPyClientData *cd =
      (SwigPyClientData *)SWIGTYPE_p_retls_conn->clientdata;
  PyTypeObject *tp = cd != NULL ? cd->pytype : NULL;
  PyMethodDef *def;
  if (tp == NULL || tp->tp_dict == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "retls._core: Conn type not ready");
    return NULL;
  }
  for (def = defs; def->ml_name != NULL; def++) {
    PyObject *descr = PyDescr_NewMethod(tp, def);
    if (descr == NULL || PyDict_SetItemString(tp->tp_dict, def->ml_name,
                                              descr) != 0) {
      Py_XDECREF(descr);
      return NULL;
    }
    Py_DECREF(descr);
  }
  PyType_Modified(tp);
  Py_RETURN_NONE;
}
%}
PyObject *w_install_fast_methods(void);

/* ---- docstrings -------------------------------------------------------- */
/* retls.Connection binds conn.flush to this C method per instance (no
 * Python frame per call), so help(conn.flush) shows this; conn.write's
 * text is in install_fast_methods() above. */
%feature("docstring") retls_conn::w_flush
"flush() -> int: finish the pending write; its bytes now acknowledged
(0 when nothing was pending).";

/* ======================================================================== */
/* LUA SECTION                                                              */
/* ======================================================================== */
#elif defined(SWIGLUA)
/*
 * The C module retls_core; the idiomatic layer is bindings/lua/retls.lua,
 * which wraps Ctx and Conn objects in Lua objects with the documented API.
 * Everything here works unchanged on Lua 5.1, 5.3, 5.4 and LuaJIT.
 */

%{
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- status -> error ---------------------------------------------------- */
/* The table itself is in retls.lua (one table, status -> error), handed
 * over once at load through set_errors(), as the Python layer registers
 * its classes.  An entry is either
 *   a string: the error's kind; a fresh error object
 *             { kind = k, message = detail, status = s } with the error
 *             metatable is raised, or
 *   any other value (retls.WantRead, retls.WantWrite): raised as is, so
 *             scripts compare it with ==.
 * Before retls.lua registered the table (someone required retls_core
 * alone) errors are plain strings "RETLS_NAME: detail". */
#define RETLS_LUA_ERRORS "retls.errors"
#define RETLS_LUA_ERROR_MT "retls.error_mt"

/* Push the error value for status; the caller then raises it (SWIG_fail). */
static void retls_lua_push_error(lua_State *L, int status, const char *detail) {
  if (detail == NULL || *detail == '\0')
    detail = retls_strerror(status);
  lua_getfield(L, LUA_REGISTRYINDEX, RETLS_LUA_ERRORS);
  if (lua_istable(L, -1)) {
    lua_pushinteger(L, status);
    lua_rawget(L, -2);                    /* errors, entry */
    if (lua_type(L, -1) == LUA_TSTRING) { /* a kind: build the object */
      lua_createtable(L, 0, 3);           /* errors, kind, err */
      lua_pushvalue(L, -2);
      lua_setfield(L, -2, "kind");
      lua_pushstring(L, detail);
      lua_setfield(L, -2, "message");
      lua_pushinteger(L, status);
      lua_setfield(L, -2, "status");
      lua_getfield(L, LUA_REGISTRYINDEX, RETLS_LUA_ERROR_MT);
      lua_setmetatable(L, -2);
      lua_remove(L, -2);                  /* errors, err */
    }
    if (!lua_isnil(L, -1)) {
      lua_remove(L, -2);                  /* err */
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushfstring(L, "%s: %s", retls_status_name(status), detail);
}

/* set_errors(table, metatable): register the status -> error table and
 * the metatable of error objects.  Called once by retls.lua. */
static int retls_lua_set_errors(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, RETLS_LUA_ERRORS);
  lua_pushvalue(L, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, RETLS_LUA_ERROR_MT);
  return 0;
}

/* Argument errors found by the typemaps are raised like the core's
 * RETLS_BAD_ARG (kind "arg"), naming the function and the argument.
 * $argnum counts self, so a method's first argument is #1 as Lua's
 * "bad argument #1 to 'write'" counts it. */
static void retls_lua_arg_error(lua_State *L, const char *fn, int argnum,
                                const char *fmt, const char *got) {
  char msg[256], what[160];
  /* "Conn_bio_write" -> "bio_write": the method name the script used */
  const char *name = strchr(fn, '_');
  name = name != NULL && fn[0] >= 'A' && fn[0] <= 'Z' ? name + 1 : fn;
  snprintf(what, sizeof(what), fmt, got);
  snprintf(msg, sizeof(msg), "bad argument #%d to '%s' (%s)", argnum - 1,
           name, what);
  retls_lua_push_error(L, RETLS_BAD_ARG, msg);
}

/* raise(status [, message]): raise the error for status through the same
 * table, for the checks retls.lua makes itself (bad options, bad types). */
static int retls_lua_raise(lua_State *L) {
  int status = (int)luaL_checkinteger(L, 1);
  retls_lua_push_error(L, status, luaL_optstring(L, 2, NULL));
  return lua_error(L);
}
%}

%native(set_errors) int retls_lua_set_errors(lua_State *L);
%native(raise) int retls_lua_raise(lua_State *L);

/* OpenSSL writes to sockets with write(2): a peer that went away would
 * kill the process with SIGPIPE instead of giving RETLS_SYSCALL.  Ignore
 * it at load, as LuaSocket does. */
%init %{
  signal(SIGPIPE, SIG_IGN);
%}

%typemap(out) retls_result {
  if ($1.status != RETLS_OK) {
    retls_lua_push_error(L, $1.status, $1.detail);
    SWIG_fail;
  }
}

/* ---- outputs ------------------------------------------------------------ */
%typemap(argout) size_t *out {
  lua_pushinteger(L, (lua_Integer)*$1);
  SWIG_arg++;
}
%typemap(argout) retls_ctx **out {
  SWIG_NewPointerObj(L, *$1, $*1_descriptor, 1);
  SWIG_arg++;
}
%typemap(argout) retls_conn **out {
  SWIG_NewPointerObj(L, *$1, $*1_descriptor, 1);
  SWIG_arg++;
}
%typemap(argout) (const unsigned char **der, size_t *der_len) {
  if (*$1 != NULL)
    lua_pushlstring(L, (const char *)*$1, *$2);
  else
    lua_pushnil(L);
  SWIG_arg++;
}

/* Whole numbers are Lua integers on 5.3+ (SWIG's default pushes floats,
 * which print as "5.0"); on 5.1 / LuaJIT this is the same number. */
%typemap(out) int, long, size_t "lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++;"

/* The counters as a plain table (what conn:stats() returns). */
%typemap(out) retls_stats {
  lua_createtable(L, 0, 9);
#define RETLS_LUA_STAT(f) \
  lua_pushinteger(L, (lua_Integer)$1.f); lua_setfield(L, -2, #f);
  RETLS_LUA_STAT(writes) RETLS_LUA_STAT(bytes_written)
  RETLS_LUA_STAT(want_read) RETLS_LUA_STAT(want_write)
  RETLS_LUA_STAT(retries) RETLS_LUA_STAT(mismatches)
  RETLS_LUA_STAT(bytes_read)
  RETLS_LUA_STAT(early_bytes) RETLS_LUA_STAT(early_replayed)
#undef RETLS_LUA_STAT
  SWIG_arg++;
}

/* ---- bytes in: a Lua string, used in place ------------------------------ */
/* Only real strings: lua_tolstring would turn a number into a string in
 * the caller's stack slot, and a table or nil is a caller's mistake worth
 * naming.  The core copies what it keeps (a pending write) before
 * returning, so the string may be collected as soon as the call is over. */
%typemap(in) (const void *buf, size_t len) {
  size_t len_;
  if (lua_type(L, $input) != LUA_TSTRING) {
    retls_lua_arg_error(L, "$symname", $argnum, "string expected, got %s",
                        luaL_typename(L, $input));
    SWIG_fail;
  }
  $1 = (void *)lua_tolstring(L, $input, &len_);
  $2 = len_;
}

/* ---- bytes out: read into a scratch buffer, push as a string ------------ */
%typemap(in, numinputs=1) (void *buf, size_t cap, size_t *got)
    (size_t got = 0, void *scratch = NULL) {
  lua_Number n;
  if (lua_type(L, $input) != LUA_TNUMBER) {
    retls_lua_arg_error(L, "$symname", $argnum,
                        "number of bytes expected, got %s",
                        luaL_typename(L, $input));
    SWIG_fail;
  }
  n = lua_tonumber(L, $input);
  if (!(n >= 1 && n <= (lua_Number)0x7fffffff) || n != (lua_Number)(size_t)n) {
    retls_lua_arg_error(L, "$symname", $argnum,
                        "size must be a whole number from 1 to 2^31-1, got %s",
                        lua_tostring(L, $input));
    SWIG_fail;
  }
  scratch = malloc((size_t)n);
  if (scratch == NULL) {
    retls_lua_push_error(L, RETLS_NOMEM, "read: cannot allocate the buffer");
    SWIG_fail;
  }
  $1 = scratch;
  $2 = (size_t)n;
  $3 = &got;
}
%typemap(argout) (void *buf, size_t cap, size_t *got) {
  lua_pushlstring(L, (const char *)$1, got$argnum);
  SWIG_arg++;
}
%typemap(freearg) (void *buf, size_t cap, size_t *got) {
  free(scratch$argnum);
}

/* ---- the connection's hot methods, straight into C ----------------------- */
/*
 * A Lua connection (retls.lua) is a plain table { [1] = <SWIG Conn
 * userdata>, _ctx = ..., ... } whose metatable's __index is the method
 * table Conn.  Called through SWIG, conn:write(s) used to cost SWIG's
 * userdata __index chain (a C function walking the class tables), a Lua
 * wrapper with its self check, and SWIG's argument conversion with type
 * name comparisons: about twice the time of OpenSSL's own work for a
 * 64-byte write (issue 9).  The methods below are put into Conn itself by
 * conn_methods(Conn), so conn:write(s) finds a C function in the method
 * table and that function goes straight to the core.
 *
 * The self check is a raw read of self[1] and a look at what it holds: a
 * full userdata of the size of SWIG's swig_lua_userdata whose type is
 * SWIG's retls_conn.  No Lua value that is not a retls connection (a
 * string, a context, a table made to look like one, another library's
 * userdata) passes it, so none reaches the core; the caller gets an arg
 * error naming the mistake instead.  (Comparing metatables would cost
 * three more API calls per method call; only C code could forge a
 * userdata with our type pointer inside.)  Statuses become errors
 * through the one table retls_lua_push_error reads, exactly as in the
 * SWIG wrappers.
 */
%{
/* The retls_conn of self (argument 1), or NULL: nothing is left on the
 * stack either way. */
static retls_conn *retls_lua_self(lua_State *L) {
  swig_lua_userdata *usr = NULL;
  if (lua_type(L, 1) != LUA_TTABLE)
    return NULL;
  /* (5.3+: lua_rawgeti gives the type, one API call fewer per method) */
#if LUA_VERSION_NUM >= 503
  if (lua_rawgeti(L, 1, 1) == LUA_TUSERDATA &&
#else
  lua_rawgeti(L, 1, 1);
  if (lua_type(L, -1) == LUA_TUSERDATA &&
#endif
      lua_rawlen(L, -1) == sizeof(swig_lua_userdata))
    usr = (swig_lua_userdata *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (usr == NULL || usr->type != SWIGTYPE_p_retls_conn)
    return NULL;
  return (retls_conn *)usr->ptr;
}

/* Push the arg error for a bad self (conn.write(x) instead of
 * conn:write(x)). */
static void retls_lua_push_bad_self(lua_State *L, const char *fn) {
  char msg[200];
  snprintf(msg, sizeof(msg),
           "calling '%s' on bad self (retls connection expected, got %s; "
           "call it as conn:%s(...))",
           fn, luaL_typename(L, 1), fn);
  retls_lua_push_error(L, RETLS_BAD_ARG, msg);
}

static retls_conn *retls_lua_check_self(lua_State *L, const char *fn) {
  retls_conn *conn = retls_lua_self(L);
  if (conn == NULL) {
    retls_lua_push_bad_self(L, fn);
    lua_error(L);
  }
  return conn;
}

/* Raise the error for a failed status with the connection's detail. */
static int retls_lua_fail(lua_State *L, retls_conn *conn, int status) {
  retls_lua_push_error(L, status, retls_conn_last_error(conn));
  return lua_error(L);
}

/* Argument idx as a string, or NULL with the arg error pushed. */
static const char *retls_lua_data(lua_State *L, int idx, const char *fn,
                                  size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING) {
    retls_lua_arg_error(L, fn, idx, "string expected, got %s",
                        luaL_typename(L, idx));
    return NULL;
  }
  return lua_tolstring(L, idx, len);
}

/* Argument idx as a byte count in 1..2^31-1 (the typemap's rules and
 * messages), raised as an arg error otherwise. */
static size_t retls_lua_size(lua_State *L, int idx, const char *fn) {
  lua_Number n;
  if (lua_type(L, idx) != LUA_TNUMBER) {
    retls_lua_arg_error(L, fn, idx, "number of bytes expected, got %s",
                        luaL_typename(L, idx));
    lua_error(L);
  }
  n = lua_tonumber(L, idx);
  if (!(n >= 1 && n <= (lua_Number)0x7fffffff) || n != (lua_Number)(size_t)n) {
    retls_lua_arg_error(L, fn, idx,
                        "size must be a whole number from 1 to 2^31-1, got %s",
                        lua_tostring(L, idx));
    lua_error(L);
  }
  return (size_t)n;
}

/* conn:write(s) -> bytes taken */
static int retls_lua_write(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "write");
  size_t len, n;
  int status;
  const char *buf = retls_lua_data(L, 2, "write", &len);
  if (buf == NULL)
    return lua_error(L);
  status = retls_conn_write(&n, conn, buf, len);
  if (status != RETLS_OK)
    return retls_lua_fail(L, conn, status);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* conn:trywrite(s) -> n | nil, "wantread" | "wantwrite" | message, err.
 * Never raises, not even for a bad self or bad data. */
static int retls_lua_trywrite(lua_State *L) {
  retls_conn *conn = retls_lua_self(L);
  size_t len, n = 0;
  int status = RETLS_BAD_ARG;
  const char *buf;
  if (conn == NULL) {
    retls_lua_push_bad_self(L, "trywrite");
  } else if ((buf = retls_lua_data(L, 2, "trywrite", &len)) != NULL) {
    status = retls_conn_write(&n, conn, buf, len);
    if (status == RETLS_OK) {
      lua_pushinteger(L, (lua_Integer)n);
      return 1;
    }
    retls_lua_push_error(L, status, retls_conn_last_error(conn));
  }
  /* the error value is on top: nil, its kind or message, the value */
  lua_pushnil(L);
  lua_insert(L, -2);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, status == RETLS_WANT_READ || status == RETLS_WANT_WRITE
                            ? "kind" : "message");
  } else {
    lua_pushvalue(L, -1);
  }
  lua_insert(L, -2);
  return 3;
}

/* conn:flush() -> bytes of the pending write now taken (0: none) */
static int retls_lua_flush(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "flush");
  size_t n;
  int status = retls_conn_flush(&n, conn);
  if (status != RETLS_OK)
    return retls_lua_fail(L, conn, status);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int retls_lua_pending_write(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "pending_write");
  lua_pushinteger(L, (lua_Integer)retls_conn_pending_write(conn));
  return 1;
}

/* conn:want() -> "read", "write" or nil */
static int retls_lua_want(lua_State *L) {
  switch (retls_conn_want(retls_lua_check_self(L, "want"))) {
  case RETLS_WANT_READ: lua_pushliteral(L, "read"); break;
  case RETLS_WANT_WRITE: lua_pushliteral(L, "write"); break;
  default: lua_pushnil(L); break;
  }
  return 1;
}

static int retls_lua_handshake(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "handshake");
  int status = retls_conn_handshake(conn);
  if (status != RETLS_OK)
    return retls_lua_fail(L, conn, status);
  lua_pushboolean(L, 1);
  return 1;
}

/* conn:read([n]) -> 1..n decrypted bytes (n defaults to 16384).  One
 * SSL_read gives one record at most, 16384 bytes, so a larger n reads
 * into the same stack buffer. */
#define RETLS_LUA_RECORD 16384
static int retls_lua_read(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "read");
  char buf[RETLS_LUA_RECORD];
  size_t n = RETLS_LUA_RECORD, got;
  int status;
  if (!lua_isnoneornil(L, 2))
    n = retls_lua_size(L, 2, "read");
  if (n > sizeof(buf))
    n = sizeof(buf);
  status = retls_conn_read(&got, conn, buf, n);
  if (status != RETLS_OK)
    return retls_lua_fail(L, conn, status);
  lua_pushlstring(L, buf, got);
  return 1;
}

/* conn:bio_write(s) -> bytes taken: ciphertext received from the peer */
static int retls_lua_bio_write(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "bio_write");
  size_t len, n;
  int status;
  const char *buf = retls_lua_data(L, 2, "bio_write", &len);
  if (buf == NULL)
    return lua_error(L);
  status = retls_conn_bio_write(&n, conn, buf, len);
  if (status != RETLS_OK)
    return retls_lua_fail(L, conn, status);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* conn:bio_read([n]) -> the ciphertext waiting for the peer, all of it
 * (or n bytes at most) as one string, "" when none.  Up to 24 KiB (every
 * write of up to 16 KiB: one record and its 22 bytes) is read straight
 * into a stack buffer with no question asked first.  More goes through a
 * scratch buffer kept by this closure (upvalue 1) and reused, so a large
 * drain costs no allocation but its string: a fresh 256 KiB block per
 * call is a fresh mmap, page faults and garbage for the collector (it
 * halved the 256 KiB rate).  The scratch keeps at most
 * RETLS_LUA_SCRATCH_KEEP; a larger drain borrows a block the collector
 * frees.  Either way one string is made, with one copy. */
#define RETLS_LUA_DRAIN_STACK 24576
#define RETLS_LUA_SCRATCH_KEEP (1024 * 1024)
typedef struct {
  char *p;
  size_t cap;
  int busy; /* a drain is copying out of it (see retls_lua_scratch_get) */
} retls_lua_scratch;

static int retls_lua_scratch_gc(lua_State *L) {
  retls_lua_scratch *sc = (retls_lua_scratch *)lua_touserdata(L, 1);
  free(sc->p);
  sc->p = NULL;
  sc->cap = 0;
  return 0;
}

/* A buffer of n bytes for this call (NULL: out of memory). */
/* A buffer of n bytes for this call (NULL: out of memory); *held is the
 * scratch when it was lent, to be given back (busy = 0) once the string
 * is made.  Lua 5.1-5.3 and LuaJIT step the collector inside
 * lua_pushlstring before copying, and a finalizer run there may drain
 * another connection through this same closure: while the scratch is
 * lent, such a nested drain gets a block of its own instead of
 * overwriting (or realloc()ing away) the bytes the outer call is about to
 * copy.  (If lua_pushlstring raises, out of memory, the scratch stays
 * marked and later large drains take fresh blocks: slower, still right.) */
static char *retls_lua_scratch_get(lua_State *L, size_t n,
                                   retls_lua_scratch **held) {
  retls_lua_scratch *sc =
      (retls_lua_scratch *)lua_touserdata(L, lua_upvalueindex(1));
  *held = NULL;
  if (n > RETLS_LUA_SCRATCH_KEEP || sc->busy)
    return (char *)lua_newuserdata(L, n);
  if (sc->cap < n) {
    char *p = (char *)realloc(sc->p, n);
    if (p == NULL)
      return NULL;
    sc->p = p;
    sc->cap = n;
  }
  sc->busy = 1;
  *held = sc;
  return sc->p;
}

/* The drain through a buffer of ours: up to 24 KiB straight into a stack
 * buffer, more through the scratch buffer.  A function of its own, so the
 * Lua 5.3+ path below, which needs no buffer, runs in a small stack frame
 * (24 KiB of frame push its callees' frames out of the L1 cache). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int retls_lua_bio_read_copy(lua_State *L, retls_conn *conn,
                                   size_t want) {
  char stackbuf[RETLS_LUA_DRAIN_STACK], *buf;
  size_t got, more, pending;
  int status;
  retls_lua_scratch *held;
  /* With nothing waiting this still asks the core, so a connection that
   * is not in memory mode gets its error naming the problem. */
  status = retls_conn_bio_read(&got, conn, stackbuf,
                               want < sizeof(stackbuf) ? want : sizeof(stackbuf));
  if (status != RETLS_OK)
    return retls_lua_fail(L, conn, status);
  if (got < sizeof(stackbuf) || want == sizeof(stackbuf) ||
      (pending = retls_conn_bio_pending(conn)) == 0) {
    lua_pushlstring(L, stackbuf, got);
    return 1;
  }
  /* The stack buffer was filled and more is waiting. */
  more = want - got < pending ? want - got : pending;
  buf = retls_lua_scratch_get(L, got + more, &held);
  if (buf == NULL) {
    retls_lua_push_error(L, RETLS_NOMEM, "bio_read: cannot allocate the buffer");
    return lua_error(L);
  }
  memcpy(buf, stackbuf, got);
  status = retls_conn_bio_read(&more, conn, buf + got, more);
  if (status != RETLS_OK) {
    if (held != NULL)
      held->busy = 0;
    return retls_lua_fail(L, conn, status);
  }
  lua_pushlstring(L, buf, got + more);
  if (held != NULL)
    held->busy = 0;
  return 1;
}

static int retls_lua_bio_read(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "bio_read");
  size_t want = (size_t)-1;
  if (!lua_isnoneornil(L, 2))
    want = retls_lua_size(L, 2, "bio_read");
#if LUA_VERSION_NUM >= 503
  /* Lua 5.3's and 5.4's lua_pushlstring copy the bytes into the new
   * string before the collector may run (and with it a finalizer that
   * could write to or drain this connection), so the string is made
   * straight from the outgoing queue, with no copy into a buffer of ours
   * first: the drain's one copy.  The bytes are taken only once the
   * string exists (a memory error leaves them waiting), and not at all if
   * a finalizer took some meanwhile (bio_consume refuses).  Lua 5.1 and
   * LuaJIT step the collector first, so there they are copied out before
   * the string is made.  A bounded queue whose ring wraps goes the
   * copying way too. */
  {
    const unsigned char *p;
    size_t n;
    uint64_t mark;
    int status = retls_conn_bio_peek(&p, &n, &mark, conn);
    /* (a failed peek goes the copying way, for bio_read's own error) */
    if (status == RETLS_OK &&
        (n == 0 || n == retls_conn_bio_pending(conn))) { /* all contiguous */
      if (n > want)
        n = want;
      lua_pushlstring(L, n > 0 ? (const char *)p : "", n);
      /* (refused if a finalizer run by the collector after the copy
       * drained this connection: those bytes went there, so this string
       * is dropped and the caller gets an error instead of duplicates) */
      if ((status = retls_conn_bio_consume(conn, mark, n)) != RETLS_OK)
        return retls_lua_fail(L, conn, status);
      return 1;
    }
  }
#endif
  return retls_lua_bio_read_copy(L, conn, want);
}

static int retls_lua_bio_pending(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "bio_pending");
  lua_pushinteger(L, (lua_Integer)retls_conn_bio_pending(conn));
  return 1;
}

/* conn:getfd() -> the socket's fd, -1 in memory/pair mode or once closed
 * (with dirty(), what socket.select() asks of an object) */
static int retls_lua_getfd(lua_State *L) {
  retls_conn *conn = retls_lua_check_self(L, "getfd");
  lua_pushinteger(L, (lua_Integer)retls_conn_fileno(conn));
  return 1;
}

/* conn_methods(Conn): put the methods above into retls.lua's method
 * table.  Called once by retls.lua. */
static int retls_lua_conn_methods(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "write", retls_lua_write },
    { "trywrite", retls_lua_trywrite },
    { "flush", retls_lua_flush },
    { "pending_write", retls_lua_pending_write },
    { "want", retls_lua_want },
    { "handshake", retls_lua_handshake },
    { "read", retls_lua_read },
    { "bio_write", retls_lua_bio_write },
    { "bio_pending", retls_lua_bio_pending },
    { "getfd", retls_lua_getfd },
    { NULL, NULL },
  };
  const luaL_Reg *m;
  retls_lua_scratch *sc;
  luaL_checktype(L, 1, LUA_TTABLE);
  for (m = methods; m->name != NULL; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, 1, m->name);
  }
  /* bio_read's scratch buffer, freed with the closure */
  sc = (retls_lua_scratch *)lua_newuserdata(L, sizeof(*sc));
  sc->p = NULL;
  sc->cap = 0;
  sc->busy = 0;
  lua_newtable(L);
  lua_pushcfunction(L, retls_lua_scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, retls_lua_bio_read, 1);
  lua_setfield(L, 1, "bio_read");
  return 0;
}
%}

%native(conn_methods) int retls_lua_conn_methods(lua_State *L);

/* ======================================================================== */
/* LUASEC METHODS (issue 14): LuaSec's socket protocol on connections       */
/* ======================================================================== */
/*
 * send / receive / settimeout / dohandshake / dirty / getpeername /
 * getsockname (and LuaSec's inspection methods further down:
 * getfinished, exportkeyingmaterial, getpeerchain, getstats, ...) as
 * lua_CFunctions that retls.lua puts straight into the
 * connection's method table: conn:send(...) is one table lookup and one C
 * call.  They never raise for I/O; they return LuaSec's results
 * (nil, "wantread" | "wantwrite" | "timeout" | "closed" | message [, last]).
 *
 * Per-connection state (the timeouts and what receive() read ahead) lives
 * in a small userdata at self[2], beside the C connection at self[1] (a
 * raw integer read, like the hot methods' self check); ls_self() is the
 * one place that knows how to find both.
 */
%{
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <time.h>
#include <sys/socket.h>

/* One TLS record: what send() hands the core per call, so last_index
 * advances record by record and a pending copy is at most one record. */
#define RETLS_LS_CHUNK 16384
#define RETLS_LS_MT "retls.luasec_state"
/* ls_wait() failed: errno says why (a pseudo-status, never from the core) */
#define RETLS_LS_POLL_FAILED 100

typedef struct {
  double block;  /* settimeout(t [, "b"]): longest single wait; < 0 none */
  double total;  /* settimeout(t, "t"): longest whole call; < 0 none */
  int poll_errno;
  char *rbuf;    /* decrypted bytes receive() read past a line's end */
  size_t rpos, rlen, rcap;
  /* getstats() / setstats(): LuaSocket's counters are the core's
   * (bytes_read less what receive() holds read ahead, bytes_written)
   * plus these offsets, and the age counts from born. */
  double born;
  double recv_adj, sent_adj;
} retls_ls;

static double ls_now(void);

static int ls_gc(lua_State *L) {
  retls_ls *st = (retls_ls *)lua_touserdata(L, 1);
  if (st != NULL) {
    free(st->rbuf);
    st->rbuf = NULL;
    st->rpos = st->rlen = st->rcap = 0;
  }
  return 0;
}

/* The C connection of self (argument 1) and its LuaSec state, made on
 * first use.  Blocking by default, as a LuaSec connection is. */
static retls_ls *ls_state(lua_State *L);
static retls_conn *ls_self(lua_State *L, retls_ls **out) {
  retls_conn *p = retls_lua_self(L); /* the hot methods' self check */
  if (p == NULL)
    luaL_error(L, "bad self (retls connection expected, got %s; call it "
                  "as conn:method(...))", luaL_typename(L, 1));
  if (out != NULL)
    *out = ls_state(L);
  return (retls_conn *)p;
}

/* The LuaSec state of self (argument 1, already checked). */
static retls_ls *ls_state(lua_State *L) {
  retls_ls *st;
  lua_rawgeti(L, 1, 2);
  /* (only a userdata of our size: a value a script stored there is
   * replaced, never read as our state) */
  st = lua_type(L, -1) == LUA_TUSERDATA &&
               lua_rawlen(L, -1) == sizeof(retls_ls)
           ? (retls_ls *)lua_touserdata(L, -1)
           : NULL;
  lua_pop(L, 1);
  if (st == NULL) {
    st = (retls_ls *)lua_newuserdata(L, sizeof(*st));
    memset(st, 0, sizeof(*st));
    st->block = st->total = -1;
    st->born = ls_now();
    if (luaL_newmetatable(L, RETLS_LS_MT)) {
      lua_pushcfunction(L, ls_gc);
      lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_rawseti(L, 1, 2);
  }
  return st;
}

static double ls_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until the socket is ready for what status asks (WANT_READ /
 * WANT_WRITE), as settimeout() allows.  0: ready, 1: no time left (or a
 * memory/pair connection, which has nothing to wait on), -1: poll failed
 * (st->poll_errno). */
static int ls_wait(retls_conn *conn, retls_ls *st, int status, double start) {
  struct pollfd pfd;
  int fd = retls_conn_fileno(conn), ms = -1, rc;
  if (fd < 0)
    return 1;
  if (st->block >= 0 || st->total >= 0) {
    double left = st->block;
    if (st->total >= 0) {
      double t = st->total - (ls_now() - start);
      if (left < 0 || t < left)
        left = t;
    }
    if (left <= 0)
      return 1;
    ms = left * 1000 >= INT_MAX ? INT_MAX : (int)(left * 1000 + 0.999);
  }
  pfd.fd = fd;
  pfd.events = status == RETLS_WANT_READ ? POLLIN : POLLOUT;
  pfd.revents = 0;
  do
    rc = poll(&pfd, 1, ms);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    st->poll_errno = errno;
    return -1;
  }
  return rc == 0 ? 1 : 0;
}

/* Run op until it is done or settimeout() says stop waiting. */
#define LS_RETRY(status, op, conn, st, start)                               \
  for (;;) {                                                                \
    int rc_;                                                                \
    (status) = (op);                                                        \
    if ((status) != RETLS_WANT_READ && (status) != RETLS_WANT_WRITE)        \
      break;                                                                \
    rc_ = ls_wait((conn), (st), (status), (start));                         \
    if (rc_ > 0)                                                            \
      break;                                                                \
    if (rc_ < 0) {                                                          \
      (status) = RETLS_LS_POLL_FAILED;                                      \
      break;                                                                \
    }                                                                       \
  }

/* LuaSec's error strings. */
static void ls_push_error(lua_State *L, retls_conn *conn, retls_ls *st,
                          int status) {
  const char *detail;
  switch (status) {
  case RETLS_WANT_READ: lua_pushliteral(L, "wantread"); return;
  case RETLS_WANT_WRITE: lua_pushliteral(L, "wantwrite"); return;
  case RETLS_TIMEOUT: lua_pushliteral(L, "timeout"); return;
  /* The peer's close_notify.  A bare EOF (RETLS_EOF) is not "closed":
   * it may be a truncation, and LuaSec over OpenSSL 3 reports it with
   * OpenSSL's message too ("unexpected eof while reading"). */
  case RETLS_ZERO_RETURN: case RETLS_CLOSED:
    lua_pushliteral(L, "closed");
    return;
  case RETLS_LS_POLL_FAILED:
    lua_pushstring(L, strerror(st->poll_errno));
    return;
  default:
    detail = retls_conn_last_error(conn);
    lua_pushstring(L, *detail ? detail : retls_strerror(status));
  }
}

/* conn:send(data [, i [, j]]) -> last_index | nil, err, last_index
 * A want stops with the record in flight kept by the core; sending the
 * same data again from last_index + 1 hands the core the same bytes,
 * which resumes it.  Other or fewer bytes there get the core's
 * retry-mismatch error and nothing is sent. */
static int retls_lua_send(lua_State *L) {
  /* The settimeout() state is fetched at the first want only: a send
   * that goes through at once (nearly all of them) reads no more than
   * self[1].  So a "t" (whole call) limit counts from that first want,
   * which comes after nothing but non-blocking writes. */
  retls_ls *st = NULL;
  retls_conn *conn = ls_self(L, NULL);
  size_t len, sent = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  double i = luaL_optnumber(L, 3, 1), j = luaL_optnumber(L, 4, -1);
  double start = 0;
  int status = RETLS_OK;
  /* LuaSocket's index rules; clamped before any conversion (NaN, 1e300) */
  if (i != i) i = 1;
  if (j != j) j = -1;
  if (i < 0) i = (double)len + i + 1;
  if (j < 0) j = (double)len + j + 1;
  if (i < 1) i = 1;
  if (i > (double)len + 1) i = (double)len + 1;
  if (j > (double)len) j = (double)len;
  if (j < 0) j = 0;
  i = (double)(long long)i;
  j = (double)(long long)j;
  if (i <= j) {
    const char *p = data + (size_t)i - 1;
    size_t n = (size_t)(j - i) + 1;
    while (sent < n) {
      size_t chunk = n - sent, pend = retls_conn_pending_write(conn), w = 0;
      if (pend > 0) {
        if (chunk > pend)
          chunk = pend; /* the pending record, or fewer bytes: mismatch */
      } else if (chunk > RETLS_LS_CHUNK) {
        chunk = RETLS_LS_CHUNK;
      }
      for (;;) { /* LS_RETRY, with the state fetched at the first want */
        int rc;
        status = retls_conn_write(&w, conn, p + sent, chunk);
        if (status != RETLS_WANT_READ && status != RETLS_WANT_WRITE)
          break;
        if (st == NULL) {
          st = ls_state(L);
          start = st->total >= 0 ? ls_now() : 0;
        }
        rc = ls_wait(conn, st, status, start);
        if (rc > 0)
          break;
        if (rc < 0) {
          status = RETLS_LS_POLL_FAILED;
          break;
        }
      }
      if (status != RETLS_OK)
        break;
      sent += w;
    }
  }
  if (status == RETLS_OK) {
    lua_pushinteger(L, (lua_Integer)(i - 1 + (double)sent));
    lua_pushnil(L);
    lua_pushnil(L);
  } else {
    lua_pushnil(L);
    ls_push_error(L, conn, st, status);
    lua_pushinteger(L, (lua_Integer)(i - 1 + (double)sent));
  }
  return 3;
}

/* Read one more chunk behind what st holds. */
static int ls_fill(retls_conn *conn, retls_ls *st, double start) {
  size_t got = 0;
  int status;
  if (st->rpos == st->rlen) {
    st->rpos = st->rlen = 0;
  } else if (st->rpos > 0) {
    memmove(st->rbuf, st->rbuf + st->rpos, st->rlen - st->rpos);
    st->rlen -= st->rpos;
    st->rpos = 0;
  }
  if (st->rcap - st->rlen < RETLS_LS_CHUNK) {
    size_t cap = st->rlen + RETLS_LS_CHUNK;
    char *b = (char *)realloc(st->rbuf, cap);
    if (b == NULL)
      return RETLS_NOMEM;
    st->rbuf = b;
    st->rcap = cap;
  }
  LS_RETRY(status, retls_conn_read(&got, conn, st->rbuf + st->rlen,
                                   RETLS_LS_CHUNK), conn, st, start);
  if (status == RETLS_OK)
    st->rlen += got;
  return status;
}

/* Add s[0..n) to b without its CRs (LuaSocket's "*l" drops them all). */
static void ls_add_nocr(luaL_Buffer *b, const char *s, size_t n) {
  while (n > 0) {
    const char *cr = (const char *)memchr(s, '\r', n);
    size_t k = cr ? (size_t)(cr - s) : n;
    luaL_addlstring(b, s, k);
    if (cr == NULL)
      break;
    s += k + 1;
    n -= k + 1;
  }
}

/* conn:receive([pattern [, prefix]]) -> data | nil, err, partial
 * LuaSocket's patterns: "*l" / "l" (a line, LF or CRLF, without it),
 * "*a" / "a" (until the peer closes), a number of bytes.  prefix is put
 * in front of what is read (copas passes the last partial back). */
static int retls_lua_receive(lua_State *L) {
  retls_ls *st;
  retls_conn *conn = ls_self(L, &st);
  size_t plen, total = 0;
  const char *prefix = luaL_optlstring(L, 3, "", &plen);
  double start = st->total >= 0 ? ls_now() : 0;
  int status = RETLS_OK, kind;
  size_t wanted = 0;
  luaL_Buffer b;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    double n = lua_tonumber(L, 2);
    luaL_argcheck(L, n >= 0, 2, "invalid receive pattern");
    kind = 'n';
    /* (no more can ever arrive in one string; clamped before converting) */
    wanted = n >= (double)(SIZE_MAX / 2) ? SIZE_MAX / 2 : (size_t)n;
  } else {
    const char *p = luaL_optstring(L, 2, "*l");
    if (p[0] == '*')
      p++;
    kind = p[0];
    luaL_argcheck(L, kind == 'l' || kind == 'a', 2, "invalid receive pattern");
  }
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, prefix, plen);
  if (kind == 'l') {
    for (;;) {
      const char *s = st->rbuf + st->rpos;
      size_t avail = st->rlen - st->rpos;
      const char *nl = avail ? (const char *)memchr(s, '\n', avail) : NULL;
      if (nl != NULL) {
        ls_add_nocr(&b, s, (size_t)(nl - s));
        st->rpos += (size_t)(nl - s) + 1;
        break;
      }
      ls_add_nocr(&b, s, avail);
      st->rpos = st->rlen;
      if ((status = ls_fill(conn, st, start)) != RETLS_OK)
        break;
    }
  } else if (kind == 'a') {
    for (;;) {
      size_t avail = st->rlen - st->rpos;
      luaL_addlstring(&b, st->rbuf + st->rpos, avail);
      total += avail;
      st->rpos = st->rlen;
      if ((status = ls_fill(conn, st, start)) != RETLS_OK)
        break;
    }
    if (status == RETLS_ZERO_RETURN)
      status = total > 0 ? RETLS_OK : RETLS_CLOSED;
  } else if (plen == 0 || wanted > plen) {
    size_t need = wanted - plen;
    for (;;) {
      size_t avail = st->rlen - st->rpos, take = avail < need ? avail : need;
      luaL_addlstring(&b, st->rbuf + st->rpos, take);
      st->rpos += take;
      need -= take;
      if (need == 0)
        break;
      if ((status = ls_fill(conn, st, start)) != RETLS_OK)
        break;
    }
  }
  luaL_pushresult(&b);
  if (status == RETLS_OK) {
    lua_pushnil(L);
    lua_pushnil(L);
  } else {
    ls_push_error(L, conn, st, status); /* data, err */
    lua_pushvalue(L, -2);               /* data, err, partial */
    lua_pushnil(L);
    lua_replace(L, -4);                 /* nil, err, partial */
  }
  return 3;
}

/* conn:settimeout(t [, mode]) -> 1.  nil or negative: no limit (block,
 * waiting in poll), 0: never wait, t > 0: wait up to t seconds for each
 * wait ("b", the default) or for the whole call ("t").  The socket is made
 * non-blocking, as LuaSocket keeps every socket, so a retls.connect
 * connection behaves the same. */
static int retls_lua_settimeout(lua_State *L) {
  retls_ls *st;
  retls_conn *conn = ls_self(L, &st);
  double t = luaL_optnumber(L, 2, -1);
  const char *mode = luaL_optstring(L, 3, "b");
  int fd = retls_conn_fileno(conn), fl;
  if (t < 0 || t != t)
    t = -1;
  switch (mode[0]) {
  case 'b': st->block = t; break;
  case 't': case 'r': st->total = t; break;
  default: return luaL_argerror(L, 3, "invalid timeout mode");
  }
  if (fd >= 0 && (fl = fcntl(fd, F_GETFL)) >= 0 && !(fl & O_NONBLOCK))
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  lua_pushinteger(L, 1);
  return 1;
}

/* conn:dohandshake() -> true | nil, err */
static int retls_lua_dohandshake(lua_State *L) {
  retls_ls *st;
  retls_conn *conn = ls_self(L, &st);
  double start = st->total >= 0 ? ls_now() : 0;
  int status;
  LS_RETRY(status, retls_conn_handshake(conn), conn, st, start);
  if (status == RETLS_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  ls_push_error(L, conn, st, status);
  return 2;
}

/* conn:dirty() -> true when a receive() can return without the socket
 * being readable (bytes read ahead, or decrypted ones OpenSSL holds):
 * socket.select() asks this before waiting. */
static int retls_lua_dirty(lua_State *L) {
  retls_ls *st;
  retls_conn *conn = ls_self(L, &st);
  lua_pushboolean(L, st->rpos < st->rlen || retls_conn_pending_read(conn) > 0);
  return 1;
}

/* close_notify(conn) -> true once it is sent.  LuaSec's close() sends
 * it, blocking until it is out; retls.luasec connections do the same in
 * close() (retls.lua), waiting at most the settimeout() value when it is
 * > 0, else 10 s, so a peer that never reads cannot hang close().  With a
 * write pending nothing is sent (close() then raises write_pending). */
static int retls_lua_close_notify(lua_State *L) {
  retls_ls *st;
  retls_conn *conn = ls_self(L, &st);
  retls_ls bounded;
  int status = RETLS_BAD_ARG;
  memset(&bounded, 0, sizeof(bounded));
  bounded.block = -1;
  bounded.total = st->block > 0 ? st->block : 10.0;
  if (retls_conn_pending_write(conn) == 0 && retls_conn_fileno(conn) >= 0) {
    double start = ls_now();
    LS_RETRY(status, retls_conn_shutdown(conn), conn, &bounded, start);
  }
  lua_pushboolean(L, status == RETLS_OK);
  return 1;
}

/* getpeername / getsockname -> address, port, family | nil, err */
static int ls_name(lua_State *L, int peer) {
  retls_conn *conn = ls_self(L, NULL);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char host[NI_MAXHOST], port[NI_MAXSERV];
  int fd = retls_conn_fileno(conn), rc;
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
            : getsockname(fd, (struct sockaddr *)&ss, &sl);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  rc = getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
                   sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, gai_strerror(rc));
    return 2;
  }
  lua_pushstring(L, host);
  lua_pushinteger(L, (lua_Integer)strtol(port, NULL, 10));
  lua_pushstring(L, ss.ss_family == AF_INET6 ? "inet6" : "inet");
  return 3;
}
static int retls_lua_getpeername(lua_State *L) { return ls_name(L, 1); }
static int retls_lua_getsockname(lua_State *L) { return ls_name(L, 0); }

/* ---- LuaSec's inspection methods ---------------------------------------- */
/* LuaSec answers these only in its CONNECTED state (handshake done, not
 * closed) and returns nil, "closed" (getpeerverification: false,
 * "closed") otherwise; so do these.  None of them touches the socket. */
static int ls_closed(lua_State *L, int boolean) {
  if (boolean)
    lua_pushboolean(L, 0);
  else
    lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/* init(conn): make the LuaSec state now, so getstats()' age counts from
 * retls.luasec.wrap, as LuaSec's counts from its wrap. */
static int retls_lua_luasec_init(lua_State *L) {
  ls_self(L, NULL);
  ls_state(L);
  return 0;
}

/* getfinished() / getpeerfinished() -> the Finished message this end sent
 * / received (binary) */
static int ls_finished(lua_State *L, int peer) {
  retls_conn *conn = ls_self(L, NULL);
  unsigned char buf[RETLS_FINISHED_MAX];
  size_t n = 0;
  if (!retls_conn_is_established(conn))
    return ls_closed(L, 0);
  if (retls_conn_finished(&n, conn, buf, sizeof(buf), peer) != RETLS_OK ||
      n == 0)
    return 0; /* LuaSec returns nothing when there is none */
  lua_pushlstring(L, (const char *)buf, n);
  return 1;
}
static int retls_lua_getfinished(lua_State *L) { return ls_finished(L, 0); }
static int retls_lua_getpeerfinished(lua_State *L) { return ls_finished(L, 1); }

/* exportkeyingmaterial(label, length [, context]) -> bytes | nil, err */
static int retls_lua_exportkeyingmaterial(lua_State *L) {
  retls_conn *conn = ls_self(L, NULL);
  size_t llen = 0, clen = 0;
  const char *label = luaL_checklstring(L, 2, &llen);
  lua_Integer olen = luaL_checkinteger(L, 3);
  const char *context =
      lua_isnoneornil(L, 4) ? NULL : luaL_checklstring(L, 4, &clen);
  void *out;
  int status;
  if (!retls_conn_is_established(conn))
    return ls_closed(L, 0);
  luaL_argcheck(L, olen >= 1 && olen <= (lua_Integer)1 << 30, 3,
                "length must be 1 to 2^30 bytes");
  out = lua_newuserdata(L, (size_t)olen); /* freed by the GC */
  status = retls_conn_export_keying_material(out, (size_t)olen, conn, label,
                                             llen, context, clen);
  if (status != RETLS_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "error exporting keying material: %s",
                    retls_conn_last_error(conn));
    return 2;
  }
  lua_pushlstring(L, (const char *)out, (size_t)olen);
  return 1;
}

/* getpeerverification() -> true | false, reason.  LuaSec gives a table of
 * reasons per chain depth only with verifyext "lsec_continue", which
 * retls.luasec refuses; without it, OpenSSL's verify text, as here. */
static int retls_lua_getpeerverification(lua_State *L) {
  retls_conn *conn = ls_self(L, NULL);
  if (!retls_conn_is_established(conn))
    return ls_closed(L, 1);
  if (retls_conn_verify_result(conn) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, retls_conn_verify_text(conn));
  return 2;
}

/* getpeerchain() / getlocalchain() -> { der, ... }: the end's own
 * certificate first, then the chain it sent */
static int ls_chain(lua_State *L, int local) {
  retls_conn *conn = ls_self(L, NULL);
  const unsigned char *der;
  size_t len, i;
  if (!retls_conn_is_established(conn))
    return ls_closed(L, 0);
  lua_newtable(L);
  for (i = 0;; i++) {
    if (retls_conn_chain_certificate(&der, &len, conn, local, i) != RETLS_OK ||
        der == NULL)
      break;
    lua_pushlstring(L, (const char *)der, len);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}
static int retls_lua_getpeerchain(lua_State *L) { return ls_chain(L, 0); }
static int retls_lua_getlocalchain(lua_State *L) { return ls_chain(L, 1); }

/* getpeercertificate([n]) / getlocalcertificate([n]) -> the n-th (1:
 * the end's own) certificate of that chain in DER, or nil */
static int ls_certificate(lua_State *L, int local) {
  retls_conn *conn = ls_self(L, NULL);
  lua_Integer n = luaL_optinteger(L, 2, 1);
  const unsigned char *der = NULL;
  size_t len = 0;
  if (!retls_conn_is_established(conn))
    return ls_closed(L, 0);
  if (n < 1) {
    lua_pushnil(L);
    lua_pushliteral(L, "invalid certificate index");
    return 2;
  }
  if (retls_conn_chain_certificate(&der, &len, conn, local, (size_t)(n - 1)) ==
          RETLS_OK &&
      der != NULL)
    lua_pushlstring(L, (const char *)der, len);
  else
    lua_pushnil(L);
  return 1;
}
static int retls_lua_getpeercertificate(lua_State *L) {
  return ls_certificate(L, 0);
}
static int retls_lua_getlocalcertificate(lua_State *L) {
  return ls_certificate(L, 1);
}

/* getsniname() -> the SNI name (servers: what the client asked for), or
 * nil */
static int retls_lua_getsniname(lua_State *L) {
  const char *name = retls_conn_server_name(ls_self(L, NULL));
  if (name != NULL)
    lua_pushstring(L, name);
  else
    lua_pushnil(L);
  return 1;
}

/* cipher_info(conn) -> OpenSSL's description line, secret bits, algorithm
 * bits; nothing before the handshake (what retls.lua's info() parses, as
 * LuaSec's ssl.lua parses its core.info()) */
static int retls_lua_cipher_info(lua_State *L) {
  retls_conn *conn = ls_self(L, NULL);
  char desc[256];
  int bits = 0, alg = 0;
  if (!retls_conn_is_established(conn) ||
      retls_conn_cipher_info(&bits, &alg, conn, desc, sizeof(desc)) != RETLS_OK)
    return 0;
  lua_pushstring(L, desc);
  lua_pushinteger(L, bits);
  lua_pushinteger(L, alg);
  return 3;
}

/* getstats() -> received, sent, age: LuaSocket's counters.  received
 * counts the bytes handed to the caller (by receive(), or read()), not
 * those receive() holds read ahead; sent the bytes send() (or write())
 * got acknowledged; age the seconds since the connection was wrapped by
 * retls.luasec.wrap (other connections: since their first LuaSec
 * method). */
static int retls_lua_getstats(lua_State *L) {
  retls_ls *st;
  retls_conn *conn = ls_self(L, &st);
  retls_stats stats;
  memset(&stats, 0, sizeof(stats));
  retls_conn_stats(&stats, conn);
  lua_pushinteger(L, (lua_Integer)((double)stats.bytes_read -
                                   (double)(st->rlen - st->rpos) +
                                   st->recv_adj));
  lua_pushinteger(L, (lua_Integer)((double)stats.bytes_written + st->sent_adj));
  lua_pushnumber(L, ls_now() - st->born);
  return 3;
}

/* setstats([received [, sent [, age]]]) -> 1: LuaSocket's, which copas
 * and LuaSocket's own code use to carry counters across a re-wrap */
static int retls_lua_setstats(lua_State *L) {
  retls_ls *st;
  retls_conn *conn = ls_self(L, &st);
  retls_stats stats;
  memset(&stats, 0, sizeof(stats));
  retls_conn_stats(&stats, conn);
  if (lua_isnumber(L, 2))
    st->recv_adj = lua_tonumber(L, 2) - ((double)stats.bytes_read -
                                         (double)(st->rlen - st->rpos));
  if (lua_isnumber(L, 3))
    st->sent_adj = lua_tonumber(L, 3) - (double)stats.bytes_written;
  if (lua_isnumber(L, 4))
    st->born = ls_now() - lua_tonumber(L, 4);
  lua_pushinteger(L, 1);
  return 1;
}
%}
%native(luasec_send) int retls_lua_send(lua_State *L);
%native(luasec_receive) int retls_lua_receive(lua_State *L);
%native(luasec_settimeout) int retls_lua_settimeout(lua_State *L);
%native(luasec_dohandshake) int retls_lua_dohandshake(lua_State *L);
%native(luasec_dirty) int retls_lua_dirty(lua_State *L);
%native(luasec_getpeername) int retls_lua_getpeername(lua_State *L);
%native(luasec_getsockname) int retls_lua_getsockname(lua_State *L);
%native(luasec_close_notify) int retls_lua_close_notify(lua_State *L);
%native(luasec_init) int retls_lua_luasec_init(lua_State *L);
%native(luasec_getfinished) int retls_lua_getfinished(lua_State *L);
%native(luasec_getpeerfinished) int retls_lua_getpeerfinished(lua_State *L);
%native(luasec_exportkeyingmaterial) int retls_lua_exportkeyingmaterial(lua_State *L);
%native(luasec_getpeerverification) int retls_lua_getpeerverification(lua_State *L);
%native(luasec_getpeerchain) int retls_lua_getpeerchain(lua_State *L);
%native(luasec_getlocalchain) int retls_lua_getlocalchain(lua_State *L);
%native(luasec_getpeercertificate) int retls_lua_getpeercertificate(lua_State *L);
%native(luasec_getlocalcertificate) int retls_lua_getlocalcertificate(lua_State *L);
%native(luasec_getsniname) int retls_lua_getsniname(lua_State *L);
%native(luasec_cipher_info) int retls_lua_cipher_info(lua_State *L);
%native(luasec_getstats) int retls_lua_getstats(lua_State *L);
%native(luasec_setstats) int retls_lua_setstats(lua_State *L);
/* ==== end of LUASEC METHODS ============================================== */

#else
#error "retls.i supports SWIG's -python and -lua targets only"
#endif

/* ======================================================================== */
/* SHARED PART, CONTINUED: THE WRAPPED API                                  */
/* ======================================================================== */
/* (After the language sections: their typemaps apply from here on.)      */

%include <stdint.i>

%apply retls_conn **out { retls_conn **out_client, retls_conn **out_server };
%apply (const void *buf, size_t len) { (const void *ctx_buf, size_t ctx_len) };
/* Sessions are pushed like connections: a new object owned by the script
 * (copied here, before Conn, whose %extend methods return sessions). */
%typemap(argout) retls_session **out = retls_conn **out;

/* Statuses and flags, for the language layers' tables. */
%constant int OK = RETLS_OK;
%constant int WANT_READ = RETLS_WANT_READ;
%constant int WANT_WRITE = RETLS_WANT_WRITE;
%constant int ZERO_RETURN = RETLS_ZERO_RETURN;
%constant int EOF = RETLS_EOF;
%constant int SYSCALL = RETLS_SYSCALL;
%constant int SSL = RETLS_SSL;
%constant int VERIFY = RETLS_VERIFY;
%constant int RETRY_MISMATCH = RETLS_RETRY_MISMATCH;
%constant int CLOSED = RETLS_CLOSED;
%constant int BAD_ARG = RETLS_BAD_ARG;
%constant int NOMEM = RETLS_NOMEM;
%constant int WRITE_PENDING = RETLS_WRITE_PENDING;
%constant int TIMEOUT = RETLS_TIMEOUT;
%constant int CLIENT = RETLS_CLIENT;
%constant int SERVER = RETLS_SERVER;
%constant int FD_OWN = RETLS_FD_OWN;
%constant int CLOSE_DISCARD = RETLS_CLOSE_DISCARD;

%rename(version) retls_version;
%rename(openssl_version) retls_openssl_version;
%rename(status_name) retls_status_name;
%rename(strerror) retls_strerror;
const char *retls_version(void);
const char *retls_openssl_version(void);
const char *retls_status_name(int status);
const char *retls_strerror(int status);

/* ---- counters: a plain struct, read-only from scripts ------------------ */
%rename(Stats) retls_stats;
%nodefaultctor retls_stats;
%immutable;
typedef struct {
  uint64_t writes;
  uint64_t bytes_written;
  uint64_t want_read;
  uint64_t want_write;
  uint64_t retries;
  uint64_t mismatches;
  uint64_t bytes_read;
  uint64_t early_bytes;
  uint64_t early_replayed;
} retls_stats;
%mutable;

/* ---- contexts ----------------------------------------------------------- */
/* Opaque to scripts: made only by ctx_new(), freed by the destructor when
 * the script's object is collected.  Connections hold their own reference
 * in C, so a context outlives them whatever order the GC picks. */
%rename(Ctx) retls_ctx;
%nodefaultctor retls_ctx;
typedef struct retls_ctx {} retls_ctx;

%{
static retls_result w_ctx_new(retls_ctx **out, int role) {
  if (role != RETLS_CLIENT && role != RETLS_SERVER)
    return w_result(RETLS_BAD_ARG, "role must be CLIENT or SERVER");
  return w_result(retls_ctx_new(out, (retls_role)role), "");
}
%}
retls_result w_ctx_new(retls_ctx **out, int role);

%extend retls_ctx {
  ~retls_ctx() { retls_ctx_free($self); }
  int w_role() { return (int)retls_ctx_role($self); }
  const char *w_last_error() { return retls_ctx_last_error($self); }
  retls_result w_set_verify(int on) {
    return w_ctx_rc($self, retls_ctx_set_verify($self, on));
  }
  retls_result w_load_verify(const char *cafile, const char *capath) {
    return w_ctx_rc($self, retls_ctx_load_verify($self, cafile, capath));
  }
  retls_result w_use_certificate(const char *certfile, const char *keyfile) {
    return w_ctx_rc($self, retls_ctx_use_certificate($self, certfile, keyfile));
  }
  retls_result w_use_selfsigned(const char *common_name) {
    return w_ctx_rc($self, retls_ctx_use_selfsigned($self, common_name));
  }
  retls_result w_set_versions(const char *min_version, const char *max_version) {
    return w_ctx_rc($self, retls_ctx_set_versions($self, min_version, max_version));
  }
  retls_result w_set_ciphers(const char *list) {
    return w_ctx_rc($self, retls_ctx_set_ciphers($self, list));
  }
  retls_result w_set_ciphersuites(const char *list) {
    return w_ctx_rc($self, retls_ctx_set_ciphersuites($self, list));
  }
  retls_result w_set_alpn(const char *protocols) {
    return w_ctx_rc($self, retls_ctx_set_alpn($self, protocols));
  }
  retls_result w_set_keylog(const char *path) {
    return w_ctx_rc($self, retls_ctx_set_keylog($self, path));
  }
  retls_result w_set_auto_retry(int on) {
    return w_ctx_rc($self, retls_ctx_set_auto_retry($self, on));
  }
  retls_result w_set_partial_write(int on) {
    return w_ctx_rc($self, retls_ctx_set_partial_write($self, on));
  }
  retls_result w_set_max_send_fragment(size_t size) {
    return w_ctx_rc($self, retls_ctx_set_max_send_fragment($self, size));
  }
  retls_result w_set_renegotiation(int on) {
    return w_ctx_rc($self, retls_ctx_set_renegotiation($self, on));
  }
}

/* ---- connections ---------------------------------------------------------- */
%rename(Conn) retls_conn;
%nodefaultctor retls_conn;
typedef struct retls_conn {} retls_conn;

/* Factories.  A connection that cannot be made has no detail text of its
 * own: the context's last error explains it. */
%{
static retls_result w_conn_new_fd(retls_conn **out, retls_ctx *ctx, int fd,
                                  int flags, const char *server_name) {
  return w_ctx_rc(ctx, retls_conn_new_fd(out, ctx, fd, flags, server_name));
}
static retls_result w_conn_new_memory(retls_conn **out, retls_ctx *ctx,
                                      const char *server_name,
                                      size_t capacity) {
  return w_ctx_rc(ctx, retls_conn_new_memory(out, ctx, server_name, capacity));
}
static retls_result w_connect(retls_conn **out, retls_ctx *ctx,
                              const char *host, int port, int timeout_ms,
                              const char *server_name) {
  return w_ctx_rc(ctx, retls_connect(out, ctx, host, port, timeout_ms,
                                     server_name));
}
static retls_result w_pair_new(retls_conn **out_client,
                               retls_conn **out_server,
                               retls_ctx *client_ctx, retls_ctx *server_ctx,
                               size_t capacity) {
  int status = retls_pair_new(out_client, out_server, client_ctx, server_ctx,
                              capacity);
  const char *detail = "";
  if (client_ctx != NULL && *retls_ctx_last_error(client_ctx))
    detail = retls_ctx_last_error(client_ctx);
  else if (server_ctx != NULL)
    detail = retls_ctx_last_error(server_ctx);
  return w_result(status, detail);
}
%}
retls_result w_conn_new_fd(retls_conn **out, retls_ctx *ctx, int fd,
                           int flags, const char *server_name);
retls_result w_conn_new_memory(retls_conn **out, retls_ctx *ctx,
                               const char *server_name, size_t capacity);
retls_result w_connect(retls_conn **out, retls_ctx *ctx, const char *host,
                       int port, int timeout_ms, const char *server_name);
retls_result w_pair_new(retls_conn **out_client, retls_conn **out_server,
                        retls_ctx *client_ctx, retls_ctx *server_ctx,
                        size_t capacity);

%extend retls_conn {
  /* Frees everything, a pending write included: the script dropped its
   * last reference, so nobody can flush it any more. */
  ~retls_conn() { retls_conn_free($self); }

  retls_result w_handshake() {
    return w_conn_rc($self, retls_conn_handshake($self));
  }
  retls_result w_write(const void *buf, size_t len, size_t *out) {
    return w_conn_rc($self, retls_conn_write(out, $self, buf, len));
  }
  retls_result w_flush(size_t *out) {
    return w_conn_rc($self, retls_conn_flush(out, $self));
  }
  size_t w_pending_write() { return retls_conn_pending_write($self); }
  int w_want() { return retls_conn_want($self); }
  retls_result w_read(void *buf, size_t cap, size_t *got) {
    return w_conn_rc($self, retls_conn_read(got, $self, buf, cap));
  }
  size_t w_pending_read() { return retls_conn_pending_read($self); }
  retls_result w_shutdown() {
    return w_conn_rc($self, retls_conn_shutdown($self));
  }
  retls_result w_close(int flags) {
    return w_conn_rc($self, retls_conn_close($self, flags));
  }
  retls_result w_renegotiate() {
    return w_conn_rc($self, retls_conn_renegotiate($self));
  }
  retls_result w_key_update(int request_peer) {
    return w_conn_rc($self, retls_conn_key_update($self, request_peer));
  }
  retls_result w_set_server_name(const char *server_name) {
    return w_conn_rc($self, retls_conn_set_server_name($self, server_name));
  }

  /* memory mode */
  retls_result w_bio_write(const void *buf, size_t len, size_t *out) {
    return w_conn_rc($self, retls_conn_bio_write(out, $self, buf, len));
  }
  retls_result w_bio_read(void *buf, size_t cap, size_t *got) {
    return w_conn_rc($self, retls_conn_bio_read(got, $self, buf, cap));
  }
  size_t w_bio_pending() { return retls_conn_bio_pending($self); }
  retls_result w_bio_write_eof() {
    return w_conn_rc($self, retls_conn_bio_write_eof($self));
  }

  /* information */
  retls_stats w_stats() {
    retls_stats s;
    retls_conn_stats(&s, $self);
    return s;
  }
  const char *w_last_error() { return retls_conn_last_error($self); }
  const char *w_version() { return retls_conn_version($self); }
  const char *w_cipher() { return retls_conn_cipher($self); }
  const char *w_alpn() { return retls_conn_alpn($self); }
  retls_result w_peer_certificate(const unsigned char **der, size_t *der_len) {
    return w_conn_rc($self, retls_conn_peer_certificate(der, der_len, $self));
  }
  /* Handshake facts for channel binding and key export (Lua gives them
   * LuaSec's shape with its own lua_CFunctions). */
  retls_result w_finished(void *buf, size_t cap, size_t *got, int peer) {
    return w_conn_rc($self, retls_conn_finished(got, $self, buf, cap, peer));
  }
  retls_result w_export_keying_material(void *buf, size_t cap, size_t *got,
                                        const char *label,
                                        const void *ctx_buf, size_t ctx_len,
                                        int has_context) {
    int st = retls_conn_export_keying_material(
        buf, cap, $self, label, strlen(label),
        has_context ? ctx_buf : NULL, has_context ? ctx_len : 0);
    *got = st == RETLS_OK ? cap : 0;
    return w_conn_rc($self, st);
  }
  retls_result w_chain_certificate(const unsigned char **der, size_t *der_len,
                                   int local, size_t index) {
    return w_conn_rc($self, retls_conn_chain_certificate(der, der_len, $self,
                                                         local, index));
  }
  const char *w_server_name() { return retls_conn_server_name($self); }
  long w_verify_result() { return retls_conn_verify_result($self); }
  const char *w_verify_text() { return retls_conn_verify_text($self); }
  int w_fileno() { return retls_conn_fileno($self); }
  int w_is_established() { return retls_conn_is_established($self); }
}

/* ---- sessions, resumption and 0-RTT early data -------------------------- */
/* A Session is immutable and reference-counted in C: the script's object
 * owns one reference (its destructor drops it), a connection given the
 * session takes its own. */
%rename(Session) retls_session;
%nodefaultctor retls_session;
typedef struct retls_session {} retls_session;

%{
static retls_result w_session_from_bytes(retls_session **out,
                                         const void *buf, size_t len) {
  int status = retls_session_from_bytes(out, buf, len);
  return w_result(status, retls_session_last_error());
}
%}
retls_result w_session_from_bytes(retls_session **out, const void *buf,
                                  size_t len);

%extend retls_session {
  ~retls_session() { retls_session_free($self); }
  retls_result w_to_bytes(const unsigned char **der, size_t *der_len) {
    return w_result(retls_session_to_bytes(der, der_len, $self), "");
  }
  int w_is_resumable() { return retls_session_is_resumable($self); }
  long w_ticket_lifetime() {
    return (long)retls_session_ticket_lifetime($self);
  }
  size_t w_max_early_data() { return retls_session_max_early_data($self); }
}

%constant int EARLY_NOT_SENT = RETLS_EARLY_NOT_SENT;
%constant int EARLY_REJECTED = RETLS_EARLY_REJECTED;
%constant int EARLY_ACCEPTED = RETLS_EARLY_ACCEPTED;
%constant int EARLY_PENDING = RETLS_EARLY_PENDING;

%extend retls_ctx {
  retls_result w_set_early_data(size_t max_bytes) {
    return w_ctx_rc($self, retls_ctx_set_early_data($self, max_bytes));
  }
  retls_result w_set_early_data_replay(int on) {
    return w_ctx_rc($self, retls_ctx_set_early_data_replay($self, on));
  }
  retls_result w_set_tickets(size_t count) {
    return w_ctx_rc($self, retls_ctx_set_tickets($self, count));
  }
  retls_result w_set_alpn_strict(int on) {
    return w_ctx_rc($self, retls_ctx_set_alpn_strict($self, on));
  }
}

%extend retls_conn {
  retls_result w_session(retls_session **out) {
    return w_conn_rc($self, retls_conn_session(out, $self));
  }
  retls_result w_set_session(retls_session *session) {
    return w_conn_rc($self, retls_conn_set_session($self, session));
  }
  int w_session_reused() { return retls_conn_session_reused($self); }
  retls_result w_write_early(const void *buf, size_t len, size_t *out) {
    return w_conn_rc($self, retls_conn_write_early(out, $self, buf, len));
  }
  int w_early_data_status() { return retls_conn_early_data_status($self); }
  retls_result w_early_data_rejected_bytes(const unsigned char **der,
                                           size_t *der_len) {
    return w_conn_rc($self, retls_conn_early_data_rejected_bytes(der, der_len,
                                                                 $self));
  }
  retls_result w_read_early(void *buf, size_t cap, size_t *got) {
    return w_conn_rc($self, retls_conn_read_early(got, $self, buf, cap));
  }
}
