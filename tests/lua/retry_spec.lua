-- The retry contract through the Lua module (mirrors tests/c/test_retry.c
-- and tests/python/test_retry.py, same test names in the comments).
--
-- A write that stops on WantWrite is kept by the connection: the caller's
-- string may be dropped and collected; flush() or a write with the same
-- bytes finishes it; other bytes raise a retry_mismatch error and change
-- nothing.  The peer must receive every acknowledged byte once, in order.
local retls = require "retls"
local H = require "helpers"

local CAP = 4096
local LEN = 64 * 1024

-- A pair whose client has data pending after a WantWrite.
local function blocked_pair(data)
  local client, server = retls.pair(nil, nil, { capacity = CAP })
  local err = H.raised(client.write, client, data)
  assert.are.equal(retls.WantWrite, err)
  assert.matches("writable", tostring(err))
  assert.are.equal(#data, client:pending_write())
  assert.are.equal("write", client:want())
  return client, server
end

describe("the retry contract", function()
  -- test_want_write_then_same_bytes_resumes
  it("resumes a write that raised WantWrite when the same bytes are written again", function()
    local data = H.pattern(LEN, 1)
    local client, server = blocked_pair(data)
    local got, n = {}, nil
    for _ = 1, 1000 do
      got[#got + 1] = H.drain(server)
      local err
      err, n = H.raised(client.write, client, data) -- the same bytes: a retry
      if err == nil then break end
      assert.are.equal(retls.WantWrite, err)
    end
    assert.are.equal(LEN, n)
    got[#got + 1] = H.drain(server)
    assert.are.equal(data, table.concat(got))
    assert.are.equal(0, client:pending_write())
    assert.is_nil(client:want())
    local st = client:stats()
    assert.are.equal(1, st.writes)
    assert.are.equal(LEN, st.bytes_written)
    assert.are.equal(0, st.mismatches)
    assert.are.equal(st.want_write, st.retries)
  end)

  -- test_mismatch_shorter / _longer / _same_length_other_bytes
  for _, case in ipairs({
    { "shorter", function(d) return d:sub(1, -2) end },
    { "longer", function(d) return d .. "!" end },
    { "same length, other bytes", function(d) return d:reverse() end },
  }) do
    local kind, other = case[1], case[2]
    it("refuses a retry with other bytes (" .. kind .. ") and flush() still finishes the pending write", function()
      local data = H.pattern(LEN, 2)
      local client, server = blocked_pair(data)
      local got = { H.drain(server) }
      local err = H.raised(client.write, client, other(data))
      assert.are.equal("retry_mismatch", err.kind)
      assert.are.equal(retls.Error, getmetatable(err))
      assert.truthy(err.message:find(kind, 1, true))
      assert.truthy(err.message:find(LEN .. " bytes of an earlier write are pending", 1, true))
      assert.truthy(err.message:find("flush()", 1, true))
      assert.matches("^retls error %(retry_mismatch%): retry presented", tostring(err))
      -- Nothing sent, nothing lost: the pending write is intact.
      assert.are.equal(LEN, client:pending_write())
      assert.are.equal(1, client:stats().mismatches)
      local n = H.flush_through(client, server, got)
      assert.are.equal(LEN, n)
      got[#got + 1] = H.drain(server)
      assert.are.equal(data, table.concat(got))
      -- ...and the connection still works afterwards.
      assert.are.equal(4, client:write("next"))
      assert.are.equal("next", H.drain(server))
    end)
  end

  -- test_mismatch_repeated_then_same_bytes
  it("still resumes with the same bytes after several refused retries", function()
    local data = H.pattern(LEN, 3)
    local client, server = blocked_pair(data)
    for i = 1, 5 do
      assert.are.equal("retry_mismatch", H.raised(client.write, client, ("x"):rep(i)).kind)
    end
    local got = {}
    while true do
      got[#got + 1] = H.drain(server)
      local err, n = H.raised(client.write, client, data)
      if err == nil then
        assert.are.equal(LEN, n)
        break
      end
      assert.are.equal(retls.WantWrite, err)
    end
    got[#got + 1] = H.drain(server)
    assert.are.equal(data, table.concat(got))
    assert.are.equal(5, client:stats().mismatches)
  end)

  -- test_write_with_a_copy_of_the_original_bytes_resumes
  it("resumes with another string holding the same bytes", function()
    local data = H.pattern(LEN, 6)
    local client, server = blocked_pair(data)
    local copy = H.pattern(LEN, 6) -- made anew: a different string object
    local got = {}
    while true do
      got[#got + 1] = H.drain(server)
      local err = H.raised(client.write, client, copy)
      if err == nil then break end
      assert.are.equal(retls.WantWrite, err)
    end
    got[#got + 1] = H.drain(server)
    assert.are.equal(data, table.concat(got))
  end)

  -- test_flush_with_nothing_pending
  it("flush() with nothing pending returns 0", function()
    local client, server = retls.pair()
    assert.are.equal(0, client:flush())
    assert.are.equal(3, client:write("abc"))
    assert.are.equal(0, client:flush())
    assert.are.equal("abc", H.drain(server))
  end)

  -- test_zero_length_write_is_a_noop
  it("write('') returns 0 and touches nothing, even with a write pending", function()
    local client, server = retls.pair(nil, nil, { capacity = CAP })
    assert.are.equal(0, client:write(""))
    local data = H.pattern(LEN, 7)
    assert.are.equal(retls.WantWrite, H.raised(client.write, client, data))
    assert.are.equal(0, client:write(""))
    assert.are.equal(LEN, client:pending_write())
    assert.are.equal(0, client:stats().mismatches)
    local got = {}
    H.flush_through(client, server, got)
    got[#got + 1] = H.drain(server)
    assert.are.equal(data, table.concat(got))
  end)

  -- test_implicit_handshake_on_first_write
  it("raises WantRead from a write that starts the handshake, and flush() sends the bytes once it is done", function()
    local client, server = retls.pair(nil, nil, { handshake = false })
    assert.are.equal(retls.WantRead, H.raised(client.write, client, "early"))
    assert.are.equal("read", client:want())
    assert.are.equal(5, client:pending_write())
    local got, n = {}, nil
    for _ = 1, 10 do
      got[#got + 1] = (pcall(server.handshake, server)) and H.drain(server) or ""
      local err
      err, n = H.raised(client.flush, client)
      if err == nil then break end
      assert.are.equal(retls.WantRead, err)
    end
    assert.are.equal(5, n)
    got[#got + 1] = H.drain(server)
    assert.are.equal("early", table.concat(got))
  end)
end)

describe("conn:sendall()", function()
  -- test_sendall_want_write_carries_bytes_sent
  it("leaves conn.bytes_sent after WantWrite, so flush() and sendall() of the rest continue", function()
    local ctx = retls.context{ verify = false, partial_write = true }
    local client, server = retls.pair(ctx, nil, { capacity = 40000 }) -- room for 2 records
    local data = H.pattern(LEN, 8)
    assert.are.equal(retls.WantWrite, H.raised(client.sendall, client, data))
    local sent = client.bytes_sent
    -- Partial writes acknowledged two whole records before the pipe filled.
    assert.are.equal(2 * 16384, sent)
    assert.are.equal(LEN - sent, client:pending_write())
    local got = {}
    local n = H.flush_through(client, server, got)
    local rest = data:sub(sent + n + 1)
    while true do
      local err = H.raised(client.sendall, client, rest)
      if err == nil then break end
      assert.are.equal(retls.WantWrite, err)
      got[#got + 1] = H.drain(server)
      local k = H.flush_through(client, server, got)
      rest = rest:sub(client.bytes_sent + k + 1)
    end
    got[#got + 1] = H.drain(server)
    assert.are.equal(data, table.concat(got))
  end)

  -- test_sendall_whole_in_one_write_mode
  it("sends everything in one write when partial writes are off", function()
    local client, server = retls.pair(nil, nil, { capacity = CAP })
    local data = H.pattern(LEN, 9)
    assert.are.equal(retls.WantWrite, H.raised(client.sendall, client, data))
    assert.are.equal(0, client.bytes_sent) -- nothing acknowledged yet
    local got = {}
    local n = H.flush_through(client, server, got)
    assert.are.equal(LEN, n) -- flush covered all the rest
    assert.are.equal(0, client:sendall(data:sub(n + 1))) -- "": nothing to do
    got[#got + 1] = H.drain(server)
    assert.are.equal(data, table.concat(got))
  end)

  -- test_partial_write_takes_one_record_per_call
  it("with partial_write, write() takes one record per call and sendall() the rest", function()
    local ctx = retls.context{ verify = false, partial_write = true }
    local client, server = retls.pair(ctx, nil, { capacity = 1048576 })
    local data = H.pattern(100000, 10)
    local taken = client:write(data)
    assert.are.equal(16384, taken)
    assert.are.equal(100000 - taken, client:sendall(data:sub(taken + 1)))
    assert.are.equal(data, H.drain(server))
  end)
end)

describe("conn:trywrite()", function()
  it("returns the byte count when the write goes through", function()
    local client, server = retls.pair()
    assert.are.equal(5, client:trywrite("hello"))
    assert.are.equal("hello", H.drain(server))
  end)

  it("returns nil, 'wantwrite' instead of raising, and the retry contract still holds", function()
    local client, server = retls.pair(nil, nil, { capacity = CAP })
    local data = H.pattern(LEN, 11)
    local n, why, err = client:trywrite(data)
    assert.is_nil(n)
    assert.are.equal("wantwrite", why)
    assert.are.equal(retls.WantWrite, err)
    local got = {}
    while true do
      got[#got + 1] = H.drain(server)
      n, why = client:trywrite(data)
      if n then break end
      assert.are.equal("wantwrite", why)
    end
    assert.are.equal(LEN, n)
    got[#got + 1] = H.drain(server)
    assert.are.equal(data, table.concat(got))
  end)

  it("returns nil, 'wantread' while the handshake waits for the peer", function()
    local client = retls.pair(nil, nil, { handshake = false })
    local n, why = client:trywrite("x")
    assert.is_nil(n)
    assert.are.equal("wantread", why)
  end)

  it("returns nil and the message (and the error object) for a mismatch", function()
    local client = blocked_pair(H.pattern(LEN, 12))
    local n, msg, err = client:trywrite("other")
    assert.is_nil(n)
    assert.are.equal("retry_mismatch", err.kind)
    assert.are.equal(err.message, msg)
    assert.truthy(msg:find("flush()", 1, true))
  end)

  it("returns nil and a message for a closed connection and for bad arguments", function()
    local client = retls.pair()
    local n, msg, err = client:trywrite({})
    assert.is_nil(n)
    assert.are.equal("arg", err.kind)
    assert.matches("string expected, got table", msg)
    client:close()
    n, msg, err = client:trywrite("x")
    assert.is_nil(n)
    assert.are.equal("closed", err.kind)
    assert.are.equal("the connection is closed; open a new one", msg)
  end)
end)
