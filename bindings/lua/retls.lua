-- retls.lua - the Lua face of libretls: `local retls = require "retls"`.
--
-- retls_core is the SWIG module generated from bindings/retls.i; this file
-- gives it the documented Lua API (README, issue 4): contexts from option
-- tables, connections as objects with methods, errors raised with error().
-- Works on Lua 5.1, 5.3, 5.4 and LuaJIT.
--
-- Why the retry rules do not bind you here: when a write stops with
-- WantRead / WantWrite, libretls keeps its own copy of the bytes, so the
-- string you passed may be dropped and collected.  Repeat the write with
-- the same bytes, or call conn:flush(), once the transport is ready.
local core = require "retls_core"

local M = {
  _VERSION = "retls " .. core.version(),
  OPENSSL_VERSION = core.openssl_version(),
}

-- ---- errors -----------------------------------------------------------------
-- Every error retls raises is a table with this metatable: fields kind
-- (see ERRORS below), message and status (the C status number).
local Error = {}
Error.__index = Error
function Error.__tostring(e)
  if e.name then return e.name .. ": " .. e.message end
  return ("retls error (%s): %s"):format(e.kind, e.message)
end
M.Error = Error

-- Unique values, so `err == retls.WantWrite` tells a stopped operation from
-- a failure.  Their kind is the word trywrite() returns.
M.WantRead = setmetatable({
  name = "retls.WantRead", kind = "wantread", status = core.WANT_READ,
  message = "repeat the operation when the transport is readable " ..
    "(memory mode: after feeding the peer's bytes with bio_write)",
}, Error)
M.WantWrite = setmetatable({
  name = "retls.WantWrite", kind = "wantwrite", status = core.WANT_WRITE,
  message = "repeat the operation (or flush()) when the transport is " ..
    "writable (memory mode: after draining it with bio_read)",
}, Error)

-- THE status -> error table.  The out-typemap of every wrapped call
-- (bindings/retls.i, LUA SECTION) looks a failed status up here: a value
-- that is not a string is raised as is, a string is the kind of a new
-- error object carrying the connection's detail text.
local ERRORS = {
  [core.WANT_READ] = M.WantRead,
  [core.WANT_WRITE] = M.WantWrite,
  [core.ZERO_RETURN] = "zero_return",   -- the peer sent close_notify
  [core.EOF] = "eof",                   -- transport closed without it
  [core.SYSCALL] = "syscall",           -- transport I/O error
  [core.SSL] = "ssl",                   -- TLS protocol error
  [core.VERIFY] = "verify",             -- certificate verification failed
  [core.RETRY_MISMATCH] = "retry_mismatch",
  [core.CLOSED] = "closed",
  [core.BAD_ARG] = "arg",
  [core.NOMEM] = "nomem",
  [core.WRITE_PENDING] = "write_pending",
  [core.TIMEOUT] = "timeout",
}
core.set_errors(ERRORS, Error)

local raise, BAD_ARG = core.raise, core.BAD_ARG
local INT_MAX = 0x7fffffff

local function argerror(fn, n, what)
  raise(BAD_ARG, ("bad argument #%d to '%s' (%s)"):format(n, fn, what))
end

local function check(fn, n, value, want, optional)
  local t = type(value)
  if t == want or (optional and value == nil) then return value end
  argerror(fn, n, ("%s expected, got %s"):format(want, t))
end

-- Names and paths go to C as NUL-terminated strings: a Lua string with a
-- NUL inside would be cut short without a word.
local function check_text(fn, n, what, s)
  if type(s) == "string" and s:find("\0", 1, true) then
    argerror(fn, n, ("%s contains a NUL byte"):format(what))
  end
  return s
end

-- ---- contexts -----------------------------------------------------------------
local Context = {}
Context.__index = Context
function Context.__tostring(ctx)
  return ("retls.context (%s)"):format(ctx.role)
end

-- option -> expected Lua type
local CONTEXT_OPTIONS = {
  role = "string", verify = "boolean", cafile = "string", capath = "string",
  certfile = "string", keyfile = "string", min_version = "string",
  max_version = "string", ciphers = "string", ciphersuites = "string",
  alpn = "table", keylog = "string", partial_write = "boolean",
  auto_retry = "boolean", renegotiation = "boolean",
  early_data = "number", early_data_replay = "boolean", tickets = "number",
  alpn_strict = "boolean",
}

--- retls.context{ role = "client", verify = true, cafile = ..., ... }
function M.context(opts)
  opts = check("context", 1, opts, "table", true) or {}
  for k, v in pairs(opts) do
    local want = CONTEXT_OPTIONS[k]
    if want == nil then
      argerror("context", 1, ("unknown option '%s'"):format(tostring(k)))
    elseif type(v) ~= want then
      argerror("context", 1, ("option '%s': %s expected, got %s")
        :format(k, want, type(v)))
    end
    check_text("context", 1, "option '" .. k .. "'", v)
  end
  local role = opts.role or "client"
  if role ~= "client" and role ~= "server" then
    argerror("context", 1, ("option 'role': \"client\" or \"server\" " ..
      "expected, got \"%s\""):format(role))
  end
  local c = core.ctx_new(role == "server" and core.SERVER or core.CLIENT)
  if opts.verify ~= nil then c:set_verify(opts.verify and 1 or 0) end
  if opts.cafile or opts.capath then c:load_verify(opts.cafile, opts.capath) end
  if opts.certfile then
    c:use_certificate(opts.certfile, opts.keyfile)
  elseif opts.keyfile then
    argerror("context", 1, "option 'keyfile' needs 'certfile' as well")
  end
  if opts.min_version or opts.max_version then
    c:set_versions(opts.min_version or "TLSv1.2", opts.max_version)
  end
  if opts.ciphers then c:set_ciphers(opts.ciphers) end
  if opts.ciphersuites then c:set_ciphersuites(opts.ciphersuites) end
  if opts.alpn then
    local n = 0
    for _ in pairs(opts.alpn) do n = n + 1 end
    if n ~= #opts.alpn then
      argerror("context", 1, "option 'alpn': a list of protocol names " ..
        "expected, e.g. { \"h2\", \"http/1.1\" }")
    end
    for i, p in ipairs(opts.alpn) do
      if type(p) ~= "string" or p == "" or #p > 255 or p:find(",", 1, true)
          or p:find("\0", 1, true) then
        argerror("context", 1, ("option 'alpn': entry %d must be a " ..
          "protocol name of 1..255 bytes without ',' (got %s)"):format(i,
          type(p) == "string" and ("%q"):format(p) or type(p)))
      end
    end
    c:set_alpn(table.concat(opts.alpn, ","))
  end
  if opts.keylog then c:set_keylog(opts.keylog) end
  if opts.partial_write ~= nil then c:set_partial_write(opts.partial_write and 1 or 0) end
  if opts.auto_retry ~= nil then c:set_auto_retry(opts.auto_retry and 1 or 0) end
  if opts.renegotiation ~= nil then
    c:set_renegotiation(opts.renegotiation and 1 or 0)
  end
  -- Sessions and 0-RTT (the other role's option raises an "arg" error).
  for _, k in ipairs({ "early_data", "tickets" }) do
    local v = opts[k]
    if v ~= nil and (v < 0 or v > 2^32 - 1 or v ~= math.floor(v)) then
      argerror("context", 1, ("option '%s': a whole number >= 0 expected, " ..
        "got %s"):format(k, tostring(v)))
    end
  end
  if opts.early_data then c:set_early_data(opts.early_data) end
  if opts.early_data_replay ~= nil then
    c:set_early_data_replay(opts.early_data_replay and 1 or 0)
  end
  if opts.tickets then c:set_tickets(opts.tickets) end
  if opts.alpn_strict ~= nil then
    c:set_alpn_strict(opts.alpn_strict and 1 or 0)
  end
  return setmetatable({ _c = c, role = role }, Context)
end

local function is_context(x)
  return type(x) == "table" and getmetatable(x) == Context
end

local function check_context(fn, n, ctx, optional)
  if is_context(ctx) or (optional and ctx == nil) then return ctx end
  argerror(fn, n, "retls context expected (from retls.context{...}), got " ..
    type(ctx))
end

-- ---- sessions -----------------------------------------------------------------
-- A resumable TLS session (TLS 1.3 ticket, TLS 1.2 session ID or ticket)
-- from conn:session(), or rebuilt by retls.session(bytes).  Immutable; its
-- bytes hold the session's secret: store them like a key.
local Session = {}
Session.__index = Session
function Session.__tostring(s)
  return ("retls.session (resumable: %s)"):format(tostring(s:is_resumable()))
end
local function new_session(s)
  return s and setmetatable({ _s = s }, Session) or nil
end
--- session:to_bytes() -> the portable form (for retls.session(bytes))
function Session:to_bytes() return self._s:to_bytes() end
function Session:is_resumable() return self._s:is_resumable() ~= 0 end
--- session:ticket_lifetime() -> seconds the server gave its ticket (0: none)
function Session:ticket_lifetime() return self._s:ticket_lifetime() end
--- session:max_early_data() -> early-data bytes its server accepts (0: none)
function Session:max_early_data() return self._s:max_early_data() end

--- retls.session(bytes) -> a session; an "arg" error for garbage or
-- truncated bytes.
function M.session(bytes)
  check("session", 1, bytes, "string")
  return new_session(core.session_from_bytes(bytes))
end

local function check_session(fn, n, s)
  if s == nil or getmetatable(s) == Session then return s and s._s end
  argerror(fn, n, ("option 'session': a retls session expected (from " ..
    "conn:session() or retls.session(bytes)), got %s"):format(type(s)))
end

-- ---- connections ------------------------------------------------------------
local Conn = {}
Conn.__index = Conn

-- The Lua object holds the C connection (SWIG's Conn userdata) at [1],
-- where the C methods read it with one raw array access, the context (_ctx: a
-- connection keeps its context alive, as LuaSec's registry does; the C
-- core holds its own reference too) and a wrapped LuaSocket object
-- (_sock), so the socket cannot be collected and closed under us.
local function new_conn(c, ctx, role, transport, sock)
  return setmetatable({ c, _ctx = ctx, _sock = sock, role = role,
    _transport = transport }, Conn)
end

-- The C connection of self, or a clear error for conn.write(x) mistakes.
local function C(self, fn)
  local c = type(self) == "table" and rawget(self, 1)
  if not c then
    raise(BAD_ARG, ("calling '%s' on bad self (retls connection " ..
      "expected, got %s; call it as conn:%s(...))"):format(fn, type(self), fn))
  end
  return c
end

-- The hot methods are C functions put straight into Conn (bindings/retls.i,
-- "the connection's hot methods"): conn:write(s) is one lookup in this
-- table and one C call, with no Lua frame and no SWIG lookup in between.
--   conn:handshake() -> true
--   conn:write(s) -> bytes taken (all of s unless partial_write is on)
--   conn:trywrite(s) -> n | nil, "wantread" | "wantwrite" | message, err
--       the non-raising form (LuaSec style): never raises, not even for
--       bad arguments; the third result is the error value itself
--   conn:flush() -> bytes of the pending write now taken (0: none pending)
--   conn:pending_write() -> bytes of the pending write (0: none)
--   conn:want() -> "read", "write" or nil
--   conn:read([n]) -> string of 1..n bytes (n defaults to 16384; one
--       record, at most 16384 bytes, whatever n is)
--   conn:bio_write(s) -> bytes taken: ciphertext received from the peer
--   conn:bio_read([n]) -> ciphertext for the peer ("" when none): all that
--       is waiting, in one string, or at most n bytes of it
--   conn:bio_pending() -> bytes of ciphertext waiting for the peer
--   conn:getfd() -> the socket's fd, -1 in memory/pair mode or once closed
-- getfd() and dirty() (LuaSec's methods below) let LuaSocket's
-- socket.select() take connections.
core.conn_methods(Conn)
local write = Conn.write

--- conn:sendall(s) -> #s.  Loops over partial writes.  If it raises
-- WantRead/WantWrite, conn.bytes_sent tells how many bytes of s were taken
-- before the write that stopped (that one is pending: flush() it, then
-- send s:sub(conn.bytes_sent + flushed + 1)).
function Conn:sendall(s)
  C(self, "sendall")
  check("sendall", 1, s, "string")
  local sent, len = 0, #s
  self.bytes_sent = 0
  while sent < len do
    local ok, n = pcall(write, self, sent == 0 and s or s:sub(sent + 1))
    if not ok then
      self.bytes_sent = sent
      error(n, 0)
    end
    sent = sent + n
  end
  self.bytes_sent = sent
  return sent
end

function Conn:shutdown()
  C(self, "shutdown"):shutdown()
  return true
end

--- conn:close([mode]) -> true.  With a write pending it raises a
-- write_pending error (the bytes were never sent) unless mode is
-- "discard".  Closing twice is fine.  A wrapped socket is not closed.
function Conn:close(mode)
  local c = C(self, "close")
  if mode ~= nil and mode ~= "discard" then
    argerror("close", 1, ("\"discard\" or nothing expected, got %s")
      :format(tostring(mode)))
  end
  c:close(mode == "discard" and core.CLOSE_DISCARD or 0)
  self._sock = nil
  self._closed = true
  return true
end

-- ---- sessions and 0-RTT ----------------------------------------------------
--- conn:session() -> the newest resumable session (clients), or nil.  In
-- TLS 1.3 the tickets come after the handshake, with the first read.
function Conn:session()
  return new_session(C(self, "session"):session())
end

function Conn:session_reused()
  return C(self, "session_reused"):session_reused() ~= 0
end

--- conn:write_early(s) -> bytes taken: TLS 1.3 0-RTT early data before the
-- handshake, with the write() contract (WantRead/WantWrite keep a copy,
-- flush() finishes it, other bytes raise a mismatch).  Rejected early
-- data is sent again after the handshake (context early_data_replay).
function Conn:write_early(s)
  return C(self, "write_early"):write_early(s)
end

local EARLY = { [core.EARLY_NOT_SENT] = "not_sent",
  [core.EARLY_REJECTED] = "rejected", [core.EARLY_ACCEPTED] = "accepted" }
--- conn:early_data_status() -> "accepted", "rejected", "not_sent", or nil
-- before the handshake is done
function Conn:early_data_status()
  return EARLY[C(self, "early_data_status"):early_data_status()]
end

--- conn:early_data_rejected_bytes() -> with early_data_replay = false, the
-- rejected early bytes that were not sent again ("" if none)
function Conn:early_data_rejected_bytes()
  return C(self, "early_data_rejected_bytes"):early_data_rejected_bytes() or ""
end

--- conn:read_early([n]) -> early data (servers with early_data = max);
-- "" once it has ended.  Call it first, then read() the rest.
function Conn:read_early(n)
  if n ~= nil then check("read_early", 1, n, "number") end
  return C(self, "read_early"):read_early(math.min(n or 16384, 65536))
end

function Conn:renegotiate()
  C(self, "renegotiate"):renegotiate()
  return true
end

function Conn:key_update(request_peer)
  C(self, "key_update"):key_update(request_peer and 1 or 0)
  return true
end

--- conn:info() -> { version, cipher, alpn, peer_certificate (DER),
--                   verify_result, verify_text }
function Conn:info()
  local c = C(self, "info")
  return {
    version = c:version(),
    cipher = c:cipher(),
    alpn = c:alpn(),
    peer_certificate = not self._closed and c:peer_certificate() or nil,
    verify_result = c:verify_result(),
    verify_text = c:verify_text(),
  }
end

--- conn:stats() -> { writes, bytes_written, want_read, want_write,
--                    retries, mismatches, bytes_read }
function Conn:stats()
  return C(self, "stats"):stats()
end

-- memory mode ----------------------------------------------------------------
--- conn:bio_write_eof(): the peer's byte stream has ended
function Conn:bio_write_eof()
  C(self, "bio_write_eof"):bio_write_eof()
  return true
end

function Conn:__tostring()
  local c = rawget(self, 1)
  local state
  if self._closed then
    state = "closed"
  else
    state = c:version() or "handshake pending"
  end
  local where = self._transport
  if where == "fd" then where = "fd " .. tostring(c:fileno()) end
  return ("retls.connection (%s, %s, %s)"):format(self.role, where, state)
end

-- Leaving a <close> scope (Lua 5.4) closes the connection; when the scope
-- is left by an error, a pending write is dropped (nobody can flush it
-- now), otherwise close() refuses to drop it, as it always does.
function Conn:__close(err)
  if not self._closed then self:close(err ~= nil and "discard" or nil) end
end

-- Collected: close at once, dropping a pending write.  (The C object's
-- own finalizer frees it right after; on Lua 5.1 / LuaJIT, which do not
-- run __gc on tables, that finalizer alone does all of it.)
-- Only a real C connection is closed: a table given this metatable by
-- hand (a bad-self test does) must not raise from the collector, which
-- Lua 5.3 turns into an error in whatever code runs at that moment.
function Conn:__gc()
  local c = rawget(self, 1)
  if not self._closed and type(c) == "userdata" then c:close(core.CLOSE_DISCARD) end
end

-- ---- making connections --------------------------------------------------
local function check_opts(fn, n, opts, allowed)
  opts = check(fn, n, opts, "table", true) or {}
  for k, v in pairs(opts) do
    local want = allowed[k]
    if want == nil then
      argerror(fn, n, ("unknown option '%s'"):format(tostring(k)))
    elseif type(v) ~= want then
      argerror(fn, n, ("option '%s': %s expected, got %s"):format(k, want, type(v)))
    end
    check_text(fn, n, "option '" .. k .. "'", v)
  end
  return opts
end

local function check_size(fn, n, name, v)
  if v ~= nil and (v < 1 or v ~= math.floor(v) or v > 0x7fffffff) then
    argerror(fn, n, ("option '%s': a whole number of bytes >= 1 expected, got %s")
      :format(name, tostring(v)))
  end
  return v or 0
end

--- retls.connect(host, port [, ctx [, { server_hostname =, timeout = }]])
-- A blocking TCP connection (handshake not done yet).  timeout is in
-- seconds and bounds the connect and every later read and write.
function M.connect(host, port, ctx, opts)
  check_text("connect", 1, "host", check("connect", 1, host, "string"))
  check("connect", 2, port, "number")
  check_context("connect", 3, ctx, true)
  opts = check_opts("connect", 4, opts, { server_hostname = "string", timeout = "number",
    session = "table" })
  local sess = check_session("connect", 4, opts.session)
  local timeout_ms = 0
  if opts.timeout ~= nil then
    if not (opts.timeout > 0) then
      argerror("connect", 4, ("option 'timeout': seconds > 0 expected, got %s")
        :format(tostring(opts.timeout)))
    end
    timeout_ms = math.min(math.max(1, math.floor(opts.timeout * 1000 + 0.5)), INT_MAX)
  end
  if port ~= math.floor(port) then
    argerror("connect", 2, "port must be a whole number, got " .. tostring(port))
  end
  -- checked here: C would get an int, and a number beyond that is not one
  if port < 1 or port > 65535 then
    argerror("connect", 2, "port in 1..65535 expected, got " .. tostring(port))
  end
  ctx = ctx or M.context()
  local c = core.connect(ctx._c, host, port, timeout_ms, opts.server_hostname)
  if sess then c:set_session(sess) end
  return new_conn(c, ctx, ctx.role, "fd")
end

--- retls.wrap(ctx, fd_or_socket [, { server_hostname =, capacity = }])
-- Over an fd (a number) or a LuaSocket object (anything with getfd()),
-- which stays yours: closing the connection does not close it.  With nil
-- instead of a socket: memory mode (bio_write / bio_read), unbounded
-- unless capacity = N bounds the outgoing ciphertext buffer (a write
-- that does not fit raises WantWrite until bio_read drains it).
function M.wrap(ctx, sock, opts)
  check_context("wrap", 1, ctx)
  opts = check_opts("wrap", 3, opts, { server_hostname = "string", capacity = "number",
    session = "table" })
  local sess = check_session("wrap", 3, opts.session)
  if sock == nil then
    local c = core.conn_new_memory(ctx._c, opts.server_hostname,
      check_size("wrap", 3, "capacity", opts.capacity))
    if sess then c:set_session(sess) end
    return new_conn(c, ctx, ctx.role, "memory")
  end
  if opts.capacity ~= nil then
    argerror("wrap", 3, "option 'capacity' is for memory mode (no socket) only")
  end
  local fd = sock
  if type(sock) ~= "number" then
    local ok, getfd = pcall(function() return sock.getfd end)
    if not ok or type(getfd) ~= "function" then
      argerror("wrap", 2, ("fd or socket object with getfd() expected, got %s")
        :format(type(sock)))
    end
    fd = sock:getfd()
    if type(fd) ~= "number" then
      argerror("wrap", 2, ("getfd() returned a %s, not a number"):format(type(fd)))
    end
  end
  if type(fd) ~= "number" or fd < 0 or fd > INT_MAX or fd ~= math.floor(fd) then
    argerror("wrap", 2, ("an open socket expected, got fd %s (closed socket?)")
      :format(tostring(fd)))
  end
  local c = core.conn_new_fd(ctx._c, fd, 0, opts.server_hostname)
  if sess then c:set_session(sess) end
  return new_conn(c, ctx, ctx.role, "fd", type(sock) ~= "number" and sock or nil)
end

-- Drive the handshake of two ends that only talk to each other until both
-- are done; the first real failure is raised.
local function handshake_pair(a, b)
  local done = { false, false }
  for _ = 1, 1000 do
    for i, me in ipairs({ a, b }) do
      if not done[i] then
        local ok, err = pcall(me.handshake, me)
        if ok then
          done[i] = true
        elseif err ~= M.WantRead and err ~= M.WantWrite then
          error(err, 0)
        end
      end
    end
    if done[1] and done[2] then return end
  end
  raise(core.SSL, "pair: the handshake made no progress after 1000 rounds")
end

--- retls.pair([client_ctx [, server_ctx [, { capacity = 16384,
--                                           handshake = true }]]])
-- Two connected ends in this process, client and server; capacity is the
-- buffer each way (a write that does not fit raises WantWrite until the
-- other end reads).  Without contexts: a client that does not verify and
-- a server with a throwaway self-signed certificate.  The handshake is
-- done before returning unless handshake = false.
function M.pair(client_ctx, server_ctx, opts)
  check_context("pair", 1, client_ctx, true)
  check_context("pair", 2, server_ctx, true)
  opts = check_opts("pair", 3, opts, { capacity = "number", handshake = "boolean",
    session = "table" })
  local sess = check_session("pair", 3, opts.session)
  local c, s = core.pair_new(client_ctx and client_ctx._c,
    server_ctx and server_ctx._c, check_size("pair", 3, "capacity", opts.capacity))
  if sess then c:set_session(sess) end
  c = new_conn(c, client_ctx, "client", "pair")
  s = new_conn(s, server_ctx, "server", "pair")
  if opts.handshake ~= false then handshake_pair(c, s) end
  return c, s
end


-- ---- LuaSec's socket methods (issue 14) -----------------------------------
-- LuaSec's protocol on every connection, beside the raising API above:
-- conn:send(data, i, j), conn:receive(pattern, prefix), settimeout,
-- dohandshake, dirty: C functions from retls_core (bindings/retls.i,
-- LUASEC METHODS), put straight into the method table.  They never raise
-- for I/O and return LuaSec's results (README "Switching from LuaSec").
-- getfd() and close() are the ones above.
Conn.send = core.luasec_send
Conn.receive = core.luasec_receive
Conn.settimeout = core.luasec_settimeout
Conn.dohandshake = core.luasec_dohandshake
Conn.dirty = core.luasec_dirty
Conn.getpeername = core.luasec_getpeername
Conn.getsockname = core.luasec_getsockname
-- LuaSec's inspection methods (bindings/retls.i): nil, "closed" until the
-- handshake is done, as LuaSec answers outside its CONNECTED state.
--   getfinished(), getpeerfinished() -> the Finished message sent / received
--   exportkeyingmaterial(label, length [, context]) -> RFC 5705 / 8446 bytes
--   getpeerverification() -> true | false, OpenSSL's verify text
--   getpeerchain(), getlocalchain() -> { DER, ... } (own certificate first)
--   getpeercertificate([n]), getlocalcertificate([n]) -> DER of the n-th
--   getsniname() -> the SNI name, or nil
--   getstats() -> received, sent, age; setstats(received, sent, age) -> 1
Conn.getfinished = core.luasec_getfinished
Conn.getpeerfinished = core.luasec_getpeerfinished
Conn.exportkeyingmaterial = core.luasec_exportkeyingmaterial
Conn.getpeerverification = core.luasec_getpeerverification
Conn.getpeerchain = core.luasec_getpeerchain
Conn.getlocalchain = core.luasec_getlocalchain
Conn.getpeercertificate = core.luasec_getpeercertificate
Conn.getlocalcertificate = core.luasec_getlocalcertificate
Conn.getsniname = core.luasec_getsniname
Conn.getstats = core.luasec_getstats
Conn.setstats = core.luasec_setstats

-- LuaSec methods retls does not provide: they exist and answer
-- nil, "<method> is not supported by retls.luasec: <why>" (LuaSec's
-- non-raising convention) instead of Lua's "attempt to call a nil value".
local UNSUPPORTED_METHODS = {
  setdane = "retls verifies no DANE (RFC 6698); verify against a CA " ..
    "('cafile' / 'capath') and the host name given to sni(hostname)",
  settlsa = "retls verifies no DANE TLSA records; verify against a CA " ..
    "('cafile' / 'capath') and the host name given to sni(hostname)",
}
for name, why in pairs(UNSUPPORTED_METHODS) do
  local msg = name .. " is not supported by retls.luasec: " .. why
  Conn[name] = function() return nil, msg end
end

--- conn:sni(hostname) -> true | nil, err: name the server before the
-- handshake (the SNI sent and the name the certificate must carry).
-- LuaSec's server form, sni({ [name] = context, ... } [, strict]), is not
-- supported: it answers nil and the reason.
function Conn:sni(name)
  if type(name) == "table" then
    return nil, "sni is not supported by retls.luasec on servers (a table " ..
      "of contexts per host name): serve each name from its own listening " ..
      "socket and context, or one certificate that carries every name"
  end
  if type(name) ~= "string" then
    return nil, "sni: hostname string expected, got " .. type(name)
  end
  local c = C(self, "sni")
  local ok, err = pcall(c.set_server_name, c, name)
  if ok then return true end
  return nil, type(err) == "table" and err.message or tostring(err)
end

--- conn:getalpn() -> the negotiated ALPN protocol, or nil
function Conn:getalpn()
  local c = C(self, "getalpn")
  return not self._closed and c:alpn() or nil
end

--- conn:info([field]): retls' info() table with LuaSec's fields added
-- (protocol, cipher, bits, algbits, key, authentication, encryption, mac,
-- export, compression), parsed from OpenSSL's cipher description as
-- LuaSec's ssl.lua does; with a field name, that field alone.
local retls_info = Conn.info
local cipher_info = core.luasec_cipher_info
function Conn:info(field)
  local t = retls_info(self)
  t.protocol = t.version
  local desc, bits, algbits = cipher_info(self)
  if desc then
    t.bits, t.algbits = bits, algbits
    local cipher, _, key, auth, enc, mac = desc:match(
      "^(%S+)%s+(%S+)%s+Kx=(%S+)%s+Au=(%S+)%s+Enc=(%S+)%s+Mac=(%S+)")
    t.cipher = cipher or t.cipher
    t.key, t.authentication, t.encryption, t.mac = key, auth, enc, mac
    t.export = desc:match("%sexport%s*$") ~= nil
    -- (compression: none in OpenSSL 3 builds, nil as in LuaSec)
  end
  if field ~= nil then return t[field] end
  return t
end

-- retls.luasec.wrap: a client or server connection over sock's
-- descriptor that owns it, as LuaSec's wrap takes it over (closing the
-- connection closes the descriptor; sock is left without one).
function M._luasec_wrap(ctx, sock, server_name)
  local fd = sock:getfd()
  if type(fd) ~= "number" or fd < 0 then
    return nil, "retls.luasec: the socket has no descriptor (closed?)"
  end
  local ok, c = pcall(core.conn_new_fd, ctx._c, fd, core.FD_OWN, server_name)
  if not ok then
    return nil, "retls.luasec: " .. (type(c) == "table" and c.message or tostring(c))
  end
  sock:setfd(-1)
  local conn = new_conn(c, ctx, ctx.role, "fd")
  conn._luasec = true
  core.luasec_init(conn) -- getstats()' age counts from here
  return conn
end

-- LuaSec's close() sends the close_notify (retls' does not: shutdown() is
-- separate), so connections from retls.luasec.wrap send it first (waiting
-- for the socket a bounded time, not for the peer's close_notify).  A pending write still makes close()
-- raise write_pending: those bytes were never sent (README).
local retls_close = Conn.close
function Conn:close(mode)
  if rawget(self, "_luasec") and not self._closed and mode == nil then
    core.luasec_close_notify(self)
  end
  return retls_close(self, mode)
end

return M
