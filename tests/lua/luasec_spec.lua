-- LuaSec's face (issue 14): require "retls.luasec" with LuaSec's params,
-- and LuaSec's socket methods on retls connections, against real LuaSec
-- (Debian's lua-sec) in both roles, openssl s_server, and a LuaSec program
-- run with only its require changed.  Every server is started and stopped
-- here; every loop is bounded.
local retls = require "retls"
local lssl = require "retls.luasec"
local ssl = require "ssl" -- the real LuaSec, as the peer
local socket = require "socket"
local H = require "helpers"
local F = require "luasec_fixtures"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

-- A retls.luasec client and a LuaSec server (or the reverse) over TCP,
-- both non-blocking, handshake done through F.run.
local function connected(client_lib, server_lib, cextra, sextra, sndbuf)
  local a, b = F.tcp_pair(sndbuf)
  local c = assert(client_lib.wrap(a, F.client_params(pki, cextra)))
  local s = assert(server_lib.wrap(b, F.server_params(pki, sextra)))
  c:settimeout(0)
  s:settimeout(0)
  local errs = {}
  F.run({
    function() errs[1] = select(2, F.handshake(c)) end,
    function() errs[2] = select(2, F.handshake(s)) end,
  }, 20)
  assert(errs[1] == nil and errs[2] == nil,
    ("handshake: client %s, server %s"):format(tostring(errs[1]), tostring(errs[2])))
  return c, s, a, b
end

describe("retls.luasec.newcontext", function()
  local function err_of(params)
    local ctx, err = lssl.newcontext(params)
    assert.is_nil(ctx)
    return err
  end

  it("names every LuaSec parameter retls does not support", function()
    for key, value in pairs({ password = "secret", certificates = {},
        depth = 3, dhparam = function() end, curve = "prime256v1",
        curveslist = "P-256", verifyext = { "lsec_continue" }, dane = true }) do
      local p = F.client_params(pki)
      p[key] = value
      assert.matches("parameter '" .. key .. "'", err_of(p), 1, true)
    end
    assert.matches("unknown parameter 'verfy'",
      err_of(F.client_params(pki, { verfy = "peer" })), 1, true)
  end)

  it("names the options it does not support, and why", function()
    assert.matches("option 'all' is not supported: SSL_OP_ALL",
      err_of(F.client_params(pki, { options = { "all", "no_sslv3" } })), 1, true)
    assert.matches("option 'cipher_server_preference' is not supported",
      err_of(F.server_params(pki, { options = "cipher_server_preference" })), 1, true)
    assert.matches("option 'no_ticket' is not supported",
      err_of(F.client_params(pki, { options = { "no_ticket" } })), 1, true)
  end)

  it("refuses what it cannot do the LuaSec way, with the way out", function()
    assert.matches("'mode' must be \"client\" or \"server\"",
      err_of({ protocol = "any" }), 1, true)
    assert.matches("'protocol': \"sslv3\" is not supported",
      err_of(F.client_params(pki, { protocol = "sslv3" })), 1, true)
    assert.matches("fail_if_no_peer_cert",
      err_of(F.server_params(pki, { verify = "peer" })), 1, true)
    assert.matches("selection function is not supported",
      err_of(F.server_params(pki, { alpn = function() return "h2" end })), 1, true)
    assert.matches("'key' needs 'certificate'",
      err_of({ mode = "server", key = pki.server_key }), 1, true)
    assert.matches("leave no TLS version",
      err_of(F.client_params(pki, { protocol = "tlsv1_3", options = "no_tlsv1_3" })), 1, true)
    assert.matches("no such file",
      err_of(F.client_params(pki, { cafile = pki.dir .. "/missing.pem" })):lower(), 1, true)
  end)

  it("wrap() takes a params table or a context, and returns nil, err like LuaSec", function()
    local a, b = F.tcp_pair()
    local ctx = assert(lssl.newcontext(F.client_params(pki)))
    local conn = assert(lssl.wrap(a, ctx))
    assert.are.equal(-1, a:getfd()) -- taken over, as LuaSec does
    local n, err = lssl.wrap(b, { mode = "server", options = "all" })
    assert.is_nil(n)
    assert.matches("option 'all'", err, 1, true)
    conn:close()
    b:close()
  end)
end)

describe("LuaSec's methods on a retls connection, against LuaSec", function()
  it("sends slices and returns LuaSec's last index (3 results), receives every pattern", function()
    local c, s = connected(lssl, ssl)
    assert.are.same({ 5, nil, nil }, { c:send("hello world", 1, 5) })
    assert.are.same({ 11, nil, nil }, { c:send("hello world", 6) })
    assert.are.same({ 3, nil, nil }, { c:send("abc", -3, -1) })
    assert.are.same({ 2, nil, nil }, { c:send("abc", 3, 2) }) -- empty: i - 1
    F.run({ function()
      assert.are.equal("hello world", F.receive(s, 11))
      assert.are.equal("abc", F.receive(s, 3))
    end }, 10)

    -- lines: LF or CRLF ends one, every CR is dropped (LuaSocket's rule)
    F.run({ function()
      assert(F.send(s, "one\r\ntwo\nth\rree\nrest-and-more"))
    end }, 10)
    F.run({ function()
      assert.are.equal("one", F.receive(c, "*l"))
      assert.are.equal("two", F.receive(c, "l"))
      assert.are.equal("three", F.receive(c))
      assert.are.equal("rest", F.receive(c, 4))
      -- prefix goes in front; a number counts it (LuaSocket does)
      assert.are.equal("PRE--a", c:receive(6, "PRE-"))
      assert.are.equal("x", c:receive(1, "x")) -- prefix already long enough
    end }, 10)
    -- nothing waiting: nil, "wantread" and the partial data
    assert.are.same({ nil, "wantread", "nd-more" }, { c:receive("*l") })
    assert.is_false(c:dirty())
    -- the partial comes back as prefix (what copas does)
    F.run({ function() assert(F.send(s, "!\n")) end }, 10)
    F.run({ function()
      local line = F.receive(c, "*l")
      assert.are.equal("!", line)
    end }, 10)

    -- "*a" reads until the peer closes; "closed" afterwards
    F.run({ function() assert(F.send(s, ("z"):rep(100000))) end }, 10)
    s:close() -- LuaSec sends close_notify
    F.run({ function()
      assert.are.equal(("z"):rep(100000), F.receive(c, "*a"))
    end }, 10)
    assert.are.same({ nil, "closed", "" }, { c:receive("*a") })
    assert.are.same({ nil, "closed", "" }, { c:receive("*l") })
    c:close()
    assert.are.same({ nil, "closed", 0 }, { c:send("late") })
  end)

  it("settimeout: 0 never waits, t > 0 waits up to t and reports the want, nil blocks", function()
    local c, s = connected(lssl, ssl)
    assert.are.equal(1, c:settimeout(0))
    assert.are.same({ nil, "wantread", "" }, { c:receive(1) })
    c:settimeout(0.05)
    assert.are.same({ nil, "wantread", "" }, { c:receive(1) })
    c:settimeout(0.05, "t")
    assert.are.same({ nil, "wantread", "" }, { c:receive(1) })
    c:settimeout(nil)
    c:settimeout(-1, "t")
    s:settimeout(nil)
    assert(s:send("ping\n")) -- LuaSec, blocking
    assert.are.equal("ping", c:receive()) -- blocks in poll until it is there
    assert.are.equal(9, c:send("pong\nmore"))
    assert.are.equal("pong", s:receive())
    assert.has_error(function() c:settimeout(1, "x") end)
    c:close()
    s:close()
  end)

  it("dohandshake, getfd, getpeername, getsockname, getpeercertificate (DER), getalpn", function()
    local a, b = F.tcp_pair()
    local afd = a:getfd()
    local peer_ip, peer_port = a:getpeername()
    local my_ip, my_port = a:getsockname()
    local c = assert(lssl.wrap(a, F.client_params(pki, { alpn = { "h2", "http/1.1" } })))
    local s = assert(ssl.wrap(b, F.server_params(pki, { alpn = { "http/1.1" } })))
    assert.are.equal(afd, c:getfd())
    c:settimeout(0)
    s:settimeout(0)
    assert.are.same({ nil, "wantread" }, { c:dohandshake() })
    F.run({ function() assert(F.handshake(c)) end, function() assert(F.handshake(s)) end }, 20)
    assert.is_true(c:dohandshake()) -- done: stays true
    -- LuaSocket's results (its port is a string in some versions)
    local ip, port, family = c:getpeername()
    assert.are.same({ peer_ip, tonumber(peer_port), "inet" }, { ip, port, family })
    ip, port, family = c:getsockname()
    assert.are.same({ my_ip, tonumber(my_port), "inet" }, { ip, port, family })
    local der_file = pki.dir .. "/server.der"
    H.run(("%s x509 -in %s -outform DER -out %s"):format(H.OPENSSL, pki.server_cert, der_file))
    assert.are.equal(H.readfile(der_file), c:getpeercertificate())
    assert.is_nil(c:getpeercertificate(2))
    assert.are.equal("http/1.1", c:getalpn())
    assert.are.equal("http/1.1", s:getalpn())
    assert.is_true(c:close())
    assert.are.same({ nil, "closed" }, { c:getpeername() })
    assert.are.same({ nil, "closed", 0 }, { c:send("x") })
    assert.is_nil(c:getalpn())
    assert.are.equal(-1, c:getfd())
    s:close()
  end)

  it("bad arguments raise as LuaSocket's do; odd indices are clamped as LuaSocket clamps them", function()
    local c, s = connected(lssl, ssl)
    local function msg(f) local ok, e = pcall(f) assert.is_false(ok) return tostring(e) end
    assert.matches("invalid receive pattern", msg(function() c:receive("*x") end), 1, true)
    assert.matches("invalid receive pattern", msg(function() c:receive(-1) end), 1, true)
    assert.matches("invalid timeout mode", msg(function() c:settimeout(1, "x") end), 1, true)
    assert.matches("bad self", msg(function() c.send("x") end), 1, true)
    local fake = setmetatable({ _c = "x" }, getmetatable(c))
    assert.matches("bad self", msg(function() fake:receive() end), 1, true)
    assert.matches("string expected", msg(function() c:send({}) end), 1, true)
    assert.are.same({ 2, nil, nil }, { c:send("ab", 0 / 0) })        -- NaN: from 1
    assert.are.same({ 2, nil, nil }, { c:send("ab", -1e300, 1e300) })
    assert.are.same({ 2, nil, nil }, { c:send("ab", 1e300) })        -- nothing
    assert.are.same({ 0, nil, nil }, { c:send("ab", 1, -1e300) })    -- nothing
    F.run({ function() assert.are.equal("abab", F.receive(s, 4)) end }, 10)
    c:close() s:close()
  end)

  it("maps protocol and version options: tlsv1_2, no_tlsv1_3", function()
    local c, s = connected(lssl, ssl, { protocol = "tlsv1_2" })
    assert.are.equal("TLSv1.2", c:info().version)
    c:close() s:close()
    c, s = connected(lssl, ssl, { options = { "no_tlsv1_3", "no_sslv3", "no_compression" } })
    assert.are.equal("TLSv1.2", c:info().version)
    c:close() s:close()
    c, s = connected(lssl, ssl)
    assert.are.equal("TLSv1.3", c:info().version)
    c:close() s:close()
  end)

  it("verifies by default; sni(name) names the host; verify = \"none\" does not verify", function()
    -- no cafile: the peer's CA is unknown, so the handshake fails
    local a, b = F.tcp_pair()
    local c = assert(lssl.wrap(a, { mode = "client" }))
    local s = assert(ssl.wrap(b, F.server_params(pki)))
    c:settimeout(0) s:settimeout(0)
    local errs = {}
    F.run({ function() errs.c = select(2, F.handshake(c)) end,
            function() errs.s = select(2, F.handshake(s)) end }, 20)
    assert.matches("certificate verify failed", errs.c, 1, true)
    c:close() s:close()

    -- sni with a name the certificate carries, and one it does not
    for _, case in ipairs({ { "localhost", nil }, { "other.example", "certificate verify failed" } }) do
      a, b = F.tcp_pair()
      c = assert(lssl.wrap(a, F.client_params(pki)))
      assert.is_true(c:sni(case[1]))
      s = assert(ssl.wrap(b, F.server_params(pki)))
      c:settimeout(0) s:settimeout(0)
      errs = {}
      F.run({ function() errs.c = select(2, F.handshake(c)) end,
              function() errs.s = select(2, F.handshake(s)) end }, 20)
      if case[2] then
        assert.matches(case[2], errs.c, 1, true)
      else
        assert.is_nil(errs.c)
        local r = { c:sni("late.example") }
        assert.is_nil(r[1])
        assert.matches("handshake has started", r[2], 1, true)
      end
      c:close() s:close()
    end

    -- verify = "none": the same unknown CA is accepted
    a, b = F.tcp_pair()
    c = assert(lssl.wrap(a, { mode = "client", verify = "none" }))
    s = assert(ssl.wrap(b, F.server_params(pki)))
    c:settimeout(0) s:settimeout(0)
    F.run({ function() assert(F.handshake(c)) end,
            function() assert(F.handshake(s)) end }, 20)
    assert.are.equal("TLSv1.3", c:info("protocol"))
    c:close() s:close()
  end)
end)

describe("resending after a want", function()
  -- A client whose writes stop early (small send buffer, server not
  -- reading), with a pending record.
  local function stuck()
    local c, s = connected(lssl, ssl, nil, nil, 8192)
    local data = H.pattern(4 * 1024 * 1024, 3)
    local n, err, last = c:send(data)
    assert.is_nil(n)
    assert.are.equal("wantwrite", err)
    assert.is_true(last < #data)
    assert.is_true(c:pending_write() > 0)
    return c, s, data, last
  end

  local function read_all(s, n)
    local got
    F.run({ function() got = F.receive(s, n) end }, 60)
    return got
  end

  it("from last_index + 1 resumes the pending record: every byte arrives once", function()
    local c, s, data, last = stuck()
    local st0 = c:stats()
    local got
    F.run({
      function() assert.are.equal(#data, F.send(c, data, last + 1)) end,
      function() got = F.receive(s, #data) end,
    }, 60)
    assert.are.equal(#data, #got)
    assert.is_true(got == data, "the bytes differ")
    local st = c:stats()
    assert.are.equal(0, st.mismatches)
    assert.is_true(st.retries > st0.retries)
    assert.are.equal(#data, st.bytes_written)
    c:close() s:close()
  end)

  it("a shorter, other or longer resend returns the retry-mismatch error, sends nothing, and the connection keeps working", function()
    local c, s, data, last = stuck()
    local pend = c:pending_write()
    -- other bytes, shorter
    local r = { c:send("other data") }
    assert.is_nil(r[1])
    assert.matches("retry presented 10 bytes (shorter)", r[2], 1, true)
    assert.are.equal(0, r[3])
    -- the same data, but fewer bytes than the pending record
    r = { c:send(data, last + 1, last + pend - 1) }
    assert.is_nil(r[1])
    assert.matches("(shorter)", r[2], 1, true)
    assert.are.equal(last, r[3])
    -- the same length, other bytes
    local other = data:sub(1, last) .. ("\0"):rep(pend) .. data:sub(last + pend + 1)
    r = { c:send(other, last + 1) }
    assert.is_nil(r[1])
    assert.matches("same length, other bytes", r[2], 1, true)
    -- a resend from the wrong index (the data from the start again)
    r = { c:send(data) }
    assert.is_nil(r[1])
    assert.matches("retry presented", r[2], 1, true)
    assert.are.equal(4, c:stats().mismatches)
    assert.are.equal(pend, c:pending_write())

    -- the right resend still completes, and the peer sees every byte once
    local got
    F.run({
      function() assert.are.equal(#data, F.send(c, data, last + 1)) end,
      function() got = F.receive(s, #data) end,
    }, 60)
    assert.is_true(got == data, "the bytes differ")
    -- and the connection goes on
    F.run({ function() assert(F.send(c, "after\n")) end }, 10)
    assert.are.equal("after", read_all(s, "*l"))
    c:close() s:close()
  end)

  it("close() with a pending write raises write_pending; close(\"discard\") drops it", function()
    local c, s = stuck()
    local err = H.raised(c.close, c)
    assert.are.equal("write_pending", err.kind)
    assert.is_true(c:close("discard"))
    assert.are.same({ nil, "closed", 0 }, { c:send("x") })
    s:close()
  end)
end)

describe("interop with LuaSec in both roles", function()
  for _, roles in ipairs({ { "retls client, LuaSec server", lssl, ssl },
                            { "LuaSec client, retls server", ssl, lssl } }) do
    it(roles[1] .. ": 2 MiB each way, byte for byte", function()
      local c, s = connected(roles[2], roles[3], nil, nil, 16384)
      local up, down = H.pattern(2 * 1048576, 11), H.pattern(2 * 1048576, 12)
      local got_up, got_down
      F.run({
        function() assert.are.equal(#up, F.send(c, up)) end,
        function() got_down = F.receive(c, #down) end,
        function() assert.are.equal(#down, F.send(s, down)) end,
        function() got_up = F.receive(s, #up) end,
      }, 60)
      assert.are.equal(F.sha256(up, pki.dir), F.sha256(got_up, pki.dir))
      assert.are.equal(F.sha256(down, pki.dir), F.sha256(got_down, pki.dir))
      c:close() -- both libraries send close_notify on close()
      F.run({ function()
        local r = { F.receive(s, "*a") }
        assert.are.same({ nil, "closed" }, { r[1], r[2] })
      end }, 10)
      s:close()
    end)
  end
end)

describe("a LuaSec program with only its require changed", function()
  local server
  after_each(function() if server then server.stop() server = nil end end)

  -- tests/lua/programs/luasec_client.lua is plain LuaSec code: it talks to
  -- s_server -rev and returns what it saw.
  local source = H.readfile("programs/luasec_client.lua")

  local function run_program(require_line)
    local text, n = source:gsub('require "ssl"', require_line)
    assert.are.equal(1, n)
    local program = assert((loadstring or load)(text, "=luasec_client.lua"))
    server = H.s_server(pki.dir, pki.server_cert, pki.server_key, "-rev")
    local result = program(server.port, pki.ca)
    server.stop()
    server = nil
    return result
  end

  it("runs unchanged over retls and gives what it gives over LuaSec", function()
    local over_luasec = run_program('require "ssl"')
    local over_retls = run_program('require "retls.luasec"')
    assert.are.equal(300, #over_retls.lines)
    for i, l in ipairs(over_retls.lines) do
      assert.are.equal(over_retls.sent[i]:reverse(), l)
    end
    assert.are.same(over_luasec.lines, over_retls.lines)
    assert.are.equal(over_luasec.protocol, over_retls.protocol)
    -- and the facts it asks for (verification, Finished and exporter
    -- sizes, cipher, byte counts) come out the same
    assert.are.same({ true }, over_retls.facts.verification)
    assert.are.same(over_luasec.facts, over_retls.facts)
  end)
end)

describe("the other direction's want", function()
  -- send() returning "wantread": a TLS 1.2 client that asked for a
  -- renegotiation sends its ClientHello with the next write, and that
  -- write cannot finish before the server's answer arrives.  The retls
  -- server in this process is pumped only after the want was seen, so the
  -- want is certain, not a race.
  it("send() returns nil, \"wantread\", last_index during a renegotiation; the resend from last_index + 1 completes and every byte arrives once", function()
    local c, s = connected(lssl, lssl, { protocol = "tlsv1_2" })
    assert.are.equal("TLSv1.2", c:info().version)
    local head = "head:"
    assert.are.equal(#head, c:send(head))
    assert.is_true(c:renegotiate())
    local data = head .. H.pattern(100000, 21)
    -- from index #head + 1: last_index counts from the start of data
    local r = { c:send(data, #head + 1) }
    assert.are.same({ nil, "wantread", #head }, r)
    assert.are.equal("read", c:want())
    assert.are.equal(16384, c:pending_write()) -- the first record, kept
    local st0 = c:stats()
    assert.are.equal(1, st0.want_read)
    -- nothing waits for the client's receive(): the want is the write's
    assert.is_false(c:dirty())
    local got
    F.run({
      -- F.send waits for readable on "wantread", then resends from
      -- last_index + 1 (what current copas does)
      function() assert.are.equal(#data, F.send(c, data, r[3] + 1)) end,
      function() got = F.receive(s, #data) end,
    }, 30)
    assert.are.equal(#data, #got)
    assert.is_true(got == data, "the bytes differ")
    local st = c:stats()
    assert.are.equal(0, st.mismatches)
    assert.is_true(st.want_read >= 2)      -- ServerHello flight, then Finished
    assert.is_true(st.retries >= 1)
    assert.are.equal(#data, st.bytes_written) -- no byte written twice
    -- the renegotiated connection goes on both ways
    F.run({ function() assert(F.send(c, "after\n")) end,
            function() assert.are.equal("after", F.receive(s, "*l")) end }, 10)
    F.run({ function() assert(F.send(s, "back\n")) end,
            function() assert.are.equal("back", F.receive(c, "*l")) end }, 10)
    c:close() s:close()
  end)

  -- receive() returning "wantwrite": a read that has to write first.  A
  -- client's first receive() runs the handshake, which writes the
  -- ClientHello.  Here the client's socket send buffer is already full of
  -- plain bytes the server has not read yet (a STARTTLS-like preamble), so
  -- that write cannot go out.  A Unix stream socket makes that certain:
  -- its send buffer is freed only by the peer reading (TCP's window may
  -- reopen by itself as the receiver compacts its queue), and the server
  -- reads nothing until the want was seen.
  it("receive() returns nil, \"wantwrite\", partial when its handshake cannot write; after writable it completes", function()
    local unix = require "socket.unix"
    local path = pki.dir .. "/want.sock"
    os.remove(path)
    local listener = unix.stream()
    assert(listener:bind(path))
    assert(listener:listen(1))
    local a = unix.stream()
    assert(a:connect(path))
    listener:settimeout(5)
    local b = assert(listener:accept())
    listener:close()
    os.remove(path)
    a:settimeout(0)
    -- fill: big chunks, then single bytes (each one is charged a whole
    -- buffer) until the kernel takes nothing
    local sent = 0
    for _, chunk in ipairs({ ("P"):rep(65536), "P" }) do
      while true do
        local n, err, last = a:send(chunk)
        n = n or last
        assert(n or err == "timeout", err)
        sent = sent + n
        if n < #chunk then break end
      end
    end
    local c = retls.wrap(retls.context{ cafile = pki.ca }, a,
                         { server_hostname = "localhost" })
    c:settimeout(0)
    assert.are.same({ nil, "wantwrite", "" }, { c:receive(5) })
    assert.are.equal("write", c:want())
    assert.are.same({ nil, "wantwrite", "" }, { c:receive("*l") }) -- still stuck
    -- the server reads the preamble, then speaks TLS
    b:settimeout(10)
    local pre = assert(b:receive(sent))
    assert.are.equal(("P"):rep(sent), pre)
    local s = assert(ssl.wrap(b, F.server_params(pki)))
    s:settimeout(0)
    local msg = H.pattern(50000, 22)
    local got, line
    F.run({
      -- F.receive waits for writable on "wantwrite" and calls receive again
      function() got = F.receive(c, #msg) line = F.receive(c, "*l") end,
      function() assert(F.handshake(s)) assert(F.send(s, msg .. "end\n")) end,
    }, 30)
    assert.is_true(got == msg, "the bytes differ")
    assert.are.equal("end", line)
    assert.is_true(c:stats().want_write == 0) -- a read's want is not a write's
    c:close() s:close() a:close()
  end)
end)
