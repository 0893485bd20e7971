-- tests/lua/memcheck.lua - run under valgrind by CTest (lua_valgrind_*):
--   valgrind --leak-check=full --errors-for-leak-kinds=definite \
--     lua5.4 memcheck.lua '<src>/bindings/lua/?.lua' '<build>/lua/?.so'
-- Walks every path where the Lua binding allocates or frees: connections
-- collected with a write pending, contexts dropped before their
-- connections, each error path of the typemaps (the read buffer, the
-- error objects), memory mode, renegotiation and KeyUpdate, close and
-- __gc.  The script ends normally, so lua_close() finalizes everything
-- still alive: whatever valgrind then calls "definitely lost" is a leak.
-- It also asserts what it does, so it is a test by itself.
package.path = (arg[1] or "../../bindings/lua/?.lua") .. ";" .. package.path
package.cpath = (arg[2] or "../../build/lua/?.so") .. ";" .. package.cpath

local retls = require "retls"

local function raised(f, ...)
  local ok, err = pcall(f, ...)
  if ok then return nil end
  return err
end

local function drain(conn)
  local out = {}
  while true do
    local ok, r = pcall(conn.read, conn, 65536)
    if not ok then
      assert(r == retls.WantRead, tostring(r))
      return table.concat(out)
    end
    out[#out + 1] = r
  end
end

local function flush_through(w, r, got)
  for _ = 1, 10000 do
    got[#got + 1] = drain(r)
    local ok, n = pcall(w.flush, w)
    if ok then return n end
    assert(n == retls.WantWrite, tostring(n))
  end
  error("flush made no progress")
end

-- Contexts are shared: SSL_CTX_new costs about a second under valgrind.
local dir = os.tmpname()
os.remove(dir)
assert(os.execute(("mkdir %s && %s req -x509 -newkey ec -pkeyopt " ..
  "ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -days 1 -keyout " ..
  "%s/key.pem -out %s/cert.pem 2>/dev/null"):format(dir,
  os.getenv("RETLS_OPENSSL") or "openssl", dir, dir)))
local CCTX = retls.context{ verify = false }
local SCTX = retls.context{ role = "server", certfile = dir .. "/cert.pem",
  keyfile = dir .. "/key.pem" }
os.remove(dir .. "/cert.pem")
os.remove(dir .. "/key.pem")
os.remove(dir)
local function pair(opts) return retls.pair(CCTX, SCTX, opts) end

local checks = 0
local function check(cond, what)
  assert(cond, what)
  checks = checks + 1
end

-- 1. GC safety: the written string is collected while the write is pending.
do
  local client, server = pair{ capacity = 4096 }
  local size = 100000
  do
    local data = ("0123456789"):rep(size / 10)
    check(raised(client.write, client, data) == retls.WantWrite, "WantWrite")
  end
  collectgarbage("collect")
  collectgarbage("collect")
  local got = {}
  check(flush_through(client, server, got) == size, "flush")
  got[#got + 1] = drain(server)
  check(table.concat(got) == ("0123456789"):rep(size / 10), "bytes once")
end

-- 2. Connections collected with a write pending (pair and memory mode),
-- and a context dropped before its connections.
for _ = 1, 5 do
  local client, server = pair{ capacity = 1024 }
  check(raised(client.write, client, ("x"):rep(10000)) == retls.WantWrite, "pending")
  local m = retls.wrap(CCTX, nil, { capacity = 1024 })
  check(raised(m.write, m, ("y"):rep(10000)) == retls.WantRead, "memory pending")
end
collectgarbage("collect")
collectgarbage("collect")

-- 3. Every error path of the typemaps and the Lua layer.
do
  local client, server = pair{ capacity = 1024 }
  check(raised(client.read, client, 100) == retls.WantRead, "read: buffer freed on WantRead")
  check(raised(client.read, client, -1).kind == "arg", "read size")
  check(raised(client.read, client, "x").kind == "arg", "read type")
  check(raised(client.write, client, {}).kind == "arg", "write type")
  check(raised(client.bio_read, client, 10).kind == "arg", "bio_read on a pair")
  check(raised(client.write, client, ("z"):rep(5000)) == retls.WantWrite, "full")
  check(raised(client.write, client, "other").kind == "retry_mismatch", "mismatch")
  check(select(2, client:trywrite("other")):find("flush", 1, true), "trywrite")
  check(raised(client.close, client).kind == "write_pending", "close refuses")
  client:close("discard")
  check(raised(client.write, client, "x").kind == "closed", "closed")
  check(raised(server.read, server).kind == "eof", "eof")
  check(raised(retls.context, { cafile = "/nonexistent" }).kind == "arg", "ctx error")
  check(raised(retls.context, { bogus = 1 }).kind == "arg", "unknown option")
  check(raised(retls.pair, SCTX).kind == "arg", "pair roles")
  local verifying = retls.context{}
  check(raised(retls.wrap, verifying, nil).kind == "arg", "needs hostname")
  check(raised(retls.wrap, verifying, 999, { server_hostname = "x" }).kind == "arg", "bad fd")
end

-- 4. Memory mode by hand, against a server without a certificate: the
-- handshake fails (the error path of a handshake), with info and stats.
do
  local c = retls.wrap(CCTX, nil)
  local s = retls.wrap(retls.context{ role = "server", alpn = { "h2" } }, nil)
  local err
  for _ = 1, 10 do
    local e1 = raised(c.handshake, c)
    local d = c:bio_read()
    if #d > 0 then s:bio_write(d) end
    local e2 = raised(s.handshake, s)
    d = s:bio_read()
    if #d > 0 then c:bio_write(d) end
    err = (e1 ~= retls.WantRead and e1) or (e2 ~= retls.WantRead and e2)
    if err then break end
  end
  check(err and err.kind == "ssl", "no certificate: " .. tostring(err))
  local info = c:info()
  check(info.peer_certificate == nil, "no peer certificate")
  check(type(c:stats().writes) == "number", "stats")
end

-- 5. Renegotiation (TLS 1.2) and KeyUpdate (TLS 1.3) with pending writes.
do
  local client, server = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2" })
  client:renegotiate()
  check(raised(client.write, client, "hello") == retls.WantRead, "renegotiation WantRead")
  local got = {}
  for _ = 1, 10 do
    got[#got + 1] = drain(server)
    if pcall(client.flush, client) then break end
  end
  got[#got + 1] = drain(server)
  check(table.concat(got) == "hello", "after renegotiation")
  local c13, s13 = pair{ capacity = 512 }
  c13:key_update(true)
  check(raised(c13.write, c13, ("k"):rep(2000)) == retls.WantWrite, "key update, full")
  got = {}
  flush_through(c13, s13, got)
  got[#got + 1] = drain(s13)
  check(table.concat(got) == ("k"):rep(2000), "after key update")
  check(#c13:info().peer_certificate > 0, "peer certificate DER")
end

-- 6. Many short-lived objects, then everything left to lua_close().
for i = 1, 10 do
  local c, s = pair()
  c:write("m" .. i)
  assert(s:read() == "m" .. i)
  if i % 2 == 0 then c:close() end
end
local keep_alive = { pair{ capacity = 1024 } }
check(raised(keep_alive[1].write, keep_alive[1], ("w"):rep(4000)) == retls.WantWrite,
  "left pending for lua_close")

-- 7. LuaSec's methods (issue 14): receive()'s read-ahead buffer collected
-- with its connection and left to lua_close(), send()'s error results,
-- a params error from retls.luasec.
do
  for i = 1, 3 do
    local c, s = pair()
    check(c:send("line " .. i .. "\nrest") == 11, "LuaSec send")
    check(s:receive("*l") == "line " .. i, "receive a line")
    check(s:dirty(), "the rest is read ahead")
    if i == 2 then s:close() end
  end
  collectgarbage("collect")
  collectgarbage("collect")
  local c, s = pair{ capacity = 1024 }
  local n, err, last = c:send(("w"):rep(40000))
  check(n == nil and err == "wantwrite" and last == 0, "send stops with wantwrite")
  n, err = c:send("other")
  check(n == nil and err:find("retry presented", 1, true), "mismatch result")
  s:settimeout(0)
  check(select(2, s:receive(1e9)) == "wantread", "receive stops with wantread")
  keep_alive[2] = s -- its read-ahead buffer goes with lua_close()
  local ok, perr = require("retls.luasec").newcontext{ mode = "client", depth = 1 }
  check(ok == nil and perr:find("depth", 1, true), "params error")
end

print(("memcheck.lua: %d checks passed"):format(checks))
