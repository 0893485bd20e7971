-- Faults on the wire (mirrors tests/python/test_faults.py): a server that
-- is not TLS, garbage and truncated records, a peer that resets the
-- connection while a write is pending, the fd closed under the connection,
-- a handshake that never completes, and certificates that are expired,
-- self-signed or for another host.  Each raises its documented error with
-- a message that says what happened; nothing is sent afterwards: every
-- later call raises a closed error and the peer's bytes are checked.
local retls = require "retls"
local socket = require "socket"
local H = require "helpers"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

-- err must be a retls error of kind whose message is exactly text.
local function is_error(kind, text, err)
  assert(err ~= nil, "nothing was raised")
  assert.are.equal(retls.Error, getmetatable(err))
  assert.are.equal(kind, err.kind, tostring(err))
  assert.are.equal(text, err.message)
end

-- Every call on a failed connection: closed, with the original reason.
local function refuses_everything(conn, reason)
  for _, op in ipairs({
    function() return conn:write("secret") end,
    function() return conn:flush() end,
    function() return conn:read() end,
    function() return conn:handshake() end,
    function() return conn:shutdown() end,
    function() return conn:sendall("secret") end,
  }) do
    local err = H.raised(op)
    assert(err and err.kind == "closed", tostring(err))
    assert(err.message:find("connection failed earlier", 1, true), err.message)
    assert(err.message:find(reason, 1, true), err.message)
  end
end

-- Content types of the whole TLS records in s.
local function record_types(s)
  local types, i = {}, 1
  while i + 4 <= #s do
    local n = s:byte(i + 3) * 256 + s:byte(i + 4)
    if i + 4 + n > #s then break end
    types[#types + 1] = s:byte(i)
    i = i + 5 + n
  end
  return table.concat(types, ",")
end

-- Everything a raw LuaSocket receives until the other side closes.
local function read_to_end(sock)
  sock:settimeout(10)
  local data, err, partial = sock:receive("*a")
  return data or partial, err
end

-- A listener on 127.0.0.1 and a client connected to it with retls.connect;
-- returns the client and the accepted raw socket.
local function raw_peer(timeout)
  local listener = assert(socket.bind("127.0.0.1", 0))
  local _, port = listener:getsockname()
  local conn = retls.connect("127.0.0.1", tonumber(port), retls.context{ verify = false },
    { timeout = timeout or 10 })
  listener:settimeout(10)
  local raw = assert(listener:accept())
  listener:close()
  return conn, raw
end

describe("a server that is not TLS", function()
  -- test_non_tls_server
  for _, case in ipairs({
    { "http", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n" },
    { "garbage", ("\0\1\2\3\4\5\6\7"):rep(64) },
  }) do
    it(case[1] .. ": raises an ssl error saying the peer is not TLS", function()
      local conn, raw = raw_peer()
      assert(raw:send(case[2]))
      is_error("ssl", "handshake: wrong version number (the peer sent bytes that are not " ..
        "TLS: is it a plain-text service, or the wrong port?)", H.raised(conn.handshake, conn))
      refuses_everything(conn, "wrong version number")
      conn:close()
      local types = record_types(read_to_end(raw))
      assert.is_true(types == "22" or types == "22,21", types)
      raw:close()
    end)
  end

  -- test_truncated_record_during_handshake
  it("truncated record then FIN: raises eof", function()
    local conn, raw = raw_peer()
    assert(raw:send("\22\3\3\0\100" .. ("\2"):rep(50)))
    raw:shutdown("send")
    is_error("eof", "handshake: the peer closed the transport without close_notify: " ..
      "unexpected eof while reading", H.raised(conn.handshake, conn))
    refuses_everything(conn, "unexpected eof")
    conn:close()
    local types = record_types(read_to_end(raw))
    assert.is_true(types == "22" or types == "22,21", types)
    raw:close()
  end)
end)

describe("records after the handshake", function()
  local function memory_pair()
    local sctx = retls.context{ role = "server", certfile = pki.server_cert, keyfile = pki.server_key }
    local client = retls.wrap(retls.context{ verify = false }, nil)
    local server = retls.wrap(sctx, nil)
    H.handshake_memory(client, server)
    return client, server
  end

  -- test_garbage_record_after_the_handshake
  it("garbage record: raises an ssl error, sends one alert, then nothing", function()
    local client = memory_pair()
    client:bio_write("\23\3\3\0\32" .. ("\0"):rep(32))
    is_error("ssl", "read: decryption failed or bad record mac", H.raised(client.read, client))
    local alert = client:bio_read()
    assert.are.equal("23", record_types(alert))
    assert.are.equal(5 + 19, #alert)
    refuses_everything(client, "bad record mac")
    assert.are.equal("", client:bio_read())
  end)

  -- test_truncated_record_after_the_handshake
  it("truncated record: is not delivered in part, then eof", function()
    local client, server = memory_pair()
    server:write(("x"):rep(1000))
    local record = server:bio_read()
    client:bio_write(record:sub(1, math.floor(#record / 2)))
    assert.are.equal(retls.WantRead, H.raised(client.read, client))
    client:bio_write_eof()
    local err = H.raised(client.read, client)
    assert.are.equal("eof", err.kind)
    assert.matches("unexpected eof while reading", err.message)
    local alert = client:bio_read()
    assert.is_true(alert == "" or record_types(alert) == "23")
    refuses_everything(client, "unexpected eof")
    assert.are.equal("", client:bio_read())
  end)
end)

describe("the peer vanishes", function()
  local function server_ctx()
    return retls.context{ role = "server", certfile = pki.server_cert, keyfile = pki.server_key }
  end

  -- test_peer_vanishes_mid_write[rst-flush]
  it("with RST while a write is pending: flush raises a syscall error", function()
    local p = H.tcp_pair(nil, server_ctx())
    local err
    for _ = 1, 10000 do
      err = H.raised(p.client.write, p.client, ("x"):rep(65536))
      if err then break end
    end
    assert.are.equal(retls.WantWrite, err)
    assert.are.equal(65536, p.client:pending_write())
    p.server:close("discard")
    assert(p.b:setoption("linger", { on = true, timeout = 0 }))
    p.b:close() -- RST
    is_error("syscall", "write: Connection reset by peer", H.raised(p.client.flush, p.client))
    refuses_everything(p.client, "Connection reset by peer")
    assert.are.equal(0, p.client:pending_write()) -- never acknowledged, dropped
    assert.is_true(p.client:close())
    p.a:close()
  end)

  -- test_fd_closed_under_the_connection
  it("when the fd is closed under the connection: raises a syscall error", function()
    local p = H.tcp_pair(retls.context{ verify = false, max_version = "TLSv1.2" }, server_ctx())
    p.a:close() -- LuaSocket closes the fd the connection uses
    is_error("syscall", "write: Bad file descriptor", H.raised(p.client.write, p.client, "x"))
    refuses_everything(p.client, "Bad file descriptor")
    -- The peer received nothing after the handshake: end of stream.
    local data, err = read_to_end(p.b)
    assert.are.equal("", data)
    assert.are.equal("closed", err)
    p.close()
  end)
end)

describe("a handshake that never completes", function()
  -- test_handshake_timeout
  it("raises a timeout error, sends only the ClientHello", function()
    local conn, raw = raw_peer(0.3)
    is_error("timeout", "timed out after 300 ms waiting for the socket to become readable; " ..
      "the operation may be repeated", H.raised(conn.handshake, conn))
    -- not a failure: a write continues the handshake and keeps its bytes
    assert.are.equal("timeout", H.raised(conn.write, conn, "secret").kind)
    assert.are.equal(6, conn:pending_write())
    conn:close("discard")
    assert.are.equal("22", record_types(read_to_end(raw)))
    raw:close()
  end)
end)

describe("bad certificates", function()
  local expired, selfsigned
  setup(function()
    local d = pki.dir
    H.run(("cd '%s' && %s req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes " ..
      "-keyout expired.key -out expired.csr -subj /CN=localhost"):format(d, H.OPENSSL))
    -- -days -1: notAfter is a day ago
    H.run(("cd '%s' && %s x509 -req -in expired.csr -CA ca.pem -CAkey ca.key " ..
      "-CAcreateserial -days -1 -extfile server.ext -out expired.pem"):format(d, H.OPENSSL))
    H.run(("cd '%s' && %s req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes " ..
      "-keyout self.key -out self.pem -days 1 -subj /CN=localhost " ..
      "-addext subjectAltName=DNS:localhost"):format(d, H.OPENSSL))
    expired = { d .. "/expired.pem", d .. "/expired.key" }
    selfsigned = { d .. "/self.pem", d .. "/self.key" }
  end)

  -- test_bad_certificate
  for _, case in ipairs({
    { "expired", "localhost", "certificate has expired", "sslv3 alert certificate expired" },
    { "self-signed", "localhost", "self-signed certificate", "tlsv1 alert unknown ca" },
    { "wrong-host", "example.com", "hostname mismatch", "sslv3 alert bad certificate" },
  }) do
    it(case[1] .. ": raises a verify error, the server learns why, nothing follows", function()
      local cert = ({ expired = expired, ["self-signed"] = selfsigned,
        ["wrong-host"] = { pki.server_cert, pki.server_key } })[case[1]]
      local sctx = retls.context{ role = "server", certfile = cert[1], keyfile = cert[2] }
      local client = retls.wrap(retls.context{ cafile = pki.ca }, nil, { server_hostname = case[2] })
      local server = retls.wrap(sctx, nil)
      local err
      for _ = 1, 20 do
        err = H.raised(client.write, client, "secret")
        if err ~= retls.WantRead then break end
        H.relay(client, server)
        local serr = H.raised(server.handshake, server)
        assert(serr == nil or serr == retls.WantRead, tostring(serr))
        H.relay(server, client)
      end
      is_error("verify", "write: certificate verify failed: " .. case[3] ..
        ": certificate verify failed", err)
      refuses_everything(client, case[3])
      -- The client's alert reaches the server, which fails with it; the
      -- client has nothing more to send.
      H.relay(client, server)
      assert.are.equal("", client:bio_read())
      local serr = H.raised(server.handshake, server)
      assert.are.equal("ssl", serr.kind)
      assert(serr.message:find(case[4], 1, true), serr.message)
    end)
  end
end)
