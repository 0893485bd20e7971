-- tests/lua/helpers.lua - what several specs share: pumping a pair until a
-- condition holds, draining a peer, a throwaway certificate, and an
-- `openssl s_server` started and stopped by the spec that needs it.
local retls = require "retls"

local H = {}

-- n deterministic pseudo-random bytes, different per seed: a spec can
-- drop its string and make the same bytes again to compare.
function H.pattern(n, seed)
  local x = (seed or 0) * 7919 + 12345
  local parts, chunk = {}, {}
  for i = 1, n do
    x = (x * 69069 + 1) % 4294967296 -- exact in doubles too (5.1, LuaJIT)
    chunk[#chunk + 1] = math.floor(x / 16777216) % 256
    if #chunk == 4096 or i == n then
      parts[#parts + 1] = string.char((table.unpack or unpack)(chunk))
      chunk = {}
    end
  end
  return table.concat(parts)
end

-- The error value f(...) raised, or nil and f's first result.
function H.raised(f, ...)
  local ok, err = pcall(f, ...)
  if ok then return nil, err end
  return err
end

-- Everything readable from conn right now (until WantRead).
function H.drain(conn, limit)
  local out = {}
  while true do
    local ok, r = pcall(conn.read, conn, limit or 1048576)
    if not ok then
      if r == retls.WantRead then return table.concat(out) end
      error(r, 0)
    end
    out[#out + 1] = r
  end
end

-- flush() writer until its pending write is done, draining reader into
-- got (a table of strings) whenever the transport is full.  Returns the
-- bytes the final flush acknowledged and the number of flush calls.
function H.flush_through(writer, reader, got, rounds)
  for i = 1, rounds or 10000 do
    got[#got + 1] = H.drain(reader)
    local ok, n = pcall(writer.flush, writer)
    if ok then return n, i end
    if n ~= retls.WantWrite then error(n, 0) end
  end
  error("flush made no progress")
end

-- Memory mode: move the ciphertext a has for b; returns it.
function H.relay(a, b)
  local data = a:bio_read()
  if #data > 0 then b:bio_write(data) end
  return data
end

-- Drive two memory connections through the handshake by hand.
function H.handshake_memory(a, b, rounds)
  local done = { false, false }
  for _ = 1, rounds or 20 do
    for i, pair in ipairs({ { a, b }, { b, a } }) do
      local me, peer = pair[1], pair[2]
      if not done[i] then
        local err = H.raised(me.handshake, me)
        if err == nil then
          done[i] = true
        elseif err ~= retls.WantRead then
          error(err, 0)
        end
      end
      H.relay(me, peer)
    end
    if done[1] and done[2] then return end
  end
  error("memory handshake did not finish")
end

-- os.execute() returns 0 on Lua 5.1 / LuaJIT and true on 5.2+.
function H.sh_ok(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

-- Run a shell command, return its output; raise if it failed.  The exit
-- code travels in the output because io.popen():close() does not report
-- it on Lua 5.1 / LuaJIT.
function H.run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"exit=$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)exit=(%d+)%s*$")
  if tonumber(code) ~= 0 then
    error(("command failed (%s): %s\n%s"):format(tostring(code), cmd, out))
  end
  return body
end

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
H.readfile = readfile

local OPENSSL = os.getenv("RETLS_OPENSSL") or "openssl"
H.OPENSSL = OPENSSL

-- A fresh directory under /tmp that the caller removes with H.rmdir.
function H.tmpdir()
  local d = H.run("mktemp -d /tmp/retls-lua.XXXXXX"):gsub("%s+$", "")
  return d
end

function H.rmdir(d)
  assert(d:match("^/tmp/retls%-lua%.%w+$"), "refusing to remove " .. d)
  os.execute("rm -rf '" .. d .. "'")
end

-- A throwaway PKI in dir, made with the openssl program: a CA, a server
-- certificate for localhost / 127.0.0.1 signed by it, a client
-- certificate, and an unrelated CA.  Returns a table of file names.
function H.make_pki(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  local function openssl(args) H.run(("cd '%s' && %s %s"):format(dir, OPENSSL, args)) end
  for _, ca in ipairs({ { "ca", "retls test CA" }, { "other-ca", "unrelated CA" } }) do
    openssl(("req -x509 %s -keyout %s.key -out %s.pem -days 1 -subj '/CN=%s'")
      :format(ec, ca[1], ca[1], ca[2]))
  end
  for _, leaf in ipairs({
    { "server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" },
    { "client", "retls-test-client", "extendedKeyUsage=clientAuth\n" },
  }) do
    local name = leaf[1]
    openssl(("req %s -keyout %s.key -out %s.csr -subj '/CN=%s'"):format(ec, name, name, leaf[2]))
    local f = assert(io.open(dir .. "/" .. name .. ".ext", "w"))
    f:write(leaf[3])
    f:close()
    openssl(("x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial " ..
      "-days 1 -extfile %s.ext -out %s.pem"):format(name, name, name))
  end
  local function p(name) return dir .. "/" .. name end
  return {
    dir = dir, ca = p("ca.pem"), other_ca = p("other-ca.pem"),
    server_cert = p("server.pem"), server_key = p("server.key"),
    client_cert = p("client.pem"), client_key = p("client.key"),
  }
end

local socket = require "socket"

-- Start `openssl s_server` on 127.0.0.1 with an OS-chosen port.  It is
-- bounded by timeout(1) so it can never outlive the run, and prints its
-- pid first so stop() ends exactly that process.
-- Returns { port, pid, stop = function, output = function }.
local servers = 0
function H.s_server(dir, cert, key, extra)
  -- fresh file names: an earlier server's ACCEPT line must never be read
  servers = servers + 1
  local out = ("%s/s_server-%d-%d.out"):format(dir, servers, os.time())
  local err = out:gsub("%.out$", ".err")
  local cmd = ("sh -c 'echo $$; exec timeout 60 %s s_server -accept 127.0.0.1:0 " ..
    "-cert %s -key %s -naccept 1 %s </dev/null >%s 2>%s' &"):format(
    OPENSSL, cert, key, extra or "", out, err)
  local p = assert(io.popen(cmd))
  local pid = assert(tonumber(p:read("*l")), "s_server did not start")
  p:close()
  local port
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    local text = readfile(out) or ""
    port = tonumber(text:match("ACCEPT 127%.0%.0%.1:(%d+)"))
    if port then break end
    socket.sleep(0.02)
  end
  local server = { pid = pid, port = port }
  function server.stop()
    os.execute(("kill %d 2>/dev/null"):format(pid))
  end
  function server.output() return readfile(out) or "", readfile(err) or "" end
  if not port then
    server.stop()
    error("s_server did not report its port: " .. (readfile(err) or ""))
  end
  return server
end

-- A client and a server connection over a real TCP connection on
-- 127.0.0.1 (LuaSocket sockets, non-blocking as LuaSocket keeps them),
-- handshake done by a socket.select loop.  Returns a table with client,
-- server, their sockets a and b, and close().
function H.tcp_pair(cctx, sctx, opts)
  local listener = assert(socket.bind("127.0.0.1", 0))
  local _, port = listener:getsockname()
  local a = socket.tcp()
  a:settimeout(5)
  assert(a:connect("127.0.0.1", port))
  listener:settimeout(5)
  local b = assert(listener:accept())
  listener:close()
  a:settimeout(0)
  b:settimeout(0)
  local p = { a = a, b = b }
  p.client = retls.wrap(cctx or retls.context{ verify = false }, a, opts)
  p.server = retls.wrap(sctx, b)
  function p.close()
    for _, c in ipairs({ p.client, p.server }) do pcall(c.close, c, "discard") end
    a:close()
    b:close()
  end
  H.select_handshake({ p.client, p.server })
  return p
end

-- Drive the handshakes of connections on sockets with socket.select until
-- all are done (bounded: 10 s).
function H.select_handshake(conns)
  local done, left = {}, #conns
  local deadline = socket.gettime() + 10
  while left > 0 do
    assert(socket.gettime() < deadline, "handshake over sockets timed out")
    local r, w = {}, {}
    for i, c in ipairs(conns) do
      if not done[i] then
        local err = H.raised(c.handshake, c)
        if err == nil then
          done[i], left = true, left - 1
        elseif err == retls.WantRead then
          r[#r + 1] = c
        elseif err == retls.WantWrite then
          w[#w + 1] = c
        else
          error(err, 0)
        end
      end
    end
    if left > 0 then socket.select(r, w, 0.5) end
  end
end

-- Wait until a process is gone (bounded).
function H.wait_exit(pid, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  while socket.gettime() < deadline do
    if not H.sh_ok(("kill -0 %d 2>/dev/null"):format(pid)) then return true end
    socket.sleep(0.02)
  end
  return false
end

return H
