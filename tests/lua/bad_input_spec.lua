-- Every bad input gets a clear error naming the problem; nothing crashes.
-- Also: the error values themselves, writing after close, and writing to
-- a connection whose peer has closed.  (Mirrors test_bad_input.py and
-- tests/c/test_lifecycle.c / test_context.c.)
local retls = require "retls"
local H = require "helpers"

-- The error f(...) raised; fails the spec unless it is a retls error of
-- that kind whose message contains needle (plain text).
local function raises(kind, needle, f, ...)
  local err = H.raised(f, ...)
  assert(err ~= nil, "expected a " .. kind .. " error, nothing was raised")
  assert.are.equal(retls.Error, getmetatable(err))
  assert.are.equal(kind, err.kind, tostring(err))
  if needle then
    assert(err.message:find(needle, 1, true),
      ("%q not in the message: %s"):format(needle, err.message))
  end
  return err
end

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

local function server_ctx()
  return retls.context{ role = "server", certfile = pki.server_cert, keyfile = pki.server_key }
end

describe("error values", function()
  it("WantRead and WantWrite are unique values that compare with ==", function()
    local client, server = retls.pair(nil, nil, { capacity = 1024 })
    local r = H.raised(client.read, client)
    local w = H.raised(client.write, client, ("x"):rep(5000))
    assert.are.equal(retls.WantRead, r)
    assert.are.equal(retls.WantWrite, w)
    assert.are_not.equal(retls.WantRead, retls.WantWrite)
    assert.are.equal("wantread", r.kind)
    assert.are.equal("wantwrite", w.kind)
    assert.matches("^retls.WantRead: repeat the operation when the transport is readable", tostring(r))
    assert.matches("^retls.WantWrite: repeat the operation", tostring(w))
    client:close("discard")
  end)

  it("every other failure is an error object with kind, message and a readable tostring", function()
    local client, server = retls.pair()
    client:shutdown()
    local err = raises("zero_return", "close_notify", server.read, server)
    assert.are.equal("string", type(err.message))
    assert.are.equal("number", type(err.status))
    assert.are.equal("retls error (zero_return): read: the peer sent close_notify", tostring(err))
    -- an uncaught error shows the same text (lua.c uses __tostring)
    local ok, msg = pcall(function() error(err) end)
    assert.is_false(ok)
    assert.are.equal(err, msg)
  end)

  it("are built from the one status table, also for checks made in Lua (core.raise)", function()
    local core = require "retls_core"
    local e = H.raised(core.raise, core.CLOSED, "gone")
    assert.are.equal(retls.Error, getmetatable(e))
    assert.are.equal("closed", e.kind)
    assert.are.equal("gone", e.message)
    e = H.raised(core.raise, core.TIMEOUT)
    assert.are.equal("timeout", e.kind)
    assert.are.equal("the operation timed out", e.message) -- retls_strerror
    assert.are.equal(retls.WantWrite, H.raised(core.raise, core.WANT_WRITE))
  end)
end)

describe("conn:write() with bad data", function()
  -- test_write_rejects_non_buffers_with_type_error
  for _, bad in ipairs({ { nil, "nil" }, { 42, "number" }, { { 1, 2 }, "table" },
                         { true, "boolean" }, { print, "function" } }) do
    it("raises an arg error for a " .. bad[2] .. " and leaves the connection untouched", function()
      local client, server = retls.pair()
      raises("arg", "bad argument #1 to 'write' (string expected, got " .. bad[2] .. ")",
        client.write, client, bad[1])
      raises("arg", "bad argument #1 to 'sendall' (string expected, got " .. bad[2] .. ")",
        client.sendall, client, bad[1])
      local n, msg, e = client:trywrite(bad[1])
      assert.is_nil(n)
      assert.are.equal("arg", e.kind)
      assert.are.equal(e.message, msg)
      assert.are.equal(0, client:stats().writes)
      assert.are.equal(2, client:write("ok"))
      assert.are.equal("ok", H.drain(server))
    end)
  end

  it("bio_write() rejects a non-string the same way", function()
    local conn = retls.wrap(retls.context{ verify = false }, nil)
    raises("arg", "bad argument #1 to 'bio_write' (string expected, got table)",
      conn.bio_write, conn, {})
  end)

  it("calling a method with . instead of : names the mistake", function()
    local client = retls.pair()
    raises("arg", "calling 'write' on bad self", client.write, "data")
    raises("arg", "call it as conn:read(...)", client.read, nil)
  end)
end)

describe("closed connections", function()
  -- test_write_after_close / test_every_call_after_close
  it("raise a closed error from every operation, and close twice is fine", function()
    local client = retls.pair()
    assert.is_true(client:close())
    for name, op in pairs({
      write = function() return client:write("x") end,
      flush = function() return client:flush() end,
      read = function() return client:read() end,
      handshake = function() return client:handshake() end,
      shutdown = function() return client:shutdown() end,
      renegotiate = function() return client:renegotiate() end,
      key_update = function() return client:key_update(true) end,
      sendall = function() return client:sendall("x") end,
    }) do
      local err = raises("closed", "the connection is closed; open a new one", op)
      assert.are.equal("closed", err.kind, name)
    end
    assert.is_true(client:close())
    assert.are.equal(-1, client:getfd())
    assert.is_nil(client:info().version)
    assert.is_nil(client:info().peer_certificate)
    assert.matches("closed%)$", tostring(client))
  end)

  -- test_close_with_pending_write / test_shutdown_with_pending_write
  it("close() and shutdown() refuse to drop a pending write; close('discard') drops it", function()
    local client = retls.pair(nil, nil, { capacity = 1024 })
    assert.are.equal(retls.WantWrite, H.raised(client.write, client, ("x"):rep(5000)))
    raises("write_pending", "flush() them first", client.shutdown, client)
    raises("write_pending", "5000 bytes of a write are pending", client.close, client)
    assert.are.equal(5000, client:pending_write()) -- still open, still pending
    raises("arg", "\"discard\" or nothing expected", client.close, client, "now")
    assert.is_true(client:close("discard"))
    raises("closed", nil, client.flush, client)
  end)

  if _VERSION == "Lua 5.4" then
    it("a <close> variable left by an error drops a pending write and closes", function()
      local client = retls.pair(nil, nil, { capacity = 1024 })
      local run = assert(load([[
        local client, big = ...
        local c <close> = client
        c:write(big)
      ]]))
      assert.are.equal(retls.WantWrite, H.raised(run, client, ("x"):rep(5000)))
      raises("closed", nil, client.write, client, "x")
    end)

    it("a <close> variable left normally closes the connection", function()
      local client, server = retls.pair()
      local got = assert(load([[
        local c <close>, server = ...
        c:write("bye")
        return server:read()
      ]]))(client, server)
      assert.are.equal("bye", got)
      raises("closed", nil, client.write, client, "x")
      -- closed without shutdown(): the peer sees no close_notify
      raises("eof", nil, server.read, server)
    end)
  end
end)

describe("a peer that closed", function()
  -- test_peer_closed_cleanly
  it("gives zero_return on read, then on write, when it sent close_notify", function()
    local p = H.tcp_pair(nil, server_ctx())
    p.server:shutdown()
    p.server:close()
    p.b:close()
    local deadline = os.time() + 10
    local err
    repeat
      err = H.raised(p.client.read, p.client)
      if err == retls.WantRead then require("socket").select({ p.client }, nil, 1) end
    until err ~= retls.WantRead or os.time() > deadline
    raises("zero_return", "close_notify", function() error(err) end)
    -- Once the close_notify was seen, a write failing on the gone socket is
    -- reported as what it is: the peer closed cleanly.  (Over TCP the
    -- kernel may accept the first write before the peer's RST is back.)
    for _ = 1, 50 do
      err = H.raised(p.client.write, p.client, "x")
      if err then break end
      require("socket").sleep(0.01)
    end
    raises("zero_return", "write: the peer sent close_notify", function() error(err) end)
    raises("zero_return", nil, p.client.write, p.client, "x") -- and stays so
    p.close()
  end)

  -- test_write_to_a_peer_that_is_gone
  it("gives a syscall error (Broken pipe) when the socket is gone, then closed", function()
    local p = H.tcp_pair(nil, server_ctx())
    p.server:shutdown()
    p.server:close()
    p.b:close()
    require("socket").sleep(0.05) -- let the FIN / RST arrive (not asserted on)
    -- The close_notify was never read: the write meets the dead socket
    -- (the first write may still be accepted by the kernel).
    local err
    for _ = 1, 50 do
      err = H.raised(p.client.write, p.client, ("x"):rep(1000))
      if err then break end
      require("socket").sleep(0.01)
    end
    assert.is_not_nil(err)
    assert.are.equal("syscall", err.kind, tostring(err))
    assert.matches("write: ", err.message)
    raises("closed", "failed earlier", p.client.write, p.client, "x")
    p.close()
  end)

  -- test_peer_vanished_without_close_notify
  it("gives eof on read when the socket closed without close_notify", function()
    local p = H.tcp_pair(nil, server_ctx())
    p.server:close()
    p.b:close()
    local err
    local deadline = os.time() + 10
    repeat
      err = H.raised(p.client.read, p.client)
      if err == retls.WantRead then require("socket").select({ p.client }, nil, 1) end
    until err ~= retls.WantRead or os.time() > deadline
    raises("eof", "without close_notify", function() error(err) end)
    p.close()
  end)

  -- test_pair_peer_closed
  it("gives eof on write when the other end of a pair was closed", function()
    local client, server = retls.pair()
    server:close()
    raises("eof", "closed without close_notify", client.write, client, "x")
  end)
end)

describe("retls.context{} with bad options", function()
  -- test_context_bad_arguments / test_ctx_bad_arguments
  local cases = {
    { { role = "peer" }, "option 'role': \"client\" or \"server\" expected" },
    { { min_version = "TLSv9" }, "unknown TLS version" },
    { { max_version = 1.3 }, "option 'max_version': string expected, got number" },
    { { ciphers = "NOPE" }, "no usable cipher" },
    { { ciphersuites = "NOPE" }, "TLS 1.3 ciphersuites" },
    { { alpn = "h2" }, "option 'alpn': table expected, got string" },
    { { alpn = { "" } }, "option 'alpn': entry 1 must be a protocol name" },
    { { alpn = { "a,b" } }, "without ','" },
    { { alpn = { "h2", 2 } }, "entry 2 must be a protocol name" },
    { { cafile = "/nonexistent/ca.pem" }, "cannot load CA file" },
    { { cafile = 3 }, "option 'cafile': string expected, got number" },
    { { certfile = "/nonexistent/c.pem" }, "cannot load certificate" },
    { { keyfile = "/x.key" }, "option 'keyfile' needs 'certfile'" },
    { { keylog = "/nonexistent/dir/k.log" }, "cannot open keylog file" },
    { { ciphers = "A\0B" }, "option 'ciphers' contains a NUL byte" },
    { { verify = "yes" }, "option 'verify': boolean expected, got string" },
    { { colour = "blue" }, "unknown option 'colour'" },
  }
  for _, case in ipairs(cases) do
    local opts, needle = case[1], case[2]
    it("names the problem: " .. needle, function()
      local err = H.raised(retls.context, opts)
      assert(err and err.kind, "no error for " .. needle)
      assert.is_true(err.kind == "arg" or err.kind == "ssl", tostring(err))
      assert(err.message:find(needle, 1, true), err.message)
    end)
  end

  it("rejects a non-table", function()
    raises("arg", "bad argument #1 to 'context' (table expected, got string)", retls.context, "client")
  end)

  -- test_key_not_matching_certificate
  it("refuses a key that does not match the certificate", function()
    local err = H.raised(retls.context, { role = "server", certfile = pki.server_cert,
      keyfile = pki.client_key })
    assert.is_not_nil(err)
    assert.matches("key", err.message)
  end)
end)

describe("retls.wrap() with bad arguments", function()
  -- test_connection_bad_arguments
  it("names each problem", function()
    local ctx = retls.context()
    raises("arg", "bad argument #1 to 'wrap' (retls context expected", retls.wrap, nil)
    raises("arg", "retls context expected", retls.wrap, "ctx")
    raises("arg", "pass server_hostname", retls.wrap, ctx, nil)
    raises("arg", "option 'server_hostname': string expected, got number", retls.wrap, ctx, nil,
      { server_hostname = 1 })
    raises("arg", "option 'server_hostname' contains a NUL byte", retls.wrap, ctx, nil,
      { server_hostname = "a\0b" })
    raises("arg", "fd or socket object with getfd() expected, got string", retls.wrap, ctx, "sock",
      { server_hostname = "x" })
    raises("arg", "fd or socket object with getfd() expected, got boolean", retls.wrap, ctx, true,
      { server_hostname = "x" })
    raises("arg", "an open socket expected, got fd -1", retls.wrap, ctx, -1, { server_hostname = "x" })
    raises("arg", "an open socket expected, got fd 1.5", retls.wrap, ctx, 1.5, { server_hostname = "x" })
    -- an fd number nothing has open
    local f = assert(io.open("/dev/null"))
    f:close()
    raises("arg", "is not an open file descriptor", retls.wrap, ctx, 1000, { server_hostname = "x" })
    local s = require("socket").tcp()
    s:close()
    raises("arg", "closed socket?", retls.wrap, ctx, s, { server_hostname = "x" })
    raises("arg", "for client connections only", retls.wrap, server_ctx(), nil,
      { server_hostname = "x" })
    raises("arg", "option 'capacity' is for memory mode", retls.wrap, ctx, 0,
      { server_hostname = "x", capacity = 10 })
    raises("arg", "option 'capacity': a whole number of bytes >= 1 expected, got 0", retls.wrap,
      ctx, nil, { server_hostname = "x", capacity = 0 })
    raises("arg", "unknown option 'hostname'", retls.wrap, ctx, nil, { hostname = "x" })
  end)
end)

describe("connection methods with bad arguments", function()
  -- test_method_bad_arguments / test_conn_bad_arguments
  it("name the problem and leave the connection working", function()
    local client, server = retls.pair()
    raises("arg", "bad argument #1 to 'read' (number of bytes expected, got string)",
      client.read, client, "x")
    raises("arg", "size must be a whole number from 1 to 2^31-1, got 1.5", client.read, client, 1.5)
    raises("arg", "got -1", client.read, client, -1)
    raises("arg", "got 0", client.read, client, 0)
    raises("arg", "size must be a whole number", client.read, client, 2 ^ 70)
    raises("arg", "only for memory-mode", client.bio_write, client, "x")
    raises("arg", "only for memory-mode", client.bio_read, client, 5)
    raises("arg", "only for memory-mode", client.bio_read, client)
    raises("arg", "does not exist in TLS 1.3", client.renegotiate, client)
    -- ...and after all that the connection works.
    assert.are.equal(4, client:write("fine"))
    assert.are.equal("fine", H.drain(server))
  end)

  -- test_key_update_needs_tls13_renegotiate_needs_handshake
  it("key_update needs TLS 1.3 and renegotiate a completed handshake", function()
    local c12 = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2" })
    raises("arg", "only in TLS 1.3", c12.key_update, c12, true)
    local fresh = retls.pair(nil, nil, { handshake = false })
    raises("arg", "completed handshake", fresh.renegotiate, fresh)
  end)
end)

describe("retls.pair() with bad arguments", function()
  -- test_pair_bad_arguments
  it("names each problem", function()
    raises("arg", "option 'capacity': a whole number of bytes >= 1 expected, got 0",
      retls.pair, nil, nil, { capacity = 0 })
    raises("arg", "option 'capacity': number expected, got string", retls.pair, nil, nil,
      { capacity = "big" })
    raises("arg", "bad argument #1 to 'pair' (retls context expected", retls.pair, "ctx")
    raises("arg", "first context must be a client context", retls.pair, server_ctx())
    raises("arg", "second context must be a server context", retls.pair, nil, retls.context())
  end)
end)

describe("retls.connect() with bad arguments", function()
  -- test_connect_bad_arguments
  local cases = {
    { "arg", "port in 1..65535", { "127.0.0.1", 0 } },
    { "arg", "port in 1..65535", { "127.0.0.1", 70000 } },
    { "arg", "bad argument #2 to 'connect' (number expected, got string)", { "127.0.0.1", "443" } },
    { "arg", "port must be a whole number", { "127.0.0.1", 44.3 } },
    { "arg", "bad argument #1 to 'connect' (string expected, got number)", { 127, 443 } },
    { "arg", "option 'timeout': seconds > 0 expected, got 0", { "127.0.0.1", 443, nil, { timeout = 0 } } },
    { "arg", "option 'timeout': seconds > 0 expected, got -1", { "127.0.0.1", 443, nil, { timeout = -1 } } },
    { "arg", "bad argument #3 to 'connect' (retls context expected", { "127.0.0.1", 443, "ctx" } },
    { "syscall", "cannot resolve", { "no-such-host.invalid", 443 } },
  }
  for _, case in ipairs(cases) do
    it("names the problem: " .. case[2], function()
      local a = case[3]
      raises(case[1], case[2], retls.connect, a[1], a[2], a[3], a[4])
    end)
  end

  -- test_connect_refused
  it("raises a syscall error for a refused connection", function()
    local s = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    port = tonumber(port)
    s:close() -- nobody listens there now
    raises("syscall", "Connection refused", retls.connect, "127.0.0.1", port, nil, { timeout = 5 })
  end)
end)
