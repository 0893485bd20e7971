-- The module itself, info() and stats() tables, tostring (mirrors
-- tests/python/test_smoke.py and tests/c/test_stats.c).
local retls = require "retls"
local H = require "helpers"

-- The one version: RETLS_VERSION in the C header (specs run in tests/lua).
local function header_version()
  local f = assert(io.open("../../core/include/retls.h"))
  local v = f:read("*a"):match('#define RETLS_VERSION "([^"]+)"')
  f:close()
  return v
end

describe("require 'retls'", function()
  -- test_versions
  it("has _VERSION (retls.h's RETLS_VERSION) and OPENSSL_VERSION", function()
    assert.matches("^%d+%.%d+%.%d+$", header_version())
    assert.are.equal("retls " .. header_version(), retls._VERSION)
    assert.matches("^OpenSSL 3%.", retls.OPENSSL_VERSION)
  end)

  it("gives contexts a readable tostring", function()
    assert.are.equal("retls.context (client)", tostring(retls.context()))
    assert.are.equal("retls.context (server)", tostring(retls.context{ role = "server" }))
  end)
end)

describe("a pair", function()
  -- test_pair_moves_bytes
  it("moves bytes both ways", function()
    local client, server = retls.pair()
    assert.are.equal(5, client:write("hello"))
    assert.are.equal("hello", server:read())
    assert.are.equal(3, server:write("hey"))
    assert.are.equal("hey", client:read(100))
    assert.are.equal("retls.connection (client, pair, TLSv1.3)", tostring(client))
    assert.are.equal("retls.connection (server, pair, TLSv1.3)", tostring(server))
  end)

  -- test_information
  it("reports info(): version, cipher, alpn, peer certificate, verify result", function()
    local client, server = retls.pair()
    local info = client:info()
    assert.are.equal("TLSv1.3", info.version)
    assert.are.equal("TLS_AES_256_GCM_SHA384", info.cipher)
    assert.is_nil(info.alpn)
    assert.are.equal(0x30, info.peer_certificate:byte(1)) -- DER: a SEQUENCE
    assert.are.equal(18, info.verify_result) -- self-signed, verification off
    assert.are.equal("self-signed certificate", info.verify_text)
    assert.is_nil(server:info().peer_certificate) -- no client certificate
    assert.are.equal(-1, client:getfd())
    assert.is_false(client:dirty())
  end)

  it("reports info() before the handshake with nil fields", function()
    local client = retls.pair(nil, nil, { handshake = false })
    local info = client:info()
    assert.is_nil(info.version)
    assert.is_nil(info.cipher)
    assert.is_nil(info.peer_certificate)
  end)

  it("says dirty() while decrypted bytes wait to be read", function()
    local client, server = retls.pair()
    client:write("0123456789")
    assert.are.equal("0", server:read(1))
    assert.is_true(server:dirty())
    assert.are.equal("123456789", server:read())
    assert.is_false(server:dirty())
  end)

  -- test_stats_count_exactly / test_counters_after_script
  it("counts exactly in stats()", function()
    local client, server = retls.pair(nil, nil, { capacity = 4096 })
    local zero = { writes = 0, bytes_written = 0, want_read = 0, want_write = 0,
                   retries = 0, mismatches = 0, bytes_read = 0,
                   early_bytes = 0, early_replayed = 0 }
    assert.are.same(zero, client:stats())
    client:write("abc")
    assert.are.equal(retls.WantWrite, H.raised(client.write, client, ("x"):rep(20000)))
    assert.are.equal("retry_mismatch", H.raised(client.write, client, "y").kind)
    local got = {}
    H.flush_through(client, server, got)
    got[#got + 1] = H.drain(server)
    assert.are.equal("abc" .. ("x"):rep(20000), table.concat(got))
    server:write("back")
    assert.are.equal("back", client:read())
    local st = client:stats()
    assert.are.equal(2, st.writes)
    assert.are.equal(20003, st.bytes_written)
    assert.are.equal(0, st.want_read)
    assert.is_true(st.want_write >= 1)
    assert.are.equal(st.want_write, st.retries)
    assert.are.equal(1, st.mismatches)
    assert.are.equal(4, st.bytes_read)
    assert.are.equal(20003, server:stats().bytes_read)
    for k, v in pairs(st) do
      assert.are.equal("number", type(v), k)
      assert.are.equal(math.floor(v), v, k)
    end
  end)
end)
