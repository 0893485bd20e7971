-- copas over retls (issue 14): many TLS clients and two TLS servers (one
-- retls, one LuaSec) in one copas loop, each client moving 2 MiB each way
-- with SHA-256 checked at the peer.  LuaSec and retls connections go
-- through the same code: Debian's copas is 1.1.7, which only waits on
-- "timeout", so both are wrapped by old_copas.lua (want -> wait in that
-- direction, as current copas does itself).
--
-- Debian's lua-copas is for Lua 5.1 (and 5.2): this spec runs on LuaJIT
-- and 5.1 (bindings/lua/CMakeLists.txt leaves it out elsewhere).
local copas = require "copas"
local socket = require "socket"
local lssl = require "retls.luasec"
local ssl = require "ssl"
local H = require "helpers"
local F = require "luasec_fixtures"
local old = require "old_copas"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

local SIZE = 2 * 1048576
local CHUNK = 65536

-- Receive n bytes in CHUNK pieces (copas hands the partial back as
-- prefix; whole-megabyte patterns would copy it over and over).
local function receive_n(a, n)
  local parts, got = {}, 0
  while got < n do
    local want = math.min(CHUNK, n - got)
    local s, err = copas.receive(a, want)
    if not s then error("receive: " .. tostring(err)) end
    parts[#parts + 1] = s
    got = got + #s
  end
  return table.concat(parts)
end

describe("copas over retls", function()
  it("6 clients (retls and LuaSec) x 2 servers (retls and LuaSec) in one loop, 2 MiB each way, SHA-256 checked at the peer", function()
    local errors = {}
    local function catch()
      copas.setErrorHandler(function(msg, co)
        errors[#errors + 1] = debug.traceback(co, tostring(msg))
      end)
    end

    -- the servers: read "id\n" and SIZE bytes, answer the SHA-256 of what
    -- arrived and SIZE bytes of their own
    local servers, ports = {}, {}
    for name, lib in pairs({ retls = lssl, luasec = ssl }) do
      local listener = assert(socket.bind("127.0.0.1", 0))
      servers[name] = listener
      ports[name] = select(2, listener:getsockname())
      copas.addserver(listener, function(skt)
        catch()
        local conn = assert(lib.wrap(skt, F.server_params(pki)))
        assert(old.handshake(conn))
        local a = old.wrap(conn)
        local id = assert(copas.receive(a, "*l"))
        local got = receive_n(a, SIZE)
        local digest = F.sha256(got, pki.dir)
        assert(copas.send(a, digest .. "\n"))
        local reply = H.pattern(SIZE, 1000 + tonumber(id))
        assert.are.equal(SIZE, copas.send(a, reply))
        conn:close() -- close_notify, both libraries
      end)
    end

    local clients = {}
    local n = 0
    for _, server in ipairs({ "retls", "luasec" }) do
      for _, libname in ipairs({ "retls", "luasec", "retls" }) do
        n = n + 1
        local id = n
        local data = H.pattern(SIZE, id)
        local c = { id = id, lib = libname, server = server,
                    digest = F.sha256(data, pki.dir),
                    reply_digest = F.sha256(H.pattern(SIZE, 1000 + id), pki.dir) }
        clients[id] = c
        copas.addthread(function()
          catch()
          local sock = socket.tcp()
          sock:settimeout(5)
          assert(sock:connect("127.0.0.1", ports[server]))
          -- a small send buffer: writes stop with "wantwrite" for sure
          assert(sock:setoption("send-buffer-size", 16384))
          local conn = assert((libname == "retls" and lssl or ssl).wrap(sock,
            F.client_params(pki)))
          conn:sni("localhost")
          assert(old.handshake(conn))
          local a = old.wrap(conn)
          assert(copas.send(a, id .. "\n"))
          assert.are.equal(SIZE, copas.send(a, data))
          c.peer_digest = assert(copas.receive(a, "*l"))
          c.got_digest = F.sha256(receive_n(a, SIZE), pki.dir)
          local rest, err = copas.receive(a, "*a")
          c.end_err = rest == nil and err or "more data: " .. #rest
          if libname == "retls" then c.stats = conn:stats() end
          conn:close()
          c.done = true
        end)
      end
    end

    local deadline = socket.gettime() + 120
    local function all_done()
      for _, c in ipairs(clients) do if not c.done then return false end end
      return true
    end
    while not all_done() and #errors == 0 do
      assert(socket.gettime() < deadline, "the copas loop did not finish")
      copas.step(0.1)
    end
    for _, l in pairs(servers) do l:close() end
    assert.are.same({}, errors)

    local wants = 0
    for _, c in ipairs(clients) do
      assert.are.equal(c.digest, c.peer_digest)      -- what the server got
      assert.are.equal(c.reply_digest, c.got_digest) -- what the client got
      assert.are.equal("closed", c.end_err)          -- then close_notify
      if c.stats then
        assert.are.equal(0, c.stats.mismatches)
        assert.are.equal(SIZE + #tostring(c.id) + 1, c.stats.bytes_written)
        assert.are.equal(SIZE + 65, c.stats.bytes_read)
        wants = wants + c.stats.want_write
      end
    end
    -- copas resent after "wantwrite" (through the adapter), many times
    assert.is_true(wants > 0)
  end)
end)
