-- Writes that meet a TLS 1.2 renegotiation or a TLS 1.3 KeyUpdate
-- (mirrors tests/c/test_rekey.c, whose header tells what OpenSSL 3.0 does):
--   - after renegotiate() the client's next write sends a ClientHello and
--     raises WantRead until the server answered; the bytes are kept;
--   - sending a KeyUpdate never waits for the peer, so it never makes a
--     write raise WantRead; it can make one raise WantWrite when there is
--     no room for the KeyUpdate record;
--   - a requested update is answered with the receiver's next write, once.
-- The TLS 1.3 specs run in memory mode and split the ciphertext into
-- records: with AES-GCM a KeyUpdate record has a 22-byte payload and a
-- 1-byte application record an 18-byte one.
local retls = require "retls"
local H = require "helpers"

local KEY_UPDATE_RECORD, ONE_BYTE_RECORD = 22, 18

-- Payload lengths of the TLS records in wire (5-byte headers).
local function records(wire)
  local lens, i = {}, 1
  while i <= #wire do
    local hi, lo = wire:byte(i + 3, i + 4)
    local len = hi * 256 + lo
    assert(i + 4 + len <= #wire, "torn record")
    lens[#lens + 1] = len
    i = i + 5 + len
  end
  return lens
end

-- Move a's ciphertext to b and return the record lengths it held.
local function relay_records(a, b)
  return records(H.relay(a, b))
end

local sctx
local function memory_pair(capacity)
  local c = retls.wrap(retls.context{ verify = false }, nil, { capacity = capacity })
  local s = retls.wrap(sctx, nil)
  H.handshake_memory(c, s)
  return c, s
end

local dir
setup(function()
  dir = H.tmpdir()
  local pki = H.make_pki(dir)
  sctx = retls.context{ role = "server", certfile = pki.server_cert, keyfile = pki.server_key }
end)
teardown(function() H.rmdir(dir) end)

describe("TLS 1.2 renegotiation", function()
  -- test_renegotiation_makes_write_want_read
  it("makes the next write raise WantRead until the server answered, then sends the bytes once", function()
    local client, server = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2" })
    assert.are.equal("TLSv1.2", client:info().version)
    assert.is_true(client:renegotiate())
    assert.are.equal(retls.WantRead, H.raised(client.write, client, "hello"))
    assert.are.equal(5, client:pending_write())
    assert.are.equal("read", client:want())
    -- Other bytes while it waits are refused, and the text says what the
    -- pending write waits for.
    local err = H.raised(client.write, client, "HELLO")
    assert.are.equal("retry_mismatch", err.kind)
    assert.matches("readable", err.message)
    local got, n, rounds = {}, nil, 0
    repeat
      rounds = rounds + 1
      got[#got + 1] = H.drain(server)
      err, n = H.raised(client.flush, client)
      assert.is_true(err == nil or err == retls.WantRead)
    until err == nil
    assert.are.equal(5, n)
    assert.are.equal(2, rounds) -- server hello flight, then server Finished
    got[#got + 1] = H.drain(server)
    assert.are.equal("hello", table.concat(got))
    local st = client:stats()
    assert.are.equal(2, st.want_read)
    assert.are.equal(0, st.want_write)
    assert.are.equal(1, st.mismatches)
    -- The renegotiated session carries data both ways.
    assert.are.equal(4, server:write("back"))
    assert.are.equal("back", H.drain(client))
  end)

  -- test_renegotiation_by_handshake
  it("can be driven by handshake() before any write", function()
    local client, server = retls.pair(retls.context{ verify = false, max_version = "TLSv1.2" })
    client:renegotiate()
    assert.are.equal(retls.WantRead, H.raised(client.handshake, client))
    assert.is_true(server:handshake()) -- the server learns of it by reading
    local rounds = 0
    repeat
      rounds = rounds + 1
      assert.are.equal("", H.drain(server))
    until H.raised(client.handshake, client) == nil
    assert.are.equal(2, rounds)
    client:write("after")
    assert.are.equal("after", H.drain(server))
  end)
end)

describe("TLS 1.3 KeyUpdate", function()
  for _, request in ipairs({ true, false }) do
    -- test_key_update_requested_is_answered / _not_requested_is_not_answered
    it(("is sent with the next write without WantRead and %s by the peer's next write")
      :format(request and "answered once" or "not answered"), function()
      local c, s = memory_pair()
      assert.is_true(s:key_update(request))
      assert.are.equal(1, s:write("x"))
      assert.are.same({ KEY_UPDATE_RECORD, ONE_BYTE_RECORD }, relay_records(s, c))
      assert.are.equal("x", H.drain(c))
      c:write("y")
      if request then
        assert.are.same({ KEY_UPDATE_RECORD, ONE_BYTE_RECORD }, relay_records(c, s))
      else
        assert.are.same({ ONE_BYTE_RECORD }, relay_records(c, s))
      end
      c:write("z") -- answered once only
      assert.are.same({ ONE_BYTE_RECORD }, relay_records(c, s))
      -- Both sides decrypt under the new keys.
      assert.are.equal("yz", H.drain(s))
      s:write("w")
      assert.are.same({ ONE_BYTE_RECORD }, relay_records(s, c))
      assert.are.equal("w", H.drain(c))
      for _, conn in ipairs({ c, s }) do
        local st = conn:stats()
        assert.are.equal(0, st.want_read)
        assert.are.equal(0, st.want_write)
      end
    end)
  end

  -- test_key_update_requested_while_write_pending
  it("requested while a write is pending: no WantRead, the pending records go out unchanged, the answer follows", function()
    local LEN = 4 * 16384
    local data = H.pattern(LEN, 41)
    local c, s = memory_pair(4096)
    assert.are.equal(retls.WantWrite, H.raised(c.write, c, data))
    s:key_update(true)
    s:write("x")
    assert.are.equal(KEY_UPDATE_RECORD, relay_records(s, c)[1])
    assert.are.equal("x", H.drain(c))
    assert.are.equal(LEN, c:pending_write())
    -- Finish the write by hand, capturing everything the client sends.
    local got, wire, rounds, n = {}, {}, 0, nil
    while true do
      wire[#wire + 1] = H.relay(c, s)
      got[#got + 1] = H.drain(s)
      local err
      err, n = H.raised(c.flush, c)
      rounds = rounds + 1
      assert.is_true(err == nil or err == retls.WantWrite, tostring(err))
      if err == nil or rounds > 1000 then break end
    end
    assert.are.equal(LEN, n)
    wire[#wire + 1] = H.relay(c, s)
    -- Only the four full application records: the answer is not wedged
    -- into the pending write.
    assert.are.same({ 16401, 16401, 16401, 16401 }, records(table.concat(wire)))
    c:write("y")
    assert.are.same({ KEY_UPDATE_RECORD, ONE_BYTE_RECORD }, relay_records(c, s))
    got[#got + 1] = H.drain(s)
    assert.are.equal(data .. "y", table.concat(got))
    local st = c:stats()
    assert.are.equal(0, st.want_read)
    assert.are.equal(rounds, st.want_write) -- first write + rounds-1 flushes
  end)

  -- test_key_update_send_blocked_wants_write
  it("raises WantWrite (never WantRead) when there is no room for the KeyUpdate record", function()
    local c, s = memory_pair(1024)
    local filler = H.pattern(1024 - 5 - 17, 42) -- one record filling the buffer
    assert.are.equal(#filler, c:write(filler))
    assert.are.equal(1024, c:bio_pending())
    c:key_update(true)
    assert.are.equal(retls.WantWrite, H.raised(c.write, c, "k"))
    assert.are.equal(1, c:pending_write())
    H.relay(c, s)
    assert.are.equal(1, c:flush())
    H.relay(c, s)
    assert.are.equal(filler .. "k", H.drain(s))
    assert.are.equal(0, c:stats().want_read)
  end)
end)
