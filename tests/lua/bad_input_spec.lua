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

  -- The C methods read self[1]: nothing but a connection's own C object
  -- gets through, whatever a table holds there.
  it("the C methods refuse any self that is not a connection, never crash", function()
    local client, server = retls.pair()
    local ctx = retls.context()
    local impostors = {
      { "a context", ctx, "got table" },
      { "a table holding a context's C object", { ctx._c }, "got table" },
      { "a table holding a file", { io.stdout }, "got table" },
      { "a table holding a string", { "x" }, "got table" },
      { "an empty table", {}, "got table" },
      { "the bare C object", rawget(client, 1), "got userdata" },
      { "a number", 42, "got number" },
    }
    for _, case in ipairs(impostors) do
      for _, name in ipairs({ "write", "flush", "pending_write", "want", "handshake",
                              "read", "bio_write", "bio_read", "bio_pending", "getfd" }) do
        raises("arg", ("calling '%s' on bad self (retls connection expected, %s; call it as conn:%s(...))")
          :format(name, case[3], name), client[name], case[2], "x")
      end
      local n, msg, e = client.trywrite(case[2], "x")
      assert.is_nil(n, case[1])
      assert.are.equal("arg", e.kind)
      assert.are.equal(e.message, msg)
    end
    assert.are.equal(2, client:write("ok"))
    assert.are.equal("ok", H.drain(server))
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
      ["write('')"] = function() return client:write("") end,
      bio_write = function() return client:bio_write("x") end,
      bio_read = function() return client:bio_read(5) end,
      bio_write_eof = function() return client:bio_write_eof() end,
    }) do
      local err = raises("closed", "the connection is closed; open a new one", op)
      assert.are.equal("closed", err.kind, name)
    end
    assert.is_true(client:close())
    assert.are.equal(-1, client:getfd())
    assert.is_nil(client:info().version)
    assert.is_nil(client:info().peer_certificate)
    assert.are.equal(0, client:pending_write())
    assert.is_nil(client:want())
    assert.is_false(client:dirty())
    assert.are.equal(0, client:stats().writes)
    local n, msg = client:trywrite("x")
    assert.is_nil(n)
    assert.are.equal("the connection is closed; open a new one", msg)
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
    local before = p.client:info()
    p.server:close()
    p.b:close()
    local err
    local deadline = os.time() + 10
    repeat
      err = H.raised(p.client.read, p.client)
      if err == retls.WantRead then require("socket").select({ p.client }, nil, 1) end
    until err ~= retls.WantRead or os.time() > deadline
    raises("eof", "without close_notify", function() error(err) end)
    -- OpenSSL 3 makes this EOF fatal; what was negotiated still answers
    local after = p.client:info()
    assert.are.equal("TLSv1.3", after.version)
    assert.are.equal(before.version, after.version)
    assert.are.equal(before.cipher, after.cipher)
    assert.is_true(#after.peer_certificate > 100)
    p.close()
  end)

  -- test_pair_peer_closed
  it("gives eof on write when the other end of a pair was closed", function()
    local client, server = retls.pair()
    server:close()
    raises("eof", "closed without close_notify", client.write, client, "x")
  end)
end)

-- Each row of the README, section "Bad input" is one `it` below, named "<call> <case>"
-- as the table names it; the Python twins are in test_bad_input.py.

describe("retls.context{} with bad options", function()
  -- test_context_bad_arguments
  local cases = {
    { "role", { role = "peer" }, "option 'role': \"client\" or \"server\" expected" },
    { "role-number", { role = 1 }, "option 'role': string expected, got number" },
    { "unknown-option", { colour = "blue" }, "unknown option 'colour'" },
    { "positional-entry", { "client" }, "unknown option '1'" },
    { "min_version", { min_version = "TLSv9" }, "unknown TLS version 'TLSv9'; use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3" },
    { "max_version-type", { max_version = 1.3 }, "option 'max_version': string expected, got number" },
    { "min-above-max", { min_version = "TLSv1.3", max_version = "TLSv1.2" }, "above maximum version" },
    { "ciphers", { ciphers = "NOPE" }, "no usable cipher in 'NOPE'" },
    { "ciphersuites", { ciphersuites = "NOPE" }, "bad TLS 1.3 ciphersuites 'NOPE'" },
    { "NUL", { ciphers = "A\0B" }, "option 'ciphers' contains a NUL byte" },
    { "alpn-str", { alpn = "h2" }, "option 'alpn': table expected, got string" },
    { "alpn-not-a-list", { alpn = { x = "h2" } }, "option 'alpn': a list of protocol names expected" },
    { "alpn-empty-name", { alpn = { "" } }, "option 'alpn': entry 1 must be a protocol name" },
    { "alpn-comma", { alpn = { "a,b" } }, "without ','" },
    { "alpn-256-bytes", { alpn = { ("x"):rep(256) } }, "entry 1 must be a protocol name of 1..255 bytes" },
    { "alpn-number", { alpn = { "h2", 2 } }, "entry 2 must be a protocol name of 1..255 bytes without ',' (got number)" },
    { "cafile", { cafile = "/nonexistent/ca.pem" }, "cannot load CA file '/nonexistent/ca.pem'" },
    { "cafile-type", { cafile = 3 }, "option 'cafile': string expected, got number" },
    { "capath", { capath = "/nonexistent" }, "cannot use CA directory '/nonexistent': No such file" },
    { "capath-file", { capath = "/etc/hostname" }, "not a directory" },
    { "certfile", { certfile = "/nonexistent/c.pem" }, "cannot load certificate '/nonexistent/c.pem'" },
    { "keyfile-alone", { keyfile = "/x.key" }, "option 'keyfile' needs 'certfile'" },
    { "keylog", { keylog = "/nonexistent/dir/k.log" }, "cannot open keylog file '/nonexistent/dir/k.log'" },
    { "keylog-type", { keylog = 5 }, "option 'keylog': string expected, got number" },
    { "verify-type", { verify = "yes" }, "option 'verify': boolean expected, got string" },
    { "renegotiation-type", { renegotiation = "no" }, "option 'renegotiation': boolean expected, got string" },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": " .. case[3], function()
      raises("arg", case[3], retls.context, case[2])
    end)
  end

  it("not-a-table: raises an arg error", function()
    raises("arg", "bad argument #1 to 'context' (table expected, got string)", retls.context, "client")
  end)

  -- test_key_not_matching_certificate
  it("key-mismatch: refuses a key that does not match the certificate", function()
    raises("arg", "key values mismatch", retls.context, { role = "server",
      certfile = pki.server_cert, keyfile = pki.client_key })
  end)
end)

describe("retls.wrap() with bad arguments", function()
  -- test_connection_bad_arguments
  local function closed_socket()
    local s = require("socket").tcp()
    s:close()
    return s
  end
  local cases = {
    { "ctx-nil", "bad argument #1 to 'wrap' (retls context expected", { nil } },
    { "ctx-str", "retls context expected (from retls.context{...}), got string", { "ctx" } },
    { "no-server_hostname", "pass server_hostname", { "CTX", nil } },
    { "server_hostname-number", "option 'server_hostname': string expected, got number",
      { "CTX", nil, { server_hostname = 1 } } },
    { "server_hostname-NUL", "option 'server_hostname' contains a NUL byte",
      { "CTX", nil, { server_hostname = "a\0b" } } },
    { "server_hostname-too-long", "bad server hostname", { "CTX", nil, { server_hostname = ("a"):rep(300) } } },
    { "sock-str", "fd or socket object with getfd() expected, got string", { "CTX", "sock", { server_hostname = "x" } } },
    { "sock-bool", "fd or socket object with getfd() expected, got boolean", { "CTX", true, { server_hostname = "x" } } },
    { "fd-negative", "an open socket expected, got fd -1", { "CTX", -1, { server_hostname = "x" } } },
    { "fd-fraction", "an open socket expected, got fd 1.5", { "CTX", 1.5, { server_hostname = "x" } } },
    { "fd-huge", "an open socket expected, got fd 1099511627776", { "CTX", 2 ^ 40, { server_hostname = "x" } } },
    { "fd-not-open", "fd 1000 is not an open file descriptor", { "CTX", 1000, { server_hostname = "x" } } },
    { "socket-closed", "an open socket expected, got fd -1", { "CTX", "CLOSED", { server_hostname = "x" } } },
    { "getfd-not-a-number", "getfd() returned a string, not a number",
      { "CTX", { getfd = function() return "3" end }, { server_hostname = "x" } } },
    { "server-with-hostname", "for client connections only", { "SERVER_CTX", nil, { server_hostname = "x" } } },
    { "capacity-with-socket", "option 'capacity' is for memory mode", { "CTX", 0, { server_hostname = "x", capacity = 10 } } },
    { "capacity-zero", "option 'capacity': a whole number of bytes >= 1 expected, got 0",
      { "CTX", nil, { server_hostname = "x", capacity = 0 } } },
    { "capacity-huge", "option 'capacity': a whole number of bytes >= 1 expected, got 1099511627776",
      { "CTX", nil, { server_hostname = "x", capacity = 2 ^ 40 } } },
    { "capacity-str", "option 'capacity': number expected, got string",
      { "CTX", nil, { server_hostname = "x", capacity = "big" } } },
    { "unknown-option", "unknown option 'hostname'", { "CTX", nil, { hostname = "x" } } },
    { "opts-not-a-table", "bad argument #3 to 'wrap' (table expected, got string)", { "CTX", nil, "x" } },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": " .. case[2], function()
      local a = case[3]
      local subst = { CTX = retls.context, SERVER_CTX = server_ctx, CLOSED = closed_socket }
      local args = {}
      for i = 1, 3 do
        local v = a[i]
        if type(v) == "string" and subst[v] then v = subst[v]() end
        args[i] = v
      end
      raises("arg", case[2], retls.wrap, args[1], args[2], args[3])
    end)
  end
end)

describe("conn:read() sizes", function()
  -- test_read_bad_sizes / test_read_huge_size_reads_what_there_is
  local cases = {
    { "str", "x", "bad argument #1 to 'read' (number of bytes expected, got string)" },
    { "bool", true, "bad argument #1 to 'read' (number of bytes expected, got boolean)" },
    { "fraction", 1.5, "size must be a whole number from 1 to 2^31-1, got 1.5" },
    { "negative", -1, "size must be a whole number from 1 to 2^31-1, got -1" },
    { "zero", 0, "size must be a whole number from 1 to 2^31-1, got 0" },
    { "2^31", 2 ^ 31, "size must be a whole number from 1 to 2^31-1, got 2147483648" },
    { "inf", math.huge, "size must be a whole number from 1 to 2^31-1, got inf" },
    { "nan", 0 / 0, "size must be a whole number from 1 to 2^31-1, got" },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": " .. case[3], function()
      local client, server = retls.pair()
      raises("arg", case[3], server.read, server, case[2])
      assert.are.equal(4, client:write("fine")) -- and the connection works
      assert.are.equal("fine", H.drain(server))
    end)
  end

  it("2^31-1: reads what there is, one record at most", function()
    local client, server = retls.pair(nil, nil, { capacity = 1048576 })
    assert.are.equal(retls.WantRead, H.raised(server.read, server, 2 ^ 31 - 1))
    client:write(("x"):rep(100000))
    assert.are.equal(("x"):rep(16384), server:read(2 ^ 31 - 1))
    assert.are.equal(("x"):rep(16384), server:read()) -- nil: 16384
  end)
end)

describe("memory-mode calls", function()
  -- test_bio_read_bad_sizes / test_memory_calls_on_a_pair_connection
  local function memory_client() return retls.wrap(retls.context{ verify = false }, nil) end

  for _, case in ipairs({
    { "str", "x", "bad argument #1 to 'bio_read' (number of bytes expected, got string)" },
    { "negative", -5, "size must be a whole number from 1 to 2^31-1, got -5" },
    { "zero", 0, "size must be a whole number from 1 to 2^31-1, got 0" },
    { "2^40", 2 ^ 40, "size must be a whole number from 1 to 2^31-1, got 1099511627776" },
  }) do
    it("bio_read " .. case[1] .. ": " .. case[3], function()
      local conn = memory_client()
      raises("arg", case[3], conn.bio_read, conn, case[2])
    end)
  end

  -- test_bio_read_negative_and_huge_sizes_take_what_is_waiting
  it("bio_read 2^31-1: takes what is waiting", function()
    local conn = memory_client()
    assert.are.equal("", conn:bio_read(2 ^ 31 - 1))
    assert.are.equal(retls.WantRead, H.raised(conn.handshake, conn))
    local waiting = conn:bio_pending()
    local hello = conn:bio_read(2 ^ 31 - 1)
    assert.are.equal(waiting, #hello)
    assert.are.equal(0x16, hello:byte(1))
  end)

  for _, name in ipairs({ "bio_write", "bio_read", "bio_write_eof" }) do
    it(name .. " on a pair connection: raises an arg error", function()
      local client, server = retls.pair()
      raises("arg", name .. " is only for memory-mode connections", client[name], client,
        name == "bio_write" and "x" or nil)
      assert.are.equal(4, client:write("fine"))
      assert.are.equal("fine", H.drain(server))
    end)
  end
end)

describe("failed connections", function()
  -- A handshake record of an unknown type: OpenSSL answers with an alert.
  local function failed_memory_client()
    local conn = retls.wrap(retls.context{ verify = false }, nil)
    assert.are.equal(retls.WantRead, H.raised(conn.handshake, conn))
    assert.are.equal(0x16, conn:bio_read():byte(1)) -- the ClientHello
    conn:bio_write("\22\3\3\0\4\255\0\0\0")
    raises("ssl", "handshake: unexpected message", conn.handshake, conn)
    return conn
  end

  -- test_every_call_after_a_failure
  for _, name in ipairs({ "write", "write-empty", "sendall", "flush", "read", "handshake",
                          "shutdown", "renegotiate", "key_update" }) do
    it(name .. " after a failure: raises closed with the original reason, sends nothing", function()
      local conn = failed_memory_client()
      local sent = conn:bio_read()
      local method = name:gsub("%-empty$", "")
      local arg = (method == "write" or method == "sendall") and (name == "write-empty" and "" or "x") or nil
      local err = raises("closed", "connection failed earlier (handshake: unexpected message", conn[method], conn, arg)
      assert.matches("close it$", err.message)
      assert.are.equal("", conn:bio_read())
      assert.is_true(sent == "" or sent:byte(1) == 0x15)
    end)
  end

  -- test_memory_transport_calls_after_a_failure
  it("memory transport calls after a failure: still move the alert, then nothing", function()
    local conn = failed_memory_client()
    local alert = conn:bio_read()
    assert.are.equal(7, #alert)
    assert.are.equal(0x15, alert:byte(1))
    assert.are.equal("", conn:bio_read(100))
    assert.are.equal(12, conn:bio_write("more garbage"))
    assert.is_true(conn:bio_write_eof())
    raises("closed", "failed earlier", conn.read, conn)
  end)

  -- test_failed_connection_still_answers_questions
  it("info after a failure: still answers", function()
    local client, server = retls.pair()
    server:close()
    raises("eof", "without close_notify", client.write, client, "x")
    local info = client:info()
    assert.are.equal("TLSv1.3", info.version)
    assert.is_true(#info.peer_certificate > 100)
    assert.are.equal(0, client:pending_write())
    assert.is_nil(client:want())
    local n, msg = client:trywrite("x")
    assert.is_nil(n)
    assert.matches("connection failed earlier", msg)
  end)
end)

describe("connection methods with bad arguments", function()
  -- test_method_bad_arguments
  it("flush-extra-argument: ignored, as Lua ignores extra arguments", function()
    local client, server = retls.pair()
    assert.are.equal(0, client:flush(1))
  end)

  -- test_renegotiate_and_key_update_need_the_right_version
  it("renegotiate/key_update: need the right version and a completed handshake", function()
    local c13, s13 = retls.pair()
    raises("arg", "does not exist in TLS 1.3", c13.renegotiate, c13)
    local c12, s12 = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2" })
    raises("arg", "only in TLS 1.3", c12.key_update, c12, true)
    local fresh = retls.pair(nil, nil, { handshake = false })
    raises("arg", "completed handshake", fresh.renegotiate, fresh)
    raises("arg", "completed handshake", fresh.key_update, fresh)
    for _, p in ipairs({ { c13, s13 }, { c12, s12 } }) do
      assert.are.equal(4, p[1]:write("fine"))
      assert.are.equal("fine", H.drain(p[2]))
    end
  end)

  -- test_close_bad_arguments
  it("close-argument: \"discard\" or nothing", function()
    local client = retls.pair()
    raises("arg", "bad argument #1 to 'close' (\"discard\" or nothing expected, got 1)", client.close, client, 1)
    assert.is_true(client:close("discard"))
  end)

  -- test_empty_write_is_a_noop
  it("write-empty: is a no-op", function()
    local client, server = retls.pair()
    assert.are.equal(0, client:write(""))
    assert.are.equal(0, client:sendall(""))
    assert.are.equal(0, client:stats().writes)
  end)
end)

describe("retls.pair() with bad arguments", function()
  -- test_pair_bad_arguments
  local cases = {
    { "capacity-zero", "option 'capacity': a whole number of bytes >= 1 expected, got 0", { nil, nil, { capacity = 0 } } },
    { "capacity-negative", "option 'capacity': a whole number of bytes >= 1 expected, got -5", { nil, nil, { capacity = -5 } } },
    { "capacity-fraction", "option 'capacity': a whole number of bytes >= 1 expected, got 1.5", { nil, nil, { capacity = 1.5 } } },
    { "capacity-huge", "option 'capacity': a whole number of bytes >= 1 expected, got 1099511627776", { nil, nil, { capacity = 2 ^ 40 } } },
    { "capacity-nan", "option 'capacity': a whole number of bytes >= 1 expected, got", { nil, nil, { capacity = 0 / 0 } } },
    { "capacity-str", "option 'capacity': number expected, got string", { nil, nil, { capacity = "big" } } },
    { "handshake-str", "option 'handshake': boolean expected, got string", { nil, nil, { handshake = "x" } } },
    { "ctx-str", "bad argument #1 to 'pair' (retls context expected", { "ctx" } },
    { "server-first", "first context must be a client context", { "SERVER_CTX" } },
    { "client-second", "second context must be a server context", { nil, "CTX" } },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": " .. case[2], function()
      local a = case[3]
      local subst = { CTX = retls.context, SERVER_CTX = server_ctx }
      local args = {}
      for i = 1, 3 do
        local v = a[i]
        if type(v) == "string" and subst[v] then v = subst[v]() end
        args[i] = v
      end
      raises("arg", case[2], retls.pair, args[1], args[2], args[3])
    end)
  end
end)

describe("retls.connect() with bad arguments", function()
  -- test_connect_bad_arguments
  local cases = {
    { "port-zero", "arg", "port in 1..65535 expected, got 0", { "127.0.0.1", 0 } },
    { "port-70000", "arg", "port in 1..65535 expected, got 70000", { "127.0.0.1", 70000 } },
    { "port-negative", "arg", "port in 1..65535 expected, got -1", { "127.0.0.1", -1 } },
    { "port-huge", "arg", "port in 1..65535 expected, got 1099511627776", { "127.0.0.1", 2 ^ 40 } },
    { "port-inf", "arg", "port in 1..65535 expected, got inf", { "127.0.0.1", math.huge } },
    { "port-nan", "arg", "port must be a whole number", { "127.0.0.1", 0 / 0 } },
    { "port-str", "arg", "bad argument #2 to 'connect' (number expected, got string)", { "127.0.0.1", "443" } },
    { "port-nil", "arg", "bad argument #2 to 'connect' (number expected, got nil)", { "127.0.0.1", nil } },
    { "port-fraction", "arg", "port must be a whole number", { "127.0.0.1", 44.3 } },
    { "host-number", "arg", "bad argument #1 to 'connect' (string expected, got number)", { 127, 443 } },
    { "host-nil", "arg", "bad argument #1 to 'connect' (string expected, got nil)", { nil, 443 } },
    { "host-empty", "arg", "need a host", { "", 443 } },
    { "host-NUL", "arg", "bad argument #1 to 'connect' (host contains a NUL byte)", { "a\0b", 443 } },
    { "timeout-zero", "arg", "option 'timeout': seconds > 0 expected, got 0", { "127.0.0.1", 443, nil, { timeout = 0 } } },
    { "timeout-negative", "arg", "option 'timeout': seconds > 0 expected, got -1", { "127.0.0.1", 443, nil, { timeout = -1 } } },
    { "timeout-nan", "arg", "option 'timeout': seconds > 0 expected, got", { "127.0.0.1", 443, nil, { timeout = 0 / 0 } } },
    { "timeout-str", "arg", "option 'timeout': number expected, got string", { "127.0.0.1", 443, nil, { timeout = "5" } } },
    { "unknown-option", "arg", "unknown option 'hostname'", { "127.0.0.1", 443, nil, { hostname = "x" } } },
    { "ctx-str", "arg", "bad argument #3 to 'connect' (retls context expected", { "127.0.0.1", 443, "ctx" } },
    { "unresolvable", "syscall", "cannot resolve 'no-such-host.invalid'", { "no-such-host.invalid", 443 } },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": " .. case[3], function()
      local a = case[4]
      raises(case[2], case[3], retls.connect, a[1], a[2], a[3], a[4])
    end)
  end

  local function refused_port()
    local s = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close() -- nobody listens there now
    return tonumber(port)
  end

  -- test_connect_refused
  it("refused: raises a syscall error", function()
    raises("syscall", "Connection refused", retls.connect, "127.0.0.1", refused_port(), nil, { timeout = 5 })
  end)

  -- test_connect_huge_timeout_is_clamped
  it("timeout-huge: is clamped, the connect runs", function()
    raises("syscall", "Connection refused", retls.connect, "127.0.0.1", refused_port(), nil, { timeout = 1e300 })
  end)
end)

describe("lifetime", function()
  -- test_connection_outlives_collected_contexts
  it("collected-context: a connection keeps working after its contexts were dropped", function()
    local client, server, mem
    do
      local cctx = retls.context{ verify = false }
      local sctx = server_ctx()
      client, server = retls.pair(cctx, sctx, { handshake = false })
      mem = retls.wrap(retls.context{ verify = false }, nil)
    end
    collectgarbage("collect")
    collectgarbage("collect")
    local done = { false, false }
    for _ = 1, 20 do
      for i, c in ipairs({ client, server }) do
        if not done[i] then
          local err = H.raised(c.handshake, c)
          if err == nil then done[i] = true else assert.are.equal(retls.WantRead, err) end
        end
      end
    end
    assert.is_true(done[1] and done[2])
    assert.are.equal(5, client:write("alive"))
    assert.are.equal("alive", H.drain(server))
    assert.are.equal(retls.WantRead, H.raised(mem.handshake, mem))
    assert.are.equal(0x16, mem:bio_read():byte(1))
  end)
end)
