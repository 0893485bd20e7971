-- LuaSec 1.2's inspection methods on retls connections (issue 14, the
-- methods LuaSec code also calls): getfinished / getpeerfinished,
-- exportkeyingmaterial, getpeerverification, getpeerchain /
-- getlocalchain / getlocalcertificate, getsniname, info, getstats /
-- setstats, and the ones retls does not provide (setdane, settlsa,
-- server-side sni), which answer nil and the reason.  Peers: Debian's
-- LuaSec in this process (both roles), a retls server in this process,
-- and openssl s_client.  Every server is started and stopped here; every
-- loop is bounded.
local lssl = require "retls.luasec"
local ssl = require "ssl" -- the real LuaSec, as the peer
local socket = require "socket"
local H = require "helpers"
local F = require "luasec_fixtures"

local pki
setup(function()
  pki = H.make_pki(H.tmpdir())
  -- a server certificate file with its CA behind it (a chain of two)
  local chain = assert(io.open(pki.dir .. "/chain.pem", "wb"))
  chain:write(H.readfile(pki.server_cert), H.readfile(pki.ca))
  chain:close()
  pki.chain = pki.dir .. "/chain.pem"
  pki.ca_key = pki.dir .. "/ca.key"
end)
teardown(function() H.rmdir(pki.dir) end)

-- A client of client_lib and a server of server_lib over TCP, both
-- non-blocking, handshake done through F.run.  before(c, s) runs between
-- wrap and handshake (for sni).
local function connected(client_lib, server_lib, cparams, sparams, before)
  local a, b = F.tcp_pair()
  local c = assert(client_lib.wrap(a, cparams or F.client_params(pki)))
  local s = assert(server_lib.wrap(b, sparams or F.server_params(pki)))
  c:settimeout(0)
  s:settimeout(0)
  if before then before(c, s) end
  local errs = {}
  F.run({
    function() errs[1] = select(2, F.handshake(c)) end,
    function() errs[2] = select(2, F.handshake(s)) end,
  }, 20)
  assert(errs[1] == nil and errs[2] == nil,
    ("handshake: client %s, server %s"):format(tostring(errs[1]), tostring(errs[2])))
  return c, s
end

local function der_of(pem_file)
  local out = pem_file .. ".der"
  H.run(("%s x509 -in '%s' -outform DER -out '%s'"):format(H.OPENSSL, pem_file, out))
  return H.readfile(out)
end

local function hex(s)
  return (s:gsub(".", function(ch) return ("%02X"):format(ch:byte()) end))
end

-- Every pairing the methods must agree across: retls client / LuaSec
-- server, LuaSec client / retls server, retls on both ends.
local PAIRINGS = {
  { "retls client, LuaSec server", lssl, ssl },
  { "LuaSec client, retls server", ssl, lssl },
  { "retls on both ends", lssl, lssl },
}

describe("getfinished() / getpeerfinished()", function()
  for _, p in ipairs(PAIRINGS) do
    for _, proto in ipairs({ "tlsv1_3", "tlsv1_2" }) do
      it(("cross over (%s, %s): what one end sent is what the other received"):format(p[1], proto), function()
        local c, s = connected(p[2], p[3], F.client_params(pki, { protocol = proto }),
          F.server_params(pki, { protocol = proto }))
        local cf, sf = c:getfinished(), s:getfinished()
        -- TLS 1.3 with TLS_AES_256_GCM_SHA384: SHA-384 sized; TLS 1.2: 12 bytes
        assert.are.equal(proto == "tlsv1_3" and 48 or 12, #cf)
        assert.are.equal(cf, s:getpeerfinished())
        assert.are.equal(sf, c:getpeerfinished())
        assert.are_not.equal(cf, sf)
        c:close()
        s:close()
      end)
    end
  end
end)

describe("exportkeyingmaterial(label, length [, context])", function()
  for _, p in ipairs(PAIRINGS) do
    for _, proto in ipairs({ "tlsv1_3", "tlsv1_2" }) do
      it(("gives the same bytes on both ends (%s, %s)"):format(p[1], proto), function()
        local c, s = connected(p[2], p[3], F.client_params(pki, { protocol = proto }),
          F.server_params(pki, { protocol = proto }))
        local k = c:exportkeyingmaterial("EXPERIMENTAL-retls", 32, "ctx")
        assert.are.equal(32, #k)
        assert.are.equal(k, s:exportkeyingmaterial("EXPERIMENTAL-retls", 32, "ctx"))
        assert.are.equal(c:exportkeyingmaterial("EXPERIMENTAL-retls", 100),
          s:exportkeyingmaterial("EXPERIMENTAL-retls", 100))
        assert.are_not.equal(k, s:exportkeyingmaterial("EXPERIMENTAL-retls", 32, "ctX"))
        assert.are_not.equal(k, s:exportkeyingmaterial("EXPERIMENTAL-other", 32, "ctx"))
        c:close()
        s:close()
      end)
    end
  end

  it("equals what openssl s_client exports on its end of the connection", function()
    local listener = assert(socket.bind("127.0.0.1", 0))
    local _, port = listener:getsockname()
    local out, err = pki.dir .. "/s_client.out", pki.dir .. "/s_client.err"
    -- -ign_eof: stay until the server closes (stdin is empty)
    local p = assert(io.popen(("sh -c 'echo $$; exec timeout 30 %s s_client " ..
      "-connect 127.0.0.1:%d -servername localhost -ign_eof -keymatexport " ..
      "EXPERIMENTAL-retls -keymatexportlen 20 </dev/null >%s 2>%s' &")
      :format(H.OPENSSL, port, out, err)))
    local pid = assert(tonumber(p:read("*l")))
    p:close()
    listener:settimeout(10)
    local sock = assert(listener:accept())
    listener:close()
    local s = assert(lssl.wrap(sock, F.server_params(pki)))
    s:settimeout(10)
    assert(s:dohandshake())
    local mine = s:exportkeyingmaterial("EXPERIMENTAL-retls", 20)
    assert.are.equal("localhost", s:getsniname())
    s:close() -- close_notify: s_client exits
    assert.is_true(H.wait_exit(pid, 10))
    local text = H.readfile(out) or ""
    local theirs = text:match("Keying material: (%x+)")
    assert(theirs, "s_client printed no keying material: " .. text .. (H.readfile(err) or ""))
    assert.are.equal(theirs, hex(mine))
  end)

  it("answers nil, \"closed\" before the handshake and after close, and raises for bad arguments as LuaSec does", function()
    local a, b = F.tcp_pair()
    local c = assert(lssl.wrap(a, F.client_params(pki)))
    assert.are.same({ nil, "closed" }, { c:exportkeyingmaterial("x", 8) })
    c:close()
    b:close()
    c, b = connected(lssl, ssl)
    assert.has_error(function() c:exportkeyingmaterial(nil, 8) end)
    assert.has_error(function() c:exportkeyingmaterial("x") end)
    assert.has_error(function() c:exportkeyingmaterial("x", 0) end)
    c:close()
    assert.are.same({ nil, "closed" }, { c:exportkeyingmaterial("x", 8) })
    b:close()
  end)

  it("answers nil and OpenSSL's refusal for TLS 1.2's key-schedule labels, and the connection goes on", function()
    local c, s = connected(lssl, ssl, F.client_params(pki, { protocol = "tlsv1_2" }))
    local k, err = c:exportkeyingmaterial("master secret", 16)
    assert.is_nil(k)
    assert.matches("error exporting keying material: .*master secret", err)
    -- LuaSec refuses it too
    assert.is_nil((s:exportkeyingmaterial("master secret", 16)))
    assert.are.equal(4, c:send("ping"))
    F.run({ function() assert.are.equal("ping", F.receive(s, 4)) end }, 10)
    c:close()
    s:close()
  end)
end)

describe("getpeerverification()", function()
  it("is true on a verifying client with the right CA, and on a server that asked for no certificate, as LuaSec's", function()
    for _, p in ipairs(PAIRINGS) do
      local c, s = connected(p[2], p[3])
      assert.are.same({ true }, { c:getpeerverification() })
      assert.are.same({ true }, { s:getpeerverification() })
      c:close()
      s:close()
    end
  end)

  it("is false with OpenSSL's reason against a self-signed certificate in verify = \"none\", exactly LuaSec's answer", function()
    local sparams = F.server_params(pki, { certificate = pki.ca, key = pki.ca_key })
    local cparams = { mode = "client", protocol = "any", verify = "none" }
    local results = {}
    for i, lib in ipairs({ ssl, lssl }) do
      local c, s = connected(lib, ssl, cparams, sparams)
      results[i] = { c:getpeerverification() }
      c:close()
      s:close()
    end
    assert.are.same({ false, "self-signed certificate" }, results[2])
    assert.are.same(results[1], results[2])
  end)

  it("is false, \"closed\" before the handshake and after close, as LuaSec's", function()
    local a, b = F.tcp_pair()
    local c = assert(lssl.wrap(a, F.client_params(pki)))
    assert.are.same({ false, "closed" }, { c:getpeerverification() })
    c:close()
    b:close()
    local s
    c, s = connected(lssl, ssl)
    c:close()
    s:close()
    assert.are.same({ false, "closed" }, { c:getpeerverification() })
    assert.are.same({ false, "closed" }, { s:getpeerverification() }) -- LuaSec's
  end)
end)

describe("getpeerchain() / getlocalchain() / getpeercertificate(n) / getlocalcertificate(n)", function()
  it("give the chain as DER strings, own certificate first, the same certificates LuaSec sees", function()
    local leaf, ca = der_of(pki.server_cert), der_of(pki.ca)
    local sparams = F.server_params(pki, { certificate = pki.chain })
    -- retls client, LuaSec server
    local c, s = connected(lssl, ssl, nil, sparams)
    assert.are.same({ leaf, ca }, c:getpeerchain())
    assert.are.equal(leaf, c:getpeercertificate())
    assert.are.equal(ca, c:getpeercertificate(2))
    assert.is_nil(c:getpeercertificate(3))
    assert.are.same({ nil, "invalid certificate index" }, { c:getpeercertificate(0) })
    assert.are.same({}, c:getlocalchain()) -- the client sent none
    assert.is_nil(c:getlocalcertificate())
    c:close()
    s:close()

    -- LuaSec client, retls server: the server's own chain, and LuaSec's
    -- view of the peer's chain has the same certificates in the same order
    c, s = connected(ssl, lssl, nil, sparams)
    assert.are.same({ leaf, ca }, s:getlocalchain())
    assert.are.equal(leaf, s:getlocalcertificate())
    assert.are.equal(ca, s:getlocalcertificate(2))
    assert.are.same({}, s:getpeerchain()) -- no client certificate
    assert.is_nil(s:getpeercertificate())
    local seen = c:getpeerchain()
    assert.are.equal(2, #seen)
    assert.are.equal(F.sha256(leaf, pki.dir), seen[1]:digest("sha256"):lower())
    assert.are.equal(F.sha256(ca, pki.dir), seen[2]:digest("sha256"):lower())
    c:close()
    s:close()
  end)

  it("put a client certificate first in a server's view, as LuaSec's getpeerchain does", function()
    local cparams = F.client_params(pki, { certificate = pki.client_cert, key = pki.client_key })
    local sparams = F.server_params(pki, { verify = { "peer", "fail_if_no_peer_cert" }, cafile = pki.ca })
    -- (the client's OpenSSL adds the CA from its trust store behind its
    -- certificate: two certificates arrive)
    local want = { der_of(pki.client_cert), der_of(pki.ca) }
    local c, s = connected(ssl, lssl, cparams, sparams)
    assert.are.same(want, s:getpeerchain())
    assert.are.equal(want[1], s:getpeercertificate())
    assert.are.equal(want[2], s:getpeercertificate(2))
    assert.are.same({ true }, { s:getpeerverification() })
    c:close()
    s:close()
    -- LuaSec's server sees the same two, in the same order
    c, s = connected(lssl, ssl, cparams, sparams)
    local seen = s:getpeerchain()
    assert.are.equal(2, #seen)
    for i = 1, 2 do
      assert.are.equal(F.sha256(want[i], pki.dir), seen[i]:digest("sha256"):lower())
    end
    assert.are.same({ true }, { s:getpeerverification() })
    c:close()
    s:close()
  end)

  it("answer nil, \"closed\" before the handshake and after close", function()
    local a, b = F.tcp_pair()
    local c = assert(lssl.wrap(a, F.client_params(pki)))
    for _, m in ipairs({ "getpeerchain", "getlocalchain", "getpeercertificate",
                         "getlocalcertificate", "getfinished", "getpeerfinished" }) do
      assert.are.same({ nil, "closed" }, { c[m](c) })
    end
    c:close()
    b:close()
    for _, m in ipairs({ "getpeerchain", "getpeercertificate", "getfinished" }) do
      assert.are.same({ nil, "closed" }, { c[m](c) })
    end
  end)
end)

describe("getsniname() and info()", function()
  it("getsniname() gives the name the client asked for, on both ends", function()
    local function name_it(c) c:sni("localhost") end -- (LuaSec's returns nothing)
    local c, s = connected(lssl, ssl, nil, nil, name_it)
    assert.are.equal("localhost", s:getsniname()) -- LuaSec's server
    assert.are.equal("localhost", c:getsniname())
    c:close()
    s:close()
    c, s = connected(ssl, lssl, nil, nil, name_it)
    assert.are.equal("localhost", s:getsniname()) -- retls' server
    c:close()
    s:close()
    -- a client that named nobody (an IP address is never sent as SNI)
    c, s = connected(lssl, lssl)
    assert.is_nil(c:getsniname())
    assert.is_nil(s:getsniname())
    c:close()
    s:close()
  end)

  it("info() has LuaSec's fields with LuaSec's values on the other end of the connection", function()
    for _, proto in ipairs({ "tlsv1_3", "tlsv1_2" }) do
      local c, s = connected(lssl, ssl, F.client_params(pki, { protocol = proto }))
      local mine, theirs = c:info(), s:info()
      for _, k in ipairs({ "protocol", "cipher", "bits", "algbits", "key",
                           "authentication", "encryption", "mac", "export" }) do
        assert.are.equal(theirs[k], mine[k], k)
        assert.are.equal(theirs[k], c:info(k), k)
      end
      assert.is_false(mine.export)
      assert.is_nil(mine.compression)
      -- retls' own fields stay
      assert.are.equal(mine.protocol, mine.version)
      c:close()
      s:close()
    end
  end)
end)

describe("getstats() / setstats()", function()
  it("count the bytes sent and handed out exactly, as LuaSec counts them on the other end", function()
    local c, s = connected(lssl, ssl)
    local r0, s0 = c:getstats()
    assert.are.same({ 0, 0 }, { r0, s0 })
    local data = H.pattern(50000, 3)
    F.run({ function() assert(F.send(c, data)) end,
            function() assert.are.equal(data, F.receive(s, #data)) end }, 20)
    F.run({ function() assert(F.send(s, "one\ntwo\nthree-and-more")) end }, 10)
    -- receive("*l") reads the whole record ahead but hands out one line:
    -- "received" counts what it handed out (LuaSocket's rule)
    F.run({ function() assert.are.equal("one", F.receive(c, "*l")) end }, 10)
    local received, sent, age = c:getstats()
    assert.are.equal(4, received)
    assert.are.equal(50000, sent)
    assert.is_true(age >= 0 and age < 60)
    -- LuaSec on the other end counts the same bytes
    local lrecv, lsent = s:getstats()
    assert.are.equal(50000, lrecv)
    assert.are.equal(#"one\ntwo\nthree-and-more", lsent)
    assert.are.equal("two", c:receive("*l"))
    assert.are.equal(8, (c:getstats()))
    -- setstats moves the counters, as LuaSocket's does
    assert.are.equal(1, c:setstats(100, 200, 1000))
    received, sent, age = c:getstats()
    assert.are.same({ 100, 200 }, { received, sent })
    assert.is_true(age >= 1000 and age < 1060)
    assert.are.equal(3, c:send("abc"))
    assert.are.equal(203, select(2, c:getstats()))
    assert.are.equal(1, c:setstats(nil, 0))
    received, sent = c:getstats()
    assert.are.same({ 100, 0 }, { received, sent })
    c:close()
    s:close()
  end)
end)

describe("LuaSec methods retls does not provide", function()
  it("exist and answer nil, \"<method> is not supported by retls.luasec: ...\"", function()
    local c, s = connected(lssl, lssl)
    for name, r in pairs({ setdane = { c:setdane("example.org") },
                           settlsa = { c:settlsa(3, 1, 1, ("x"):rep(32)) } }) do
      assert.is_nil(r[1])
      assert.matches("^" .. name .. " is not supported by retls%.luasec: ", r[2])
      assert.matches("DANE", r[2], 1, true)
    end
    -- LuaSec's server-side sni: a table of contexts per name
    local ctx = assert(lssl.newcontext(F.server_params(pki)))
    local n, err = s:sni({ ["other.example"] = ctx }, true)
    assert.is_nil(n)
    assert.matches("^sni is not supported by retls%.luasec on servers", err)
    -- and as a parameter (not LuaSec's, but the natural guess)
    n, err = lssl.newcontext(F.server_params(pki, { sni = { ["a.example"] = ctx } }))
    assert.is_nil(n)
    assert.matches("parameter 'sni': server%-side SNI", err)
    c:close()
    s:close()
  end)
end)
