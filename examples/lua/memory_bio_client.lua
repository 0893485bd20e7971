#!/usr/bin/env lua
--[[
memory_bio_client.lua - a memory-BIO client: the script moves the
ciphertext itself.

What it shows: retls.wrap(ctx, nil) has no socket.  TLS records the
connection produces are taken with conn:bio_read() and sent by the script;
bytes the script receives are fed in with conn:bio_write().  WantWrite
means "the outgoing buffer is full: move it", WantRead means "feed me the
peer's bytes".  The same loop works over anything that carries bytes (a
LuaSocket TCP socket here; a pipe, an event loop's stream, a test
harness...).

It sends --size bytes of random data (default 1M: more than the 64 KiB
outgoing buffer it asks for with --capacity, so the write stops with
WantWrite and is finished with flush(); without a capacity, memory mode is
unbounded), says goodbye with close_notify, prints the server's reply and the
SHA-256 of what it sent.  Against examples/python/digest_server.py the
reply is that server's SHA-256 of what it received.

Run:
    python3 examples/python/digest_server.py --cert cert.pem --key key.pem
    lua5.4 examples/lua/memory_bio_client.lua --cafile cert.pem \
        --servername localhost 127.0.0.1 PORT
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local retls = require "retls"
local socket = require "socket"
local util = require "example_util"  -- argument parsing, data, SHA-256

local o = util.parse_args(arg, {
  size = "1M", cafile = false, servername = false, insecure = "flag",
  timeout = "30", capacity = "65536",
}, "HOST PORT")
local host, port, timeout = o[1], tonumber(o[2]), tonumber(o.timeout)

local ctx = retls.context { verify = not o.insecure, cafile = o.cafile or nil }
local capacity = tonumber(o.capacity)
local conn = retls.wrap(ctx, nil, { server_hostname = o.servername or host,
                                    capacity = capacity > 0 and capacity or nil })
local sock = assert(socket.tcp())
sock:settimeout(timeout)
local ok, err = sock:connect(host, port)
if not ok then util.die("cannot connect to %s:%s: %s", host, port, err) end
local moved_out, moved_in = 0, 0

-- Move every TLS record the connection produced to the server.
local function send_records()
  while true do
    local records = conn:bio_read()
    if records == "" then return end
    local sent, e = sock:send(records)
    if not sent then util.die("sending to the server: %s", e) end
    moved_out = moved_out + #records
  end
end

-- Feed the server's next bytes into the connection.
local function receive_records()
  local r = socket.select({ sock }, nil, timeout)
  if #r == 0 then util.die("timeout: the server sent nothing for %s s", timeout) end
  sock:settimeout(0)  -- take what is there, do not wait for 64 KiB
  local data, e, partial = sock:receive(65536)
  sock:settimeout(timeout)
  data = data or partial
  if data == "" and e == "closed" then
    conn:bio_write_eof()  -- the next read reports how it ended
    return
  end
  conn:bio_write(data)
  moved_in = moved_in + #data
end

-- Run conn[method](...) until it completes, moving ciphertext as it asks.
local function drive(method, ...)
  while true do
    local ok, res = pcall(conn[method], conn, ...)
    if ok then
      send_records()  -- e.g. the records a write just produced
      return res
    elseif res == retls.WantWrite then
      send_records()     -- outgoing buffer full: empty it
    elseif res == retls.WantRead then
      send_records()     -- our flight first (ClientHello...)
      receive_records()  -- then the server's answer
    else
      error(res, 0)
    end
  end
end

local function main()
  drive("handshake")
  local info = conn:info()
  io.stderr:write(("handshake: %s %s\n"):format(info.version, info.cipher))

  local data = util.random_data(util.size(o.size))
  local ok, e = pcall(conn.write, conn, data)
  if ok then
    send_records()
  elseif e == retls.WantWrite or e == retls.WantRead then
    -- The connection kept the bytes; finish them with flush() while
    -- moving records out.  We never present `data` again.
    io.stderr:write(("write(%d) stopped: WantWrite, pending_write = %d; "
      .. "finishing with flush()\n"):format(#data, conn:pending_write()))
    drive("flush")
  else
    error(e, 0)
  end
  drive("shutdown")

  local reply = {}
  while true do
    local ok, chunk = pcall(drive, "read", 65536)
    if ok then
      reply[#reply + 1] = chunk
    elseif type(chunk) == "table" and chunk.kind == "zero_return" then
      break
    else
      error(chunk, 0)
    end
  end
  local st = conn:stats()
  print("reply: " .. table.concat(reply):gsub("%s+$", ""))
  print(("sent=%d sha256=%s ciphertext_out=%d ciphertext_in=%d want_write=%d "
    .. "want_read=%d retries=%d mismatches=%d"):format(#data,
    util.sha256(data), moved_out, moved_in, st.want_write, st.want_read,
    st.retries, st.mismatches))
  sock:close()
end

local ok, e = pcall(main)
if not ok then util.die("%s", tostring(e)) end
