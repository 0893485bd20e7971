#!/usr/bin/env lua
--[[
nonblocking_client.lua - a non-blocking socket.select loop over retls.

What it shows: the write path of a non-blocking TLS client in Lua.  It
pushes a large buffer in fixed-size writes through a deliberately small
socket send buffer, so writes stop with retls.WantWrite all the time, and it
keeps reading whatever the server sends meanwhile (an echo, a renegotiation
or a KeyUpdate; a renegotiation can make a write stop with retls.WantRead).
After a Want the loop waits with socket.select for what the connection
asked for, then calls conn:flush(): the connection kept its own copy of the
pending bytes, so the loop never has to present the same string again.

When all is sent it says goodbye (close_notify), reads until the server's
close_notify and prints one summary line, key=value, with the SHA-256 of
what it sent and of what it received back (Lua has no SHA-256 of its own;
the digests come from the openssl command).

Run (LUA_CPATH/LUA_PATH must find retls, e.g. after a cmake build):
    openssl s_server -accept 127.0.0.1:4433 -cert cert.pem -key key.pem
    lua5.4 examples/lua/nonblocking_client.lua --insecure 127.0.0.1 4433

Options: --size (16M), --write-size (256K), --sndbuf (32K, 0 = system
default), --tls-version, --cafile, --servername, --cert/--key, --insecure,
--timeout SECONDS (30, bounds every wait), --text (lines of random hex
digits, for line-based echo servers such as gnutls-serv --echo),
--progress (a live progress line on stderr; the demo uses it).
The same program as examples/c/nonblocking_client.c and
examples/python/nonblocking_client.py.
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local retls = require "retls"
local socket = require "socket"
local util = require "example_util"  -- argument parsing, data, SHA-256

local o = util.parse_args(arg, {
  size = "16M", ["write-size"] = "256K", sndbuf = "32K", timeout = "30",
  ["tls-version"] = false, cafile = false, servername = false, cert = false,
  key = false, insecure = "flag", text = "flag", progress = "flag",
}, "HOST PORT")
local host, port = o[1], tonumber(o[2])
local size, write_size = util.size(o.size), util.size(o["write-size"])
local timeout = tonumber(o.timeout)

local data = util.random_data(size, o.text)
local received = {}

local ctx = retls.context {
  role = "client", verify = not o.insecure, cafile = o.cafile or nil,
  certfile = o.cert or nil, keyfile = o.key or nil,
  min_version = o["tls-version"] or "TLSv1.2",
  max_version = o["tls-version"] or nil,
}

-- SO_SNDBUF must be set before connect() to shape the TCP window; tcp4()
-- creates the socket now so the option can be set.
local sock = assert(socket.tcp4())
if util.size(o.sndbuf) > 0 then
  assert(sock:setoption("send-buffer-size", util.size(o.sndbuf)))
end
sock:settimeout(timeout)
local ok, err = sock:connect(host, port)
if not ok then util.die("cannot connect to %s:%s: %s", host, port, err) end
sock:settimeout(0)  -- LuaSocket keeps the fd non-blocking; retls uses it
local conn = retls.wrap(ctx, sock, { server_hostname = o.servername or host })

-- Wait until the socket is ready for what the connection asked for; we
-- always want to read too (echo, renegotiation).  Returns "readable" or nil.
local function wait(want)
  local r, w, e = socket.select({ sock }, want == "write" and { sock } or {},
                                timeout)
  if e == "timeout" then util.die("timeout: nothing happened for %s s", timeout) end
  return #r > 0 and "readable" or nil
end

-- Call conn[method] and turn retls.WantRead/WantWrite into "read"/"write".
local function try(method, ...)
  local ok, res = pcall(conn[method], conn, ...)
  if ok then return res end
  if res == retls.WantRead then return nil, "read" end
  if res == retls.WantWrite then return nil, "write" end
  error(res, 0)
end

-- Read what is readable now.  false once the server said goodbye.
local function drain()
  while true do
    local ok, chunk = pcall(conn.read, conn, 65536)
    if not ok then
      if chunk == retls.WantRead or chunk == retls.WantWrite then return true end
      if type(chunk) == "table" and chunk.kind == "zero_return" then return false end
      error(chunk, 0)
    end
    received[#received + 1] = chunk
  end
end

-- A live line: bytes so far and MB/s, redrawn at most every 0.1 s.
local last_draw = 0
local function progress(done, t0, final)
  local now = socket.gettime()
  if not final and now - last_draw < 0.1 then return end
  last_draw = now
  io.stderr:write(("\r  %-18s %7.1f MiB of %.1f MiB  %7.1f MB/s%s"):format(
    "progress", done / 2^20, size / 2^20,
    done / math.max(now - t0, 1e-9) / 1e6, final and "\n" or ""))
end

local function main()
  -- The handshake, non-blocking: the same wait-then-repeat pattern.
  while true do
    local _, want = try("handshake")
    if not want then break end
    wait(want)
  end
  local info = conn:info()
  io.stderr:write(("connected: %s %s\n"):format(info.version, info.cipher))

  -- The write loop.  While conn:pending_write() > 0 the connection holds a
  -- write that stopped; we only flush() it, never present new bytes.
  local off, want = 0, nil
  local t0 = socket.gettime()
  while off < size or conn:pending_write() > 0 do
    if want and wait(want) == "readable" then
      if not drain() then error("the server closed during the transfer", 0) end
    end
    local n
    if conn:pending_write() > 0 then
      n, want = try("flush")
    else
      n, want = try("write", data:sub(off + 1, off + write_size))
    end
    if n then
      off = off + n
      drain()  -- take what the server sent so an echo never blocks us
      if o.progress then progress(off, t0) end
    end
  end
  local elapsed = socket.gettime() - t0
  if o.progress then progress(off, t0, true) end

  -- Goodbye: send close_notify, then read until the server's.
  while true do
    local _, w = try("shutdown")
    if not w then break end
    wait(w)
  end
  while drain() do wait("read") end

  local st = conn:stats()
  print(("sent=%d sha256=%s received=%d received_sha256=%s writes=%d "
      .. "want_write=%d want_read=%d retries=%d mismatches=%d seconds=%.3f "
      .. "mbps=%.1f version=%s clean_close=1"):format(
    off, util.sha256(data), #table.concat(received),
    util.sha256(table.concat(received)), st.writes, st.want_write,
    st.want_read, st.retries, st.mismatches, elapsed,
    off / math.max(elapsed, 1e-9) / 1e6, info.version))
  conn:close()
  sock:close()
end

local ok, e = pcall(main)
if not ok then util.die("%s", tostring(e)) end
