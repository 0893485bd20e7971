-- Secure defaults, each pinned by what a peer can observe (mirrors
-- tests/python/test_defaults.py and tests/c/test_defaults.c): verification
-- and hostname checks on, TLS 1.2 minimum both ways, null compression
-- only, RFC 5746 renegotiation only (gnutls-serv without it is refused),
-- a peer's renegotiation honoured and refused with renegotiation = false,
-- and no key material in error messages.
local retls = require "retls"
local socket = require "socket"
local H = require "helpers"

local SECLEVEL0 = "DEFAULT@SECLEVEL=0" -- OpenSSL 3 allows TLS < 1.2 only here

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

local function server_ctx(opts)
  opts = opts or {}
  opts.role, opts.certfile, opts.keyfile = "server", pki.server_cert, pki.server_key
  return retls.context(opts)
end

local function memory_pair(cctx, sctx, hostname)
  return retls.wrap(cctx, nil, { server_hostname = hostname }), retls.wrap(sctx, nil)
end

-- Drive a memory handshake; the first failure's error (nil if none).
local function handshake_error(client, server)
  return H.raised(H.handshake_memory, client, server)
end

describe("verification", function()
  -- test_client_verifies_by_default
  it("is on by default for clients", function()
    local sctx = retls.context{ role = "server", certfile = pki.other_ca,
      keyfile = pki.dir .. "/other-ca.key" } -- a self-signed certificate
    local err = handshake_error(memory_pair(retls.context(), sctx, "localhost"))
    assert.are.equal("verify", err.kind)
    assert.matches("self%-signed certificate", err.message)
    local e = H.raised(retls.wrap, retls.context(), nil)
    assert.matches("pass server_hostname", e.message)
  end)

  -- test_hostname_checked_by_default
  it("checks the hostname by default", function()
    assert.is_nil(handshake_error(memory_pair(retls.context{ cafile = pki.ca }, server_ctx(),
      "localhost"))) -- the control
    local err = handshake_error(memory_pair(retls.context{ cafile = pki.ca }, server_ctx(),
      "example.com"))
    assert.are.equal("verify", err.kind)
    assert.matches("hostname mismatch", err.message)
  end)
end)

describe("the minimum protocol version", function()
  local function tls11_client()
    return retls.context{ verify = false, min_version = "TLSv1", max_version = "TLSv1.1",
      ciphers = SECLEVEL0 }
  end
  local function tls11_server()
    return server_ctx{ min_version = "TLSv1", max_version = "TLSv1.1", ciphers = SECLEVEL0 }
  end

  -- test_server_refuses_a_tls11_client
  it("is TLS 1.2 for servers", function()
    local c, s = retls.pair(tls11_client(), server_ctx{ min_version = "TLSv1", ciphers = SECLEVEL0 })
    assert.are.equal("TLSv1.1", c:info().version) -- the control
    for _, opts in ipairs({ {}, { ciphers = SECLEVEL0 } }) do
      local err = H.raised(retls.pair, tls11_client(), server_ctx(opts))
      assert.are.equal("ssl", err.kind)
      assert.are.equal("handshake: unsupported protocol", err.message)
    end
  end)

  -- test_client_refuses_a_tls11_server
  it("is TLS 1.2 for clients", function()
    local c = retls.pair(retls.context{ verify = false, min_version = "TLSv1", ciphers = SECLEVEL0 },
      tls11_server())
    assert.are.equal("TLSv1.1", c:info().version) -- the control
    for _, opts in ipairs({ { verify = false }, { verify = false, ciphers = SECLEVEL0 } }) do
      local client, server = memory_pair(retls.context(opts), tls11_server())
      local err = handshake_error(client, server)
      assert.are.equal("ssl", err.kind)
      -- the server found no common version; the client learns it from the alert
      assert.are.equal("handshake: unsupported protocol", err.message)
      H.relay(server, client)
      err = H.raised(client.handshake, client)
      assert.are.equal("handshake: tlsv1 alert protocol version", err.message)
    end
  end)
end)

describe("compression", function()
  -- (offset, methods) of a ClientHello's compression methods, or of a
  -- ServerHello's chosen method.
  local function compression(h)
    local i = 5 + 4 + 2 + 32 + 1
    i = i + 1 + h:byte(i)                              -- session id
    if h:byte(6) == 2 then return i + 2, h:sub(i + 2, i + 2) end
    i = i + 2 + h:byte(i) * 256 + h:byte(i + 1)        -- cipher suites
    return i, h:sub(i + 1, i + h:byte(i))
  end

  -- test_no_compression_offered_or_accepted
  it("is neither offered nor accepted", function()
    local client = retls.wrap(retls.context{ verify = false, max_version = "TLSv1.2" }, nil)
    assert.are.equal(retls.WantRead, H.raised(client.handshake, client))
    local hello = client:bio_read()
    local at, methods = compression(hello)
    assert.are.equal("\0", methods) -- null only
    -- Offer DEFLATE (1) first: a TLS 1.2 server still picks null.
    local d = hello:sub(1, at - 1) .. "\2\1\0" .. hello:sub(at + 2)
    local rec, hs = #d - 5, #d - 9
    d = d:sub(1, 3) .. string.char(math.floor(rec / 256), rec % 256) .. d:sub(6, 6) ..
      string.char(0, math.floor(hs / 256), hs % 256) .. d:sub(10)
    local server = retls.wrap(server_ctx{ max_version = "TLSv1.2" }, nil)
    server:bio_write(d)
    assert.are.equal(retls.WantRead, H.raised(server.handshake, server))
    local _, chosen = compression(server:bio_read())
    assert.are.equal("\0", chosen)
  end)
end)

describe("secure renegotiation (RFC 5746)", function()
  -- gnutls-serv --echo with a priority string, bounded by timeout(1);
  -- returns its port and a stop function.
  local function gnutls_serv(priority)
    for _ = 1, 5 do
      local probe = assert(socket.bind("127.0.0.1", 0))
      local _, port = probe:getsockname()
      probe:close()
      local p = assert(io.popen(("sh -c 'echo $$; exec timeout 60 gnutls-serv --echo --port %s " ..
        "--x509certfile %s --x509keyfile %s --priority \"%s\" </dev/null >/dev/null 2>&1' &")
        :format(port, pki.server_cert, pki.server_key, priority)))
      local pid = assert(tonumber(p:read("*l")))
      p:close()
      local function stop() os.execute(("kill %d 2>/dev/null"):format(pid)) end
      local deadline = socket.gettime() + 10
      while socket.gettime() < deadline do
        local s = socket.tcp()
        s:settimeout(1)
        local ok = s:connect("127.0.0.1", tonumber(port))
        s:close()
        if ok then return tonumber(port), stop end
        socket.sleep(0.05)
      end
      stop()
    end
    error("gnutls-serv did not start")
  end

  -- test_client_refuses_a_server_without_secure_renegotiation
  it("a server without it is refused; the same server with it is not", function()
    local port, stop = gnutls_serv("NORMAL:-VERS-ALL:+VERS-TLS1.2")
    local conn = retls.connect("127.0.0.1", port, retls.context{ cafile = pki.ca },
      { server_hostname = "localhost", timeout = 10 })
    conn:sendall("ping\n")
    assert.are.equal("ping\n", conn:read())
    conn:close()
    stop()
    port, stop = gnutls_serv("NORMAL:-VERS-ALL:+VERS-TLS1.2:%DISABLE_SAFE_RENEGOTIATION")
    conn = retls.connect("127.0.0.1", port, retls.context{ cafile = pki.ca },
      { server_hostname = "localhost", timeout = 10 })
    local err = H.raised(conn.handshake, conn)
    stop()
    assert.are.equal("ssl", err.kind)
    assert.are.equal("handshake: unsafe legacy renegotiation disabled", err.message)
    conn:close()
  end)
end)

describe("a peer's renegotiation request", function()
  local function tmpfile(name) return pki.dir .. "/" .. name end

  local function client_randoms(path)
    local n = 0
    for line in (H.readfile(path) or ""):gmatch("[^\n]+") do
      if line:find("^CLIENT_RANDOM ") then n = n + 1 end
    end
    return n
  end

  -- Drive reads on both ends a few rounds; the first error of each.
  local function read_rounds(client, server)
    local got, errs = {}, {}
    for _ = 1, 5 do
      for name, conn in pairs({ client = client, server = server }) do
        if not errs[name] then
          local ok, r = pcall(conn.read, conn)
          if ok then got[#got + 1] = r
          elseif r ~= retls.WantRead then errs[name] = r end
        end
      end
    end
    return table.concat(got), errs
  end

  -- test_client_honours_a_server_renegotiation_by_default /
  -- test_client_with_renegotiation_off_refuses
  for _, on in ipairs({ true, false }) do
    it((on and "from the server is honoured by default" or
        "from the server is refused with renegotiation = false"), function()
      local log = tmpfile(on and "reneg-on.log" or "reneg-off.log")
      local opts = { verify = false, keylog = log }
      if not on then opts.renegotiation = false end
      local client, server = retls.pair(retls.context(opts), server_ctx{ max_version = "TLSv1.2" })
      assert.is_true(server:renegotiate())
      assert.are.equal(2, server:write("hi"))
      local got, errs = read_rounds(client, server)
      assert.are.equal("hi", got)
      if on then
        assert.is_nil(next(errs))
        assert.are.equal(2, client_randoms(log)) -- a second handshake
        assert.are.equal(5, client:write("after"))
        assert.are.equal("after", H.drain(server))
      else
        assert.are.equal("read: no renegotiation", errs.server.message)
        assert.are.equal("read: sslv3 alert handshake failure", errs.client.message)
        assert.are.equal(1, client_randoms(log))
      end
    end)
  end

  -- test_renegotiation_refused (test_rekey.py), from the client's side
  it("from the client is refused by a server with renegotiation = false", function()
    local client, server = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2" },
      server_ctx{ renegotiation = false })
    client:renegotiate()
    local err
    for _ = 1, 10 do
      err = H.raised(client.write, client, "hello")
      if err ~= retls.WantRead then break end
      assert.are.equal("", H.drain(server))
    end
    assert.are.equal("ssl", err.kind)
    assert.matches("no renegotiation", err.message)
    assert.are.equal(0, client:pending_write())
  end)
end)

describe("key material", function()
  -- test_errors_never_carry_key_material
  it("never appears in error messages", function()
    local log = pki.dir .. "/fail-keys.log"
    local client, server = memory_pair(retls.context{ cafile = pki.other_ca, keylog = log },
      server_ctx(), "localhost")
    local texts = { handshake_error(client, server).message }
    for _, op in ipairs({ function() return client:write("x") end,
                          function() return server:handshake() end }) do
      local e = H.raised(op)
      if e then texts[#texts + 1] = e.message end
    end
    local fields = 0
    for line in H.readfile(log):gmatch("[^\n]+") do
      local label, random, secret = line:match("^(%S+) (%x+) (%x+)$")
      assert(label and label:find("_SECRET$"), line)
      for _, field in ipairs({ random, secret }) do
        fields = fields + 1
        for _, text in ipairs(texts) do
          assert.is_nil(text:find(field, 1, true))
          assert.is_nil(text:find(field:sub(1, 16), 1, true))
        end
      end
    end
    assert.is_true(fields >= 2)
    for _, text in ipairs(texts) do
      assert.is_nil(text:find(("%x"):rep(32)), text)
    end
  end)

  -- test_no_key_log_unless_asked (the environment variable half is in C
  -- and Python: Lua cannot set one)
  it("is logged only where a context asks", function()
    local asked = pki.dir .. "/asked.log"
    local c, s = retls.pair(retls.context{ verify = false }, server_ctx())
    local c2 = retls.pair(retls.context{ verify = false, keylog = asked }, server_ctx())
    local _, lines = H.readfile(asked):gsub("\n", "")
    assert.are.equal(5, lines) -- the TLS 1.3 secrets of one handshake
  end)
end)
