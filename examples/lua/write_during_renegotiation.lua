#!/usr/bin/env lua
--[[
write_during_renegotiation.lua - a client keeps writing while the server
renegotiates (TLS 1.2) or sends a KeyUpdate (TLS 1.3).

What it shows, step by step, over an in-process retls.pair (so every step
happens in a fixed order and the output is the same on every run):

TLS 1.2: the server calls renegotiate() and sends a HelloRequest.  The
  client's next read() sees it and answers with a ClientHello.  The
  client's next write() then raises retls.WantRead: OpenSSL cannot send
  application data until the server's half of the new handshake arrived,
  although the transport is perfectly writable.  A loop that only waits for
  writability after a write would hang here; the right reaction is to wait
  for readability and flush().

TLS 1.3: the server calls key_update(true).  The client's read() takes the
  KeyUpdate, and its next write() succeeds at once, sending the client's own
  KeyUpdate ahead of the data.  With OpenSSL 3.0 a KeyUpdate never makes a
  write wait for the peer: WantRead during write does not happen in TLS 1.3
  (the interop suite sees the same against openssl s_server).

At the end the server must have received every byte exactly once, in
order; exit status 0 only if so.  The Python twin is
examples/python/write_during_renegotiation.py.

Run:  lua5.4 examples/lua/write_during_renegotiation.lua
]]
local retls = require "retls"

local CHUNK = 32 * 1024

local function say(who, what) print(("  %-7s %s"):format(who, what)) end

-- Deterministic, distinct chunks (no randomness needed to tell them apart).
local counter = 0
local function chunk()
  counter = counter + 1
  return (("%08d"):format(counter)):rep(CHUNK / 8)
end

-- Everything readable now ("" if nothing).
local function drain(conn)
  local got = {}
  while true do
    local ok, s = pcall(conn.read, conn, 65536)
    if not ok then
      if s == retls.WantRead then return table.concat(got) end
      error(s, 0)
    end
    got[#got + 1] = s
  end
end

local function run(version)
  print(version .. ":")
  local client_ctx = retls.context {
    verify = false, min_version = version, max_version = version,
  }
  local client, server = retls.pair(client_ctx, nil, { capacity = 1024 * 1024 })
  say("", "handshake done: " .. client:info().version)
  local sent, received = {}, {}

  local function client_write(data)
    local ok, e = pcall(client.write, client, data)
    if ok then
      say("client", ("write(%d) -> ok"):format(#data))
    elseif e == retls.WantRead then
      say("client", ("write(%d) -> WantRead (pending_write = %d)")
        :format(#data, client:pending_write()))
    else
      error(e, 0)
    end
    sent[#sent + 1] = data  -- taken now or pending in the connection
  end

  client_write(chunk())
  received[#received + 1] = drain(server)

  local what
  if version == "TLSv1.2" then
    server:renegotiate()
    what = "renegotiate(): HelloRequest"
  else
    server:key_update(true)
    what = "key_update(true): KeyUpdate"
  end
  local ok, e = pcall(server.handshake, server)
  if ok then
    say("server", what .. " sent")
  elseif e == retls.WantRead then
    say("server", what .. " sent; waits for the client (WantRead)")
  else
    error(e, 0)
  end

  ok, e = pcall(client.read, client, 65536)
  if ok then
    say("client", ("read() -> %d bytes"):format(#e))
  elseif e == retls.WantRead then
    say("client", "read() took the server's message -> WantRead (no application data)")
  else
    error(e, 0)
  end

  client_write(chunk())
  -- Both ends take turns until the client's pending write is done.
  for _ = 1, 20 do
    if client:pending_write() == 0 then break end
    received[#received + 1] = drain(server)
    say("server", "read() -> processed the client's handshake messages")
    local ok2, res = pcall(client.flush, client)
    if ok2 then
      say("client", ("flush() -> ok, %d bytes"):format(res))
    elseif res == retls.WantRead then
      say("client", "flush() -> WantRead again (waits for the server)")
    else
      error(res, 0)
    end
  end
  client_write(chunk())
  received[#received + 1] = drain(server)

  local st = client:stats()
  local s, r = table.concat(sent), table.concat(received)
  local same = s == r
  say("result", ("server received %d of %d bytes, %s; client stats: "
    .. "want_read=%d want_write=%d retries=%d mismatches=%d"):format(#r, #s,
    same and "identical" or "DIFFERENT", st.want_read, st.want_write,
    st.retries, st.mismatches))
  return same, st.want_read
end

local ok, res = pcall(function()
  local ok12, wr12 = run("TLSv1.2")
  local ok13, wr13 = run("TLSv1.3")
  print(("summary: tls12_want_read=%d tls13_want_read=%d data_ok=%d")
    :format(wr12, wr13, (ok12 and ok13) and 1 or 0))
  return ok12 and ok13
end)
if not ok then
  io.stderr:write("error: ", tostring(res), "\n")
  os.exit(1)
end
os.exit(res and 0 or 1)
