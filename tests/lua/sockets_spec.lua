-- Real sockets on 127.0.0.1: a non-blocking socket.select loop against
-- `openssl s_server`, the retry contract over TCP, retls.connect, and a
-- renegotiation against s_server.  Every server is started and stopped
-- here, every wait is bounded.
--
-- LuaSocket keeps its sockets non-blocking at the OS level (it waits in
-- its own calls), so a connection over a wrapped LuaSocket object always
-- behaves as non-blocking: operations raise WantRead / WantWrite and the
-- loop waits in socket.select(), which accepts connections directly
-- (they have getfd() and dirty()).
local retls = require "retls"
local socket = require "socket"
local H = require "helpers"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

local function client_ctx(opts)
  opts = opts or {}
  opts.cafile = pki.ca
  return retls.context(opts)
end

-- A LuaSocket connected to 127.0.0.1:port, non-blocking.
local function tcp_connect(port)
  local sock = socket.tcp()
  sock:settimeout(5)
  assert(sock:connect("127.0.0.1", port))
  sock:settimeout(0)
  return sock
end

-- Lines of printable text (s_server -rev reverses each line).
local function make_lines(count, width)
  local lines, pat = {}, H.pattern(count * width, 51)
  for i = 1, count do
    lines[i] = (pat:sub((i - 1) * width + 1, i * width):gsub(".", function(c)
      return string.char(97 + c:byte() % 26)
    end))
  end
  return lines
end

describe("a non-blocking client against openssl s_server", function()
  local server
  after_each(function()
    if server then server.stop() server = nil end
  end)

  it("moves every byte once through a socket.select loop (s_server -rev echoes each line reversed)", function()
    server = H.s_server(pki.dir, pki.server_cert, pki.server_key, "-rev")
    local sock = tcp_connect(server.port)
    local conn = retls.wrap(client_ctx(), sock, { server_hostname = "localhost" })
    assert.are.equal(sock:getfd(), conn:getfd())
    H.select_handshake({ conn })
    assert.are.equal("TLSv1.3", conn:info().version)
    -- Nothing was sent yet, so nothing can be read: WantRead for sure.
    assert.are.equal(retls.WantRead, H.raised(conn.read, conn))

    local lines = make_lines(4000, 200) -- 804,000 bytes each way
    local expected = {}
    for i, l in ipairs(lines) do expected[i] = l:reverse() .. "\n" end
    expected = table.concat(expected)
    local out = table.concat(lines, "\n") .. "\n"

    local sent, got, got_len = 0, {}, 0
    local pending = nil -- a chunk that raised WantWrite: retried as is
    local wants = { read = 0, write = 0 }
    local deadline = socket.gettime() + 60
    while got_len < #expected do
      assert(socket.gettime() < deadline, "the echo loop timed out")
      local wantw = sent < #out
      local r, w = socket.select({ conn }, wantw and { conn } or {}, 1)
      if w[conn] or (wantw and w[1]) then
        local chunk = pending or out:sub(sent + 1, sent + 16384)
        local err, n = H.raised(conn.write, conn, chunk)
        if err == nil then
          sent, pending = sent + n, nil
        else
          assert.are.equal(retls.WantWrite, err)
          wants.write = wants.write + 1
          pending = chunk
        end
      end
      if r[conn] or r[1] then
        repeat -- read everything decrypted (dirty() would wake select too)
          local err, data = H.raised(conn.read, conn, 65536)
          if err == nil then
            got[#got + 1] = data
            got_len = got_len + #data
          else
            assert.are.equal(retls.WantRead, err)
            wants.read = wants.read + 1
          end
        until err ~= nil or not conn:dirty()
      end
    end
    assert.are.equal(#out, sent)
    assert.are.equal(expected, table.concat(got))
    local st = conn:stats()
    assert.are.equal(#out, st.bytes_written)
    assert.are.equal(#expected, st.bytes_read)
    assert.are.equal(wants.write, st.want_write)
    assert.is_true(conn:shutdown())
    conn:close()
    assert.is_true(sock:getfd() >= 0) -- closing the connection left the socket open
    sock:close()
  end)

  -- Over a socket the next write does not always start the renegotiation
  -- (OpenSSL 3.0 postpones it while its record layer holds unprocessed
  -- bytes; then the next read starts it).  Either way the bytes are kept
  -- and the echo arrives under the new handshake; the deterministic
  -- "write raises WantRead" case is in rekey_spec.lua over a pair.
  it("renegotiates TLS 1.2 with s_server -client_renegotiation inside a select loop", function()
    server = H.s_server(pki.dir, pki.server_cert, pki.server_key, "-rev -client_renegotiation")
    local sock = tcp_connect(server.port)
    local conn = retls.wrap(client_ctx{ max_version = "TLSv1.2" }, sock,
      { server_hostname = "localhost" })
    H.select_handshake({ conn })
    assert.are.equal("TLSv1.2", conn:info().version)
    assert.is_true(conn:renegotiate())
    local first = H.raised(conn.write, conn, "abc\n")
    local deadline = socket.gettime() + 10
    local got = ""
    while got ~= "cba\n" do
      assert(socket.gettime() < deadline, "renegotiation or echo timed out")
      local want = conn:want()
      socket.select(want ~= "write" and { conn } or {}, want == "write" and { conn } or {}, 0.2)
      if conn:pending_write() > 0 then
        local err = H.raised(conn.flush, conn)
        assert.is_true(err == nil or err == retls.WantRead or err == retls.WantWrite)
      else
        local err, data = H.raised(conn.read, conn)
        if err == nil then got = got .. data else assert.are.equal(retls.WantRead, err) end
      end
    end
    if first == retls.WantRead then
      assert.is_true(conn:stats().want_read >= 1)
    else
      assert.is_nil(first)
    end
    assert.are.equal(4, conn:stats().bytes_written)
    assert.are.equal("TLSv1.2", conn:info().version)
    conn:close()
    sock:close()
  end)

  it("retls.connect() makes a blocking connection with a timeout", function()
    server = H.s_server(pki.dir, pki.server_cert, pki.server_key, "-rev")
    local conn = retls.connect("127.0.0.1", server.port, client_ctx(),
      { server_hostname = "localhost", timeout = 10 })
    assert.is_true(conn:getfd() >= 0)
    assert.matches("^retls.connection %(client, fd %d+, handshake pending%)$", tostring(conn))
    assert.is_true(conn:handshake())
    assert.are.equal(6, conn:sendall("hello\n"))
    local got = ""
    while #got < 6 do got = got .. conn:read() end
    assert.are.equal("olleh\n", got)
    assert.is_true(conn:shutdown())
    conn:close()
    assert.are.equal(-1, conn:getfd())
  end)

  it("retls.connect() verifies against the system store by default and fails for a private CA", function()
    server = H.s_server(pki.dir, pki.server_cert, pki.server_key, "-rev")
    local conn = retls.connect("127.0.0.1", server.port, nil,
      { server_hostname = "localhost", timeout = 10 })
    local err = H.raised(conn.handshake, conn)
    assert.are.equal("verify", err.kind)
    assert.matches("unable to get local issuer certificate", err.message)
    conn:close()
  end)
end)

describe("the retry contract over TCP", function()
  it("raises WantWrite when the peer does not read, and the peer gets every byte once after flush()", function()
    local sctx = retls.context{ role = "server", certfile = pki.server_cert, keyfile = pki.server_key }
    local p = H.tcp_pair(nil, sctx)
    -- A small send buffer makes the stop come early (the peer's receive
    -- buffer does not grow while it does not read).
    assert(p.a:setoption("send-buffer-size", 4096))
    local data = H.pattern(1048576, 61)
    local chunks, err = 0, nil
    for _ = 1, 64 do -- up to 64 MiB: far beyond any socket buffer
      err = H.raised(p.client.write, p.client, data)
      if err then break end
      chunks = chunks + 1
    end
    assert.are.equal(retls.WantWrite, err)
    assert.are.equal(#data, p.client:pending_write())
    local got, total = {}, 0
    local deadline = socket.gettime() + 60
    local n
    while true do
      assert(socket.gettime() < deadline, "timed out")
      local r, w = socket.select({ p.server }, { p.client }, 1)
      if r[1] then
        local e, s = H.raised(p.server.read, p.server, 1048576)
        if e == nil then got[#got + 1] = s total = total + #s end
      end
      if w[1] then
        local e
        e, n = H.raised(p.client.flush, p.client)
        if e == nil then break end
        assert.are.equal(retls.WantWrite, e)
      end
    end
    assert.are.equal(#data, n)
    while total < (chunks + 1) * #data do
      assert(socket.gettime() < deadline, "timed out")
      socket.select({ p.server }, nil, 1)
      local e, s = H.raised(p.server.read, p.server, 1048576)
      if e == nil then got[#got + 1] = s total = total + #s end
    end
    assert.are.equal(data:rep(chunks + 1), table.concat(got))
    p.close()
  end)
end)
