-- Handshakes: implicit in the first write, driven by hand in memory mode,
-- and what the context options change (ALPN, keylog, versions, ciphers).
-- (Mirrors tests/c/test_handshake.c.)
local retls = require "retls"
local H = require "helpers"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

local function server_ctx(opts)
  opts = opts or {}
  opts.role, opts.certfile, opts.keyfile = "server", pki.server_cert, pki.server_key
  return retls.context(opts)
end

describe("the handshake", function()
  -- test_implicit_handshake_on_server_write
  it("runs implicitly in a server's first write, which raises WantRead until the client answers", function()
    local client, server = retls.pair(nil, nil, { handshake = false })
    assert.are.equal(retls.WantRead, H.raised(server.write, server, "banner"))
    local n
    for _ = 1, 10 do
      local cerr = H.raised(client.handshake, client)
      assert.is_true(cerr == nil or cerr == retls.WantRead)
      local err
      err, n = H.raised(server.flush, server)
      if err == nil then break end
      assert.are.equal(retls.WantRead, err)
    end
    assert.are.equal(6, n)
    assert.are.equal("banner", H.drain(client))
  end)

  -- test_pair_without_handshake_needs_both_ends
  it("cannot finish with one end of a pair alone", function()
    local client, server = retls.pair(nil, nil, { handshake = false })
    assert.is_nil(client:info().version)
    assert.are.equal(retls.WantRead, H.raised(client.handshake, client))
    assert.are.equal("read", client:want())
    for _ = 1, 10 do
      local a = H.raised(server.handshake, server)
      local b = H.raised(client.handshake, client)
      if a == nil and b == nil then break end
    end
    assert.are.equal("TLSv1.3", client:info().version)
    assert.is_nil(client:want())
  end)

  -- test_memory_mode_handshake_by_hand
  it("is driven by hand in memory mode with bio_read / bio_write", function()
    local c = retls.wrap(retls.context{ verify = true, cafile = pki.ca }, nil,
      { server_hostname = "localhost" })
    local s = retls.wrap(server_ctx(), nil)
    assert.are.equal(-1, c:getfd())
    assert.are.equal("", c:bio_read()) -- nothing before the first step
    assert.are.equal(retls.WantRead, H.raised(c.handshake, c))
    local hello = c:bio_read()
    assert.is_true(#hello > 0)
    assert.are.equal(22, hello:byte(1)) -- a handshake record
    assert.are.equal(0, c:bio_pending())
    assert.are.equal(#hello, s:bio_write(hello))
    assert.are.equal(retls.WantRead, H.raised(s.handshake, s))
    assert.is_true(s:bio_pending() > 0)
    -- ServerHello .. Finished to the client, which completes
    c:bio_write(s:bio_read())
    assert.is_true(c:handshake())
    -- the client's Finished to the server
    s:bio_write(c:bio_read())
    assert.is_true(s:handshake())
    assert.are.equal("TLSv1.3", c:info().version)
    assert.are.equal(0, c:info().verify_result)
    -- application data both ways, ciphertext moved by hand
    assert.are.equal(5, c:write("hello"))
    H.relay(c, s)
    assert.are.equal("hello", s:read())
    s:write("back")
    H.relay(s, c)
    assert.are.equal("back", c:read())
    -- bio_read(n) gives at most n bytes
    c:write("more")
    local first = c:bio_read(3)
    assert.are.equal(3, #first)
    s:bio_write(first .. c:bio_read())
    assert.are.equal("more", s:read())
  end)

  -- test_memory_mode_is_unbounded_by_default
  it("memory mode is unbounded by default: a 300 KiB write goes through at once, bio_read() takes it all", function()
    local c = retls.wrap(retls.context{ verify = false }, nil)
    local s = retls.wrap(server_ctx(), nil)
    H.handshake_memory(c, s)
    H.relay(s, c) -- session tickets
    H.drain(c)
    local data = H.pattern(300 * 1024, 32)
    assert.are.equal(#data, c:write(data))
    assert.are.equal(0, c:pending_write())
    local size = #data + 22 * math.ceil(#data / 16384)
    assert.are.equal(size, c:bio_pending())
    local ciphertext = c:bio_read() -- everything, in one string
    assert.are.equal(size, #ciphertext)
    assert.are.equal(0, c:bio_pending())
    assert.are.equal("", c:bio_read())
    s:bio_write(ciphertext)
    assert.are.equal(data, H.drain(s))
  end)

  it("bio_read(n) takes n bytes in order, across the drain's stack buffer and beyond", function()
    local c = retls.wrap(retls.context{ verify = false }, nil)
    local s = retls.wrap(server_ctx(), nil)
    H.handshake_memory(c, s)
    H.relay(s, c)
    H.drain(c)
    local data = H.pattern(100000, 33)
    c:write(data)
    local total = c:bio_pending()
    local parts = {}
    for _, n in ipairs({ 1, 24575, 24576, 24577, 20000 }) do
      parts[#parts + 1] = c:bio_read(n)
      assert.are.equal(n, #parts[#parts])
    end
    parts[#parts + 1] = c:bio_read(2 ^ 31 - 1) -- the rest, never more
    assert.are.equal(total, #table.concat(parts))
    assert.are.equal("", c:bio_read())
    s:bio_write(table.concat(parts))
    assert.are.equal(data, H.drain(s))
  end)

  -- test_memory_mode_full_buffer_wants_write
  it("raises WantWrite in memory mode when the outgoing buffer is full, until it is drained", function()
    local c = retls.wrap(retls.context{ verify = false }, nil, { capacity = 1024 })
    local s = retls.wrap(server_ctx(), nil)
    H.handshake_memory(c, s)
    local data = H.pattern(50000, 31)
    assert.are.equal(retls.WantWrite, H.raised(c.write, c, data))
    assert.are.equal(1024, c:bio_pending())
    local got, rounds = {}, 0
    while true do
      rounds = rounds + 1
      H.relay(c, s)
      got[#got + 1] = H.drain(s)
      local err, n = H.raised(c.flush, c)
      if err == nil then
        assert.are.equal(50000, n)
        break
      end
      assert.are.equal(retls.WantWrite, err)
    end
    assert.is_true(rounds > 40) -- ~50 KiB through a 1 KiB window
    H.relay(c, s)
    got[#got + 1] = H.drain(s)
    assert.are.equal(data, table.concat(got))
  end)

  -- test_unexpected_eof_memory / test_clean_shutdown_memory
  it("reports eof in memory mode when the peer's stream ends without close_notify", function()
    local c = retls.wrap(retls.context{ verify = false }, nil)
    local s = retls.wrap(server_ctx(), nil)
    H.handshake_memory(c, s)
    s:bio_write_eof()
    local err = H.raised(s.read, s)
    assert.are.equal("eof", err.kind)
  end)

  it("reports zero_return in memory mode after the peer's shutdown()", function()
    local c = retls.wrap(retls.context{ verify = false }, nil)
    local s = retls.wrap(server_ctx(), nil)
    H.handshake_memory(c, s)
    assert.is_true(c:shutdown())
    H.relay(c, s)
    assert.are.equal("zero_return", H.raised(s.read, s).kind)
  end)
end)

describe("context options", function()
  -- test_alpn_negotiated
  it("negotiate ALPN: the server picks the first of its own protocols the client offered", function()
    local cases = {
      { { "h2", "http/1.1" }, { "http/1.1", "h2" }, "http/1.1" },
      { { "h2", "http/1.1" }, { "h2" }, "h2" },
      { { "spdy/1" }, { "h2" }, nil },
      { nil, { "h2" }, nil },
    }
    for _, case in ipairs(cases) do
      -- alpn_strict = false: the lenient server continues without an
      -- overlap (the strict default: sessions_spec.lua, against s_client)
      local client, server = retls.pair(retls.context{ verify = false, alpn = case[1] },
        server_ctx{ alpn = case[2], alpn_strict = false })
      assert.are.equal(case[3], client:info().alpn)
      assert.are.equal(case[3], server:info().alpn)
    end
  end)

  -- test_keylog_nss_format
  it("keylog appends the TLS 1.3 secrets in NSS key log format", function()
    local path = pki.dir .. "/keys.log"
    local client = retls.pair(retls.context{ verify = false, keylog = path })
    local log = H.readfile(path)
    local labels = {}
    for label, cr, secret in log:gmatch("(%u[%u%d_]+) (%x+) (%x+)\n") do
      assert.are.equal(64, #cr) -- the client random, hex
      assert.is_true(#secret >= 64)
      labels[label] = (labels[label] or 0) + 1
    end
    for _, label in ipairs({ "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                             "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET" }) do
      assert.are.equal(1, labels[label], label)
    end
    client:close()
  end)

  -- test_versions_take_effect
  it("min_version / max_version take effect, and a disagreement fails the handshake", function()
    local client = retls.pair()
    assert.are.equal("TLSv1.3", client:info().version)
    local c12, s12 = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2" })
    assert.are.equal("TLSv1.2", c12:info().version)
    assert.are.equal("TLSv1.2", s12:info().version)
    local err = H.raised(retls.pair, retls.context{ verify = false, max_version = "TLSv1.2" },
      server_ctx{ min_version = "TLSv1.3" })
    assert.are.equal("ssl", err.kind)
    assert.matches("protocol", err.message)
  end)

  -- test_ciphers_take_effect
  it("ciphersuites (TLS 1.3) and ciphers (TLS 1.2) take effect", function()
    local c = retls.pair(retls.context{ verify = false, ciphersuites = "TLS_CHACHA20_POLY1305_SHA256" })
    assert.are.equal("TLS_CHACHA20_POLY1305_SHA256", c:info().cipher)
    c = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2",
      ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256" })
    assert.are.equal("ECDHE-ECDSA-AES128-GCM-SHA256", c:info().cipher)
  end)
end)
