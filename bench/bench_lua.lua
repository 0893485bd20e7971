-- bench_lua.lua - the Lua rows of `./run.sh bench` (issue 9).  Each mode
-- prints ONE JSON line on stdout; the harness (bench/) turns the lines of
-- all rows of one run into ratios.  Runs on Lua 5.1, 5.3, 5.4 and LuaJIT.
--
--   <lua> bench/bench_lua.lua mem <size> <seconds>
--       {"writes":N,"seconds":S,"cpu_seconds":C,"ct_one_write":BYTES}
--       retls client and server in memory mode in this process, handshake
--       untimed, then a timed loop of conn:write(size bytes) followed by
--       conn:bio_read() (everything waiting, discarded), run for <seconds>
--       of this process's CPU time (os.clock(), as bench_c.c counts it:
--       other processes preempting this one stay out of the ratio); wall
--       time is in "seconds".  ct_one_write is
--       the ciphertext of one more write, checked by the harness against
--       size + 22 * ceil(size / 16384) (TLS 1.3, TLS_AES_128_GCM_SHA256).
--   <lua> bench/bench_lua.lua sock <size> <total_bytes> <host> <port>
--       {"writes":N,"seconds":S}
--       blocking retls.connect to a TLS sink (verification off), handshake
--       untimed, then total_bytes in size-byte conn:write() calls and the
--       close_notify (conn:shutdown()).
--   <lua> bench/bench_lua.lua luasec-sock <size> <total_bytes> <host> <port>
--       the same over LuaSec (require "ssl"): conn:send() and conn:close(),
--       which sends the close_notify.
--   <lua> bench/bench_lua.lua retls-send <size> <total_bytes> <host> <port>
--       the luasec-sock loop, code unchanged, over require "retls.luasec":
--       retls' LuaSec face (conn:send) against LuaSec's own.
--   <lua> bench/bench_lua.lua copas-retls <size> <total_bytes> <host> <port>
--   <lua> bench/bench_lua.lua copas-luasec <size> <total_bytes> <host> <port>
--       {"writes":N,"seconds":S}
--       the same stream from a copas loop (copas.send), over retls
--       (require "retls.luasec") or LuaSec (require "ssl"): see "copas".
--
-- The clock is LuaSocket's socket.gettime() (wall time; os.clock() would
-- miss the time a blocking send waits).  The socket rows stop it once the
-- close_notify is handed to the kernel, for both libraries alike; the
-- sink confirms the byte count afterwards.  Neither client may close its
-- socket with unread bytes in it (the server's TLS 1.3 session tickets):
-- the kernel would answer with a reset and the sink lose the data still
-- in flight.  So, untimed, the retls client reads until the sink closes,
-- and the LuaSec client (whose close() sends the close_notify and closes
-- the socket at once) reads the tickets right after the handshake.
--
-- Environment: LUA_CPATH=<build>/lua/?.so;;  LUA_PATH=<src>/bindings/lua/?.lua;;
local socket = require "socket"
local now = socket.gettime

local CIPHERSUITE = "TLS_AES_128_GCM_SHA256"

local function usage()
  io.stderr:write([[
usage: bench_lua.lua mem <size> <seconds>
       bench_lua.lua sock <size> <total_bytes> <host> <port>
       bench_lua.lua luasec-sock <size> <total_bytes> <host> <port>
       bench_lua.lua retls-send <size> <total_bytes> <host> <port>
       bench_lua.lua copas-retls <size> <total_bytes> <host> <port>
       bench_lua.lua copas-luasec <size> <total_bytes> <host> <port>
]])
  os.exit(2)
end

local function number(s)
  local n = tonumber(s)
  if not n or n < 1 or n ~= math.floor(n) then usage() end
  return n
end

local function json(fields)
  local parts = {}
  for _, kv in ipairs(fields) do
    local fmt = kv[1]:find("seconds") and '"%s":%.6f' or '"%s":%d'
    parts[#parts + 1] = fmt:format(kv[1], kv[2])
  end
  io.stdout:write("{", table.concat(parts, ","), "}\n")
end

-- Writes per timed batch: the clock is read once a batch, about every 64 KiB.
local function batch_of(size)
  return math.max(1, math.floor(65536 / size))
end

-- ---- memory mode ------------------------------------------------------------
local function mem(size, seconds)
  local retls = require "retls"
  local cctx = retls.context{ verify = false, min_version = "TLSv1.3",
    ciphersuites = CIPHERSUITE }
  local sctx = retls.context{ role = "server", min_version = "TLSv1.3",
    ciphersuites = CIPHERSUITE }
  -- A throwaway certificate made in memory by the core (what retls.pair()
  -- uses), so the bench needs no files.
  sctx._c:use_selfsigned("localhost")
  -- unbounded outgoing buffers (the default), as ssl.MemoryBIO's
  local client, server = retls.wrap(cctx, nil), retls.wrap(sctx, nil)

  -- Untimed handshake: move ciphertext both ways until both ends are done.
  local done = {}
  for _ = 1, 100 do
    for i, pair in ipairs({ { client, server }, { server, client } }) do
      local me, peer = pair[1], pair[2]
      if not done[i] then
        local ok, err = pcall(me.handshake, me)
        if ok then
          done[i] = true
        elseif err ~= retls.WantRead and err ~= retls.WantWrite then
          error(err, 0)
        end
      end
      local ct = me:bio_read()
      if #ct > 0 then peer:bio_write(ct) end
    end
    if done[1] and done[2] then break end
  end
  assert(done[1] and done[2], "memory handshake did not finish")
  assert(client:info().cipher == CIPHERSUITE, client:info().cipher)

  local data = ("x"):rep(size)
  local batch = batch_of(size)
  local writes = 0
  local t0, c0 = now(), os.clock()
  local cpu
  repeat
    for _ = 1, batch do
      client:write(data)
      client:bio_read()
    end
    writes = writes + batch
    cpu = os.clock() - c0
  until cpu >= seconds
  local t1 = now()

  client:write(data)
  local ct = #client:bio_read()
  json({ { "writes", writes }, { "seconds", t1 - t0 }, { "cpu_seconds", cpu },
         { "ct_one_write", ct } })
end

-- ---- sockets ----------------------------------------------------------------
local function sock(size, total, host, port)
  local retls = require "retls"
  local ctx = retls.context{ verify = false, min_version = "TLSv1.3",
    ciphersuites = CIPHERSUITE }
  local conn = retls.connect(host, port, ctx, { timeout = 60 })
  conn:handshake()
  local data = ("x"):rep(size)
  local writes = math.ceil(total / size)
  local last = total - (writes - 1) * size
  local t0 = now()
  for _ = 1, writes - 1 do conn:write(data) end
  conn:write(last == size and data or data:sub(1, last))
  conn:shutdown()
  local t1 = now()
  -- untimed: wait for the sink's close (close_notify or end of stream)
  while pcall(conn.read, conn) do end
  conn:close()
  json({ { "writes", writes }, { "seconds", t1 - t0 } })
end

local function luasec_sock(size, total, host, port, lib)
  local ssl = require(lib or "ssl")
  local tcp = assert(socket.tcp())
  assert(tcp:connect(host, port))
  tcp:settimeout(60)
  local conn = assert(ssl.wrap(tcp, { mode = "client", protocol = "tlsv1_3",
    verify = "none", ciphersuites = CIPHERSUITE }))
  assert(conn:dohandshake())
  -- untimed: take the session tickets in (see the top of this file)
  conn:settimeout(0.2)
  local got, err = conn:receive(1)
  assert(got == nil and (err == "timeout" or err == "wantread"), err)
  conn:settimeout(60)
  local data = ("x"):rep(size)
  local writes = math.ceil(total / size)
  local last = total - (writes - 1) * size
  local t0 = now()
  for _ = 1, writes - 1 do
    local n, err = conn:send(data)
    if n ~= size then error("LuaSec send: " .. tostring(err)) end
  end
  assert(conn:send(last == size and data or data:sub(1, last)))
  conn:close() -- SSL_shutdown (the close_notify), then the socket
  local t1 = now()
  json({ { "writes", writes }, { "seconds", t1 - t0 } })
end

-- ---- copas ------------------------------------------------------------------
-- copas-retls / copas-luasec: one copas loop, the same Lua (LuaJIT: Debian's
-- copas 1.1.7 loads on 5.1 only), the same code for both libraries: a
-- client wrapped by require "retls.luasec" or by require "ssl" (LuaSec),
-- total_bytes in size-byte copas.send() calls, then conn:close() (the
-- close_notify, both libraries).  Debian's copas waits only on "timeout",
-- so both connections go through tests/lua/old_copas.lua (want -> wait in
-- that direction), the same adapter for both.  The session tickets are
-- read untimed after the handshake (see the top of this file).
local function copas_stream(lib, size, total, host, port)
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  package.path = here .. "/../tests/lua/?.lua;" .. package.path
  local copas = require "copas"
  local old = require "old_copas"
  local ssl = require(lib)
  local tcp = assert(socket.tcp())
  tcp:settimeout(60)
  assert(tcp:connect(host, port))
  local conn = assert(ssl.wrap(tcp, { mode = "client", protocol = "tlsv1_3",
    verify = "none", ciphersuites = CIPHERSUITE }))
  conn:settimeout(60)
  assert(conn:dohandshake())
  conn:settimeout(0.2)
  local got, err = conn:receive(1)
  assert(got == nil and (err == "timeout" or err == "wantread"), err)
  local data = ("x"):rep(size)
  local writes = math.ceil(total / size)
  local last = total - (writes - 1) * size
  local t0, t1, failure
  copas.addthread(function()
    copas.setErrorHandler(function(msg) failure = tostring(msg) end)
    local a = old.wrap(conn) -- settimeout(0)
    t0 = now()
    for _ = 1, writes - 1 do
      local n, serr = copas.send(a, data)
      if n ~= size then error("copas.send: " .. tostring(serr)) end
    end
    assert(copas.send(a, last == size and data or data:sub(1, last)))
    conn:close() -- the close_notify, then the socket
    t1 = now()
  end)
  while not t1 and not failure do copas.step(1) end
  if failure then error(failure, 0) end
  json({ { "writes", writes }, { "seconds", t1 - t0 } })
end

local mode = arg[1]
if mode == "mem" and #arg == 3 then
  mem(number(arg[2]), tonumber(arg[3]) or usage())
elseif mode == "sock" and #arg == 5 then
  sock(number(arg[2]), number(arg[3]), arg[4], number(arg[5]))
elseif mode == "luasec-sock" and #arg == 5 then
  luasec_sock(number(arg[2]), number(arg[3]), arg[4], number(arg[5]))
elseif mode == "retls-send" and #arg == 5 then
  luasec_sock(number(arg[2]), number(arg[3]), arg[4], number(arg[5]), "retls.luasec")
elseif mode == "copas-retls" and #arg == 5 then
  copas_stream("retls.luasec", number(arg[2]), number(arg[3]), arg[4], number(arg[5]))
elseif mode == "copas-luasec" and #arg == 5 then
  copas_stream("ssl", number(arg[2]), number(arg[3]), arg[4], number(arg[5]))
else
  usage()
end
