#!/usr/bin/env lua
--[[
probe.lua HOST:PORT [options] - a scriptable TLS test client, the Lua twin
of `python -m retls` (bindings/python/retls/probe.py): same options, same
report, same exit statuses.

Connects, handshakes, optionally sends data, reads the reply until the
server closes or --timeout passes without data, and prints a report:
protocol, cipher, ALPN, the server certificate (subject, issuer, validity,
SHA-256 fingerprint, decoded by `openssl x509 -inform DER`), the
verification result, bytes each way and the WantRead/WantWrite counts.

Options: --servername NAME, --alpn h2,http/1.1, --min-version V,
--max-version V, --ciphers LIST, --ciphersuites LIST, --cafile F,
--insecure, --cert F, --key F, --keylog FILE, --send TEXT (escapes \r \n
\t \\ \xNN), --send-file F, --repeat N, --nonblocking (LuaSocket +
socket.select; counts WantRead/WantWrite), --key-update (TLS 1.3),
--renegotiate (TLS 1.2), --timeout S (default 5; bounds connect, handshake
and every wait; while reading the reply it ends the reply), --json.
Sessions: --sess-out FILE saves the (last) connection's session,
--sess-in FILE resumes one, --reconnect connects again resuming the
first's session (the report describes the second), --early-data FILE sends
FILE as TLS 1.3 0-RTT early data on a resuming connection (rejected early
data is sent again after the handshake).  The report says session_reused
and early_data_status.

Exit status: 0 success; 2 bad usage; 3 connection refused or host not
found; 4 timeout; 5 handshake failure; 6 certificate verification failure;
1 anything else.  A failure prints "error: <kind>: <reason>" to stderr
(with --json also {"ok": false, "error": kind, "reason": ...} on stdout).

Run:  lua5.4 examples/lua/probe.lua example.org:443 --alpn h2,http/1.1
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local retls = require "retls"
local socket = require "socket"
local util = require "example_util"  -- argument parsing

local EXIT = { error = 1, usage = 2, refused = 3, timeout = 4, handshake = 5, verify = 6 }

local o = util.parse_args(arg, {
  servername = false, alpn = false, ["min-version"] = "TLSv1.2",
  ["max-version"] = false, ciphers = false, ciphersuites = false,
  cafile = false, insecure = "flag", cert = false, key = false,
  keylog = false, send = false, ["send-file"] = false, ["repeat"] = "1",
  nonblocking = "flag", ["key-update"] = "flag", renegotiate = "flag",
  timeout = "5", json = "flag", ["sess-out"] = false, ["sess-in"] = false,
  reconnect = "flag", ["early-data"] = false,
}, "HOST:PORT")

-- ---- JSON, just enough for the report (keys in a fixed, readable order) --
local ORDER = {}
for i, k in ipairs { "ok", "error", "reason", "target", "servername",
  "protocol", "cipher", "alpn", "certificate", "subject", "issuer",
  "not_before", "not_after", "sha256", "verify", "key_update",
  "renegotiated", "bytes_sent", "bytes_received", "end", "want_read",
  "want_write", "retries", "reply", "session_reused",
  "early_data_status" } do ORDER[k] = i end

local NULL = setmetatable({}, { __tostring = function() return "null" end })

local function json(v)
  local t = type(v)
  if v == nil or v == NULL then return "null"
  elseif t == "boolean" or t == "number" then return tostring(v)
  elseif t == "string" then
    -- Bytes >= 0x80 as \u00XX (Latin-1): valid JSON whatever the reply is.
    return '"' .. v:gsub('[%c"\\\128-\255]', function(c)
      local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n",
                      ["\r"] = "\\r", ["\t"] = "\\t" }
      return named[c] or ("\\u%04x"):format(c:byte())
    end) .. '"'
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    return (ORDER[a] or 99) < (ORDER[b] or 99) or
      ((ORDER[a] or 99) == (ORDER[b] or 99) and a < b)
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = json(k) .. ": " .. json(v[k])
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- ---- failures: a kind (the exit status) and a one-line reason --------------
local Failure = {}
local function fail(kind, reason) error(setmetatable({ kind = kind, reason = reason }, Failure), 0) end
local function message(e)
  return type(e) == "table" and (e.message or tostring(e)) or tostring(e)
end

-- ---- the pieces ------------------------------------------------------------
local function parse_target(text)
  local host, port = text:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = text:match("^([^:]+):(%d+)$") end
  if not host and text:match("^[^:]+$") then host, port = text, "443" end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    fail("usage", ("want HOST:PORT (e.g. example.org:443), not '%s'"):format(text))
  end
  return host, port
end

local function unescape(s)
  local out, i = {}, 1
  local named = { r = "\r", n = "\n", t = "\t", ["\\"] = "\\", ["0"] = "\0" }
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\\" and s:sub(i + 1, i + 1) == "x" and s:sub(i + 2, i + 3):match("^%x%x$") then
      out[#out + 1] = string.char(tonumber(s:sub(i + 2, i + 3), 16))
      i = i + 4
    elseif c == "\\" and named[s:sub(i + 1, i + 1)] then
      out[#out + 1] = named[s:sub(i + 1, i + 1)]
      i = i + 2
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

local function payload()
  if o.send and o["send-file"] then fail("usage", "--send and --send-file exclude each other") end
  local n = tonumber(o["repeat"])
  if not n or n < 1 then fail("usage", "--repeat must be at least 1") end
  local data = ""
  if o.send then
    data = unescape(o.send)
  elseif o["send-file"] then
    local f, err = io.open(o["send-file"], "rb")
    if not f then fail("usage", "--send-file: " .. err) end
    data = f:read("*a")
    f:close()
  end
  return data:rep(n)
end

-- Subject, issuer, validity and SHA-256 fingerprint via openssl x509.
local function decode_certificate(der)
  if not der then return nil end
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(der)
  f:close()
  local p = io.popen("openssl x509 -inform DER -in " .. tmp .. " -noout -subject " ..
    "-issuer -startdate -enddate -fingerprint -sha256 -nameopt RFC2253 2>&1")
  local out = p and p:read("*a") or ""
  if p then p:close() end
  os.remove(tmp)
  local fields = {}
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^([^=]+)=(.*)$")
    if k then fields[k:match("^%s*(.-)%s*$")] = v:match("^%s*(.-)%s*$") end
  end
  if not fields["sha256 Fingerprint"] then
    return { error = "openssl x509 could not decode it: " ..
      (out:match("[^\n]+") or "is openssl installed?") }
  end
  return {
    subject = fields.subject, issuer = fields.issuer,
    not_before = fields.notBefore, not_after = fields.notAfter,
    sha256 = fields["sha256 Fingerprint"],
  }
end

-- Blocking I/O: retls.connect() with a timeout on every operation.
local function open_blocking(ctx, host, port, servername, timeout, session)
  local ok, conn = pcall(retls.connect, host, port, ctx,
    { server_hostname = servername, timeout = timeout, session = session })
  if ok then return conn, function(method, ...) return conn[method](conn, ...) end end
  local text = message(conn)
  if text:find("set_session", 1, true) then fail("usage", text) end
  if type(conn) == "table" and conn.kind == "timeout" then fail("timeout", text) end
  if text:find("refused") or text:find("resolve") then fail("refused", text) end
  if text:find("timed out") then fail("timeout", text) end
  fail("error", text)
end

-- Non-blocking: a LuaSocket socket; every Want waits with socket.select.
local function open_nonblocking(ctx, host, port, servername, timeout, session)
  local sock = assert(socket.tcp())
  sock:settimeout(timeout)
  local ok, err = sock:connect(host, port)
  if not ok then
    if err == "timeout" then fail("timeout", ("connect to %s:%d timed out"):format(host, port)) end
    fail("refused", ("connect to %s:%d: %s"):format(host, port, err))
  end
  sock:settimeout(0)
  local w_ok, conn = pcall(retls.wrap, ctx, sock, { server_hostname = servername,
    session = session })
  if not w_ok then
    sock:close()
    fail("usage", message(conn))
  end
  local function call(method, ...)
    while true do
      local ok2, res = pcall(conn[method], conn, ...)
      if ok2 then return res end
      if res ~= retls.WantRead and res ~= retls.WantWrite then error(res, 0) end
      local r, w = socket.select(res == retls.WantRead and { sock } or {},
        res == retls.WantWrite and { sock } or {}, timeout)
      if #r == 0 and #w == 0 then
        error({ kind = "timeout", message = ("no progress for %s s (waiting to %s)")
          :format(timeout, res == retls.WantRead and "read" or "write") }, 0)
      end
    end
  end
  return conn, call, sock
end

local function kind_of(e) return type(e) == "table" and e.kind or nil end

local connection  -- defined after probe(), which calls it

local function readfile(path, option)
  local f, err = io.open(path, "rb")
  if not f then fail("usage", option .. ": " .. err) end
  local data = f:read("*a")
  f:close()
  return data
end

local function probe()
  local host, port = parse_target(o[1])
  local servername = o.servername or host
  local timeout = tonumber(o.timeout)
  if not timeout or timeout <= 0 then fail("usage", "--timeout must be > 0") end
  if o.key and not o.cert then fail("usage", "--key needs --cert") end
  local alpn
  if o.alpn then
    alpn = {}
    for p in o.alpn:gmatch("[^,]+") do alpn[#alpn + 1] = p end
  end
  local ok, ctx = pcall(retls.context, {
    verify = not o.insecure, cafile = o.cafile or nil, certfile = o.cert or nil,
    keyfile = o.key or nil, min_version = o["min-version"],
    max_version = o["max-version"] or nil, ciphers = o.ciphers or nil,
    ciphersuites = o.ciphersuites or nil, keylog = o.keylog or nil, alpn = alpn,
  })
  if not ok then fail("usage", "bad TLS settings: " .. message(ctx)) end
  local data = payload()
  if o["early-data"] and not (o["sess-in"] or o.reconnect) then
    fail("usage", "--early-data needs a session to resume: --sess-in FILE or --reconnect")
  end
  local session, early
  if o["sess-in"] then
    local s_ok, sess = pcall(retls.session, readfile(o["sess-in"], "--sess-in"))
    if not s_ok then fail("usage", ("--sess-in %s: %s"):format(o["sess-in"], message(sess))) end
    session = sess
  end
  if o["early-data"] then early = readfile(o["early-data"], "--early-data") end
  local r, newest = connection(ctx, host, port, servername, timeout, data, session,
    session and early or nil)
  if o.reconnect then
    r, newest = connection(ctx, host, port, servername, timeout, data, newest, early)
  end
  if o["sess-out"] then
    if not newest then fail("error", "--sess-out: the server gave no session to save") end
    local f, err = io.open(o["sess-out"], "wb")
    if not f then fail("usage", "--sess-out: " .. err) end
    f:write(newest:to_bytes())
    f:close()
  end
  return r
end

-- One connection: handshake (with early data when given), the data, the
-- reply.  Returns the report and the newest session (or nil).
connection = function(ctx, host, port, servername, timeout, data, session, early)
  local open = o.nonblocking and open_nonblocking or open_blocking
  local conn, call, sock = open(ctx, host, port, servername, timeout, session)
  local r = { ok = true, target = ("%s:%d"):format(host, port), servername = servername }
  if early then
    local e_ok, e = pcall(call, "write_early", early)
    if not e_ok then
      fail(kind_of(e) == "arg" and "usage" or kind_of(e) == "timeout" and "timeout"
        or "error", "--early-data: " .. message(e))
    end
  end

  local hs_ok, e = pcall(call, "handshake")
  if not hs_ok then
    local k = kind_of(e)
    if k == "verify" then fail("verify", message(e)) end
    if k == "timeout" then fail("timeout", "handshake: " .. message(e)) end
    fail("handshake", message(e))
  end
  local info = conn:info()
  r.protocol, r.cipher, r.alpn = info.version, info.cipher, info.alpn or NULL
  r.certificate = decode_certificate(info.peer_certificate) or NULL
  r.verify = o.insecure and "skipped (--insecure)" or
    ("ok (chain and hostname %s)"):format(servername)

  local step_ok, step_err = pcall(function()
    if o["key-update"] then
      conn:key_update(true)
      call("handshake")  -- sends it now, even with no data
    end
    if o.renegotiate then
      conn:renegotiate()
      call("handshake")  -- runs the new handshake
    end
  end)
  if not step_ok then
    local k = kind_of(step_err)
    fail(k == "arg" and "usage" or k == "timeout" and "timeout" or "handshake",
      message(step_err))
  end
  r.key_update, r.renegotiated = o["key-update"], o.renegotiate

  local sent = 0
  while sent < #data do
    local w_ok, n = pcall(conn.write, conn, data:sub(sent + 1, sent + 256 * 1024))
    if not w_ok then
      if n ~= retls.WantRead and n ~= retls.WantWrite then
        fail(kind_of(n) == "timeout" and "timeout" or "error", "sending: " .. message(n))
      end
      local f_ok, fn = pcall(call, "flush")  -- the connection kept the bytes
      if not f_ok then
        fail(kind_of(fn) == "timeout" and "timeout" or "error", "sending: " .. message(fn))
      end
      n = fn
    end
    sent = sent + n
  end

  local reply, closed = {}, nil
  while not closed do
    local r_ok, chunk = pcall(call, "read", 65536)
    if r_ok then
      reply[#reply + 1] = chunk
    elseif kind_of(chunk) == "zero_return" then
      closed = "close_notify"
    elseif kind_of(chunk) == "eof" then
      closed = "closed without close_notify"
    elseif kind_of(chunk) == "timeout" then
      closed = ("still open after %g s without data"):format(timeout)
    else
      fail("error", "reading: " .. message(chunk))
    end
  end
  if closed ~= "closed without close_notify" then
    pcall(call, "shutdown")  -- the peer may be gone already
  end
  local st = conn:stats()
  local newest = conn:session()  -- TLS 1.3 tickets came with the reply
  r.session_reused, r.early_data_status = conn:session_reused(), conn:early_data_status()
  conn:close("discard")
  if sock then sock:close() end
  reply = table.concat(reply)
  r.bytes_sent, r.bytes_received, r["end"] = sent, #reply, closed
  r.want_read, r.want_write, r.retries = st.want_read, st.want_write, st.retries
  r.reply = reply:sub(1, 4096)
  return r, newest
end

local function print_text(r)
  local function row(name, value) print(("%-12s %s"):format(name, value)) end
  row("connected", ("%s (servername %s)"):format(r.target, r.servername))
  row("protocol", r.protocol)
  row("cipher", r.cipher)
  row("alpn", r.alpn ~= NULL and r.alpn or "(none)")
  local cert = r.certificate
  if cert == NULL then
    row("certificate", "(none sent)")
  elseif cert.error then
    row("certificate", cert.error)
  else
    row("subject", cert.subject)
    row("issuer", cert.issuer)
    row("valid", ("%s .. %s"):format(cert.not_before, cert.not_after))
    row("sha256", cert.sha256)
  end
  row("verify", r.verify)
  if r.key_update then row("key update", "sent (server asked to update too)") end
  if r.renegotiated then row("renegotiate", "done") end
  row("session", r.session_reused and "resumed" or "new")
  row("early data", (r.early_data_status:gsub("_", " ")))
  row("sent", ("%d bytes"):format(r.bytes_sent))
  row("received", ("%d bytes, then %s"):format(r.bytes_received, r["end"]))
  row("wants", ("want_read=%d want_write=%d retries=%d"):format(r.want_read,
    r.want_write, r.retries))
  if #r.reply > 0 then
    row("reply", ("%q"):format(r.reply:sub(1, 200)):gsub("\\\n", "\\n") ..
      (#r.reply > 200 and " ..." or ""))
  end
end

local ok, res = pcall(probe)
if ok then
  if o.json then print(json(res)) else print_text(res) end
  os.exit(0)
end
local kind, reason = "error", message(res)
if getmetatable(res) == Failure then kind, reason = res.kind, res.reason end
if o.json then print(json { ok = false, error = kind, reason = reason }) end
io.stderr:write(("error: %s: %s\n"):format(kind, reason))
os.exit(EXIT[kind])
