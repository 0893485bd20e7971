-- Certificate verification (mirrors tests/c/test_verify.c): failures are
-- "verify" errors whose message carries OpenSSL's verify text; success
-- shows in info().
local retls = require "retls"
local H = require "helpers"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

local function server_ctx(opts)
  opts = opts or {}
  opts.role = "server"
  opts.certfile = opts.certfile or pki.server_cert
  opts.keyfile = opts.keyfile or pki.server_key
  return retls.context(opts)
end

-- A memory-mode client for server_hostname against a memory server;
-- returns the error the client's handshake ended with (nil: success).
local function memory_handshake(cctx, hostname, sctx)
  local c = retls.wrap(cctx, nil, { server_hostname = hostname })
  local s = retls.wrap(sctx or server_ctx(), nil)
  return H.raised(H.handshake_memory, c, s), c, s
end

describe("certificate verification", function()
  -- test_self_signed_rejected
  it("rejects a self-signed server by default, with the verify text, for good", function()
    local c, s = retls.pair(retls.context(), nil, { handshake = false }) -- verify is on by default
    local err
    for _ = 1, 10 do
      err = H.raised(c.handshake, c)
      if err ~= retls.WantRead then break end
      H.raised(s.handshake, s)
    end
    assert.are.equal("verify", err.kind)
    assert.matches("certificate verify failed", err.message)
    assert.matches("self%-signed certificate", err.message)
    assert.matches("^retls error %(verify%): handshake: certificate verify failed", tostring(err))
    assert.are.equal(18, c:info().verify_result) -- X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    assert.are.equal("self-signed certificate", c:info().verify_text)
    -- The failure is final, and its text survives.
    local again = H.raised(c.write, c, "x")
    assert.are.equal("closed", again.kind)
    assert.matches("self%-signed certificate", again.message)
  end)

  -- test_trusted_chain_accepted
  it("accepts a server whose chain leads to a trusted CA, and info() shows the peer certificate", function()
    local client, server = retls.pair(retls.context{ cafile = pki.ca }, server_ctx())
    local info = client:info()
    assert.are.equal(0, info.verify_result)
    assert.are.equal("ok", info.verify_text)
    -- The peer certificate is exactly the server's (DER of the PEM file).
    local der = H.run(("%s x509 -in '%s' -outform DER | od -An -v -tx1 | tr -d ' \\n'")
      :format(H.OPENSSL, pki.server_cert))
    assert.are.equal(der, (info.peer_certificate:gsub(".", function(ch)
      return ("%02x"):format(ch:byte())
    end)))
    -- The server asked for no client certificate.
    assert.is_nil(server:info().peer_certificate)
  end)

  -- test_hostname_mismatch
  it("rejects a certificate for another host name", function()
    local err = memory_handshake(retls.context{ cafile = pki.ca }, "other.example")
    assert.are.equal("verify", err.kind)
    assert.matches("hostname mismatch", err.message)
  end)

  -- test_ip_address_mismatch
  it("checks an IP address against the IP SANs", function()
    local err = memory_handshake(retls.context{ cafile = pki.ca }, "127.0.0.2")
    assert.are.equal("verify", err.kind)
    assert.matches("IP address mismatch", err.message)
    assert.is_nil(memory_handshake(retls.context{ cafile = pki.ca }, "127.0.0.1"))
  end)

  -- test_unknown_issuer
  it("rejects a chain from an issuer it does not trust", function()
    local err = memory_handshake(retls.context{ cafile = pki.other_ca }, "localhost")
    assert.are.equal("verify", err.kind)
    assert.matches("unable to get local issuer certificate", err.message)
  end)

  -- test_verification_off_accepts_and_reports
  it("when off, accepts anything and still reports the verify result", function()
    local client = retls.pair()
    assert.are.equal(18, client:info().verify_result)
  end)

  -- test_verifying_client_needs_a_server_name
  it("needs a server name to check", function()
    local err = H.raised(retls.wrap, retls.context(), nil)
    assert.are.equal("arg", err.kind)
    assert.matches("hostname", err.message)
    err = H.raised(retls.wrap, retls.context(), nil, { server_hostname = "" })
    assert.are.equal("arg", err.kind)
  end)

  -- test_client_certificate_required
  it("lets a server require a client certificate", function()
    local sctx = server_ctx{ verify = true, cafile = pki.ca }
    -- Without a certificate: the server refuses.
    local c, s = retls.pair(retls.context{ cafile = pki.ca }, sctx, { handshake = false })
    local serr
    for _ = 1, 10 do
      H.raised(c.handshake, c)
      serr = H.raised(s.handshake, s)
      if serr ~= retls.WantRead then break end
    end
    assert.are.equal("ssl", serr.kind)
    assert.matches("peer did not return a certificate", serr.message)
    -- The client learns it from the alert on its next read.
    local cerr = H.raised(c.read, c)
    assert.are.equal("ssl", cerr.kind)
    assert.matches("certificate required", cerr.message)
    -- With one: accepted, and the server sees it.
    local client, server = retls.pair(retls.context{ cafile = pki.ca,
      certfile = pki.client_cert, keyfile = pki.client_key }, sctx)
    assert.is_true(#server:info().peer_certificate > 0)
    assert.are.equal(0, server:info().verify_result)
  end)
end)
