-- Garbage collection and lifetimes: the string given to a write that
-- stopped may be collected; a connection collected with a write pending
-- frees everything (tests/lua/memcheck.lua proves it under valgrind); a
-- context outlives the connections made from it; long retry loops leak
-- nothing.  (Mirrors test_caller_buffer_freed_after_want and
-- test_context_outlives_caller_reference of the C and Python suites.)
local retls = require "retls"
local H = require "helpers"

local CAP = 4096
local LEN = 64 * 1024

local function full_collect()
  collectgarbage("collect")
  collectgarbage("collect")
end

-- Resident set size in bytes (Linux), to see memory the C side holds.
-- Not under AddressSanitizer (the sanitizer build preloads its runtime):
-- its quarantine keeps freed blocks resident by design, hundreds of MB,
-- and LeakSanitizer checks for leaks at exit instead.
local function under_asan()
  local f = assert(io.open("/proc/self/maps"))
  local maps = f:read("*a")
  f:close()
  return maps:find("asan", 1, true) ~= nil
end

local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local pages = f:read("*n")
  pages = f:read("*n") -- second field: resident pages
  f:close()
  return pages * 4096
end

describe("garbage collection", function()
  -- test_caller_buffer_freed_after_want
  it("sends the original bytes once after the written string was dropped and collected", function()
    local client, server = retls.pair(nil, nil, { capacity = CAP })
    do
      local data = H.pattern(LEN, 21)
      assert.are.equal(retls.WantWrite, H.raised(client.write, client, data))
    end -- the only reference to the string is gone here
    full_collect()
    -- Reuse the freed memory with other bytes of the same size.
    local junk = {}
    for i = 1, 64 do junk[i] = ("\238"):rep(LEN - i) end
    full_collect()
    local got = {}
    local n = H.flush_through(client, server, got)
    got[#got + 1] = H.drain(server)
    assert.are.equal(LEN, n)
    assert.are.equal(H.pattern(LEN, 21), table.concat(got))
    assert.are.equal(LEN, client:stats().bytes_written)
  end)

  it("collects a connection dropped while a write is pending", function()
    local weak = setmetatable({}, { __mode = "v" })
    local server
    do
      local client
      client, server = retls.pair(nil, nil, { capacity = CAP })
      assert.are.equal(retls.WantWrite, H.raised(client.write, client, H.pattern(LEN, 22)))
      weak.client = client
    end
    full_collect()
    assert.is_nil(weak.client)
    -- The peer reads what had arrived, then sees the transport end
    -- without close_notify.
    local err
    for _ = 1, 100 do
      err = H.raised(server.read, server)
      if err ~= nil then break end
    end
    assert.are.equal("eof", err.kind)
    server:close()
  end)

  -- test_context_outlives_caller_reference
  it("keeps a context alive while a connection made from it is", function()
    local weak = setmetatable({}, { __mode = "v" })
    local client, server
    do
      local ctx = retls.context{ verify = false, min_version = "TLSv1.3" }
      weak.ctx = ctx
      client, server = retls.pair(ctx, nil)
    end -- the script's only reference to the context is gone
    full_collect()
    assert.is_not_nil(weak.ctx)
    assert.are.equal(5, client:write("alive"))
    assert.are.equal("alive", H.drain(server))
    assert.are.equal("TLSv1.3", client:info().version)
    client = nil
    full_collect()
    assert.is_nil(weak.ctx) -- it goes with its last connection
    server:close()
  end)

  it("keeps collectgarbage('count') flat over 100,000 write/WantWrite/retry cycles", function()
    local client, server = retls.pair(nil, nil, { capacity = 512 })
    local chunk = H.pattern(1024, 23)
    local received = 0
    local function cycles(n)
      for _ = 1, n do
        local ok, err = pcall(client.write, client, chunk)
        assert(not ok and err == retls.WantWrite, "each 1 KiB write must stop on a 512-byte pipe")
        repeat
          -- a small read size: read(n) allocates n bytes per call, and
          -- 1 MiB (drain's default) costs an mmap each under ASan
          received = received + #H.drain(server, 4096)
          ok, err = pcall(client.write, client, chunk) -- the retry
          assert(ok or err == retls.WantWrite)
        until ok
      end
    end
    cycles(1000) -- warm up: allocator pools, string caches, OpenSSL buffers
    full_collect()
    local count0, rss0 = collectgarbage("count"), rss()
    -- Collect every 1000 cycles: left to itself the collector lets a few
    -- MB of garbage pile up, and whether malloc hands that back to the
    -- system by the end depends on what earlier specs left in the heap
    -- (RSS grew 1-5 MB after other specs, never alone).  Collected often,
    -- RSS shows only what the C side keeps.
    for _ = 1, 100 do
      cycles(1000)
      full_collect()
    end
    full_collect()
    local grew_kib = collectgarbage("count") - count0
    local rss_grew = rss() - rss0
    received = received + #H.drain(server)
    assert.are.equal(101000 * 1024, received)
    local st = client:stats()
    assert.are.equal(101000, st.writes)
    assert.is_true(st.want_write >= 101000)
    assert.are.equal(st.want_write, st.retries)
    -- A leak of even 16 bytes a cycle would show as 1.6 MB here.
    assert.is_true(grew_kib < 64, ("Lua heap grew by %.1f KiB"):format(grew_kib))
    if not under_asan() then
      assert.is_true(rss_grew < 1024 * 1024, ("RSS grew by %d bytes"):format(rss_grew))
    end
  end)
end)

describe("a finalizer that drains a connection during bio_read()", function()
  -- bio_read()'s collector step (inside lua_pushlstring) may run
  -- finalizers, and a finalizer may drain a connection.  Lua 5.1-5.3 and
  -- LuaJIT step the collector before lua_pushlstring copies: a nested
  -- drain there must not reuse the buffer the outer drain copies from.
  -- Lua 5.4 copies first, straight from the outgoing queue, and takes the
  -- bytes afterwards: a nested drain of the SAME connection there must not
  -- make the outer one drop bytes it never saw or return bytes the
  -- finalizer got too (retls_conn_bio_consume refuses; the outer call
  -- raises an arg error).  The collector's debt depends on allocation
  -- sizes only, so the nesting happens the same way on every run.
  local dir, pki
  setup(function() dir = H.tmpdir() pki = H.make_pki(dir) end)
  teardown(function() H.rmdir(dir) end)

  local function memory_pair()
    local client = retls.wrap(retls.context{ verify = false }, nil)
    local server = retls.wrap(retls.context{ role = "server",
      certfile = pki.server_cert, keyfile = pki.server_key }, nil)
    H.handshake_memory(client, server)
    return client, server
  end

  -- Garbage with a finalizer (Lua 5.1 and LuaJIT run __gc on userdata
  -- only: newproxy there).
  local function finalized(f)
    if newproxy then
      getmetatable(newproxy(true)).__gc = f -- (the proxy is garbage at once)
    else
      setmetatable({}, { __gc = f })
    end
  end

  -- Feed ciphertext pieces to server in order; the plaintext it reads.
  local function plaintext(server, pieces)
    local got = {}
    for _, ct in ipairs(pieces) do
      if #ct > 0 then server:bio_write(ct) end
      while true do
        local fine, text = pcall(server.read, server)
        if not fine then break end
        got[#got + 1] = text
      end
    end
    return table.concat(got)
  end

  it("of another connection: both streams arrive intact", function()
    local a, a_server = memory_pair()
    local b, b_server = memory_pair()
    local sent_a, sent_b, pieces_a, pieces_b = {}, {}, {}, {}
    local in_a, nested = false, 0
    -- The collector's state must not depend on what the specs before this
    -- one left (their garbage varies with timing, e.g. under ctest -j):
    -- start from a full cycle, so where finalizers run below is the same
    -- every run.
    full_collect()
    -- a busy collector (it finishes a cycle within a few drains), so
    -- finalizers run inside drains on every Lua, not only on some
    local pause = collectgarbage("setpause", 10)
    local stepmul = collectgarbage("setstepmul", 1000)
    local ok, err = pcall(function()
      for i = 1, 300 do
        sent_a[i], sent_b[i] = H.pattern(40000, i), H.pattern(40000, 1000 + i)
        a:write(sent_a[i])
        b:write(sent_b[i])
        finalized(function()
          if in_a then nested = nested + 1 end
          pieces_b[#pieces_b + 1] = b:bio_read()
        end)
        in_a = true
        pieces_a[#pieces_a + 1] = a:bio_read()
        in_a = false
      end
    end)
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", stepmul)
    full_collect() -- the last finalizers, then nothing runs any more
    collectgarbage("stop")
    pieces_b[#pieces_b + 1] = b:bio_read()
    local got_a, got_b = plaintext(a_server, pieces_a), plaintext(b_server, pieces_b)
    collectgarbage("restart")
    assert(ok, err)
    -- Measured: on 5.3 and 5.4 finalizers run inside drains here (every
    -- run alike); Lua 5.1's and LuaJIT's collectors run them elsewhere in
    -- this loop, so there the streams are checked, not the nesting.
    if _VERSION == "Lua 5.3" or _VERSION == "Lua 5.4" then
      assert.is_true(nested > 0, "no finalizer ran inside a drain")
    end
    assert.is_true(got_a == table.concat(sent_a), "a's bytes differ")
    assert.is_true(got_b == table.concat(sent_b), "b's bytes differ")
  end)

  it("of the same connection (Lua 5.3, 5.4): the outer drain refuses, every byte reaches exactly one of them, in order", function()
    -- (5.1 and LuaJIT copy out first: a nested drain then returns the
    -- bytes after the outer one's, before it, which only re-entrancy can
    -- order; the other-connection case above covers their path)
    if _VERSION ~= "Lua 5.4" and _VERSION ~= "Lua 5.3" then return end
    local client, server = memory_pair()
    local generational = _VERSION == "Lua 5.4"
    if generational then collectgarbage("generational") end
    local sent, pieces, refused = {}, {}, 0
    local ok, err = pcall(function()
      for i = 1, 300 do
        local data = H.pattern(20000, i)
        sent[#sent + 1] = data
        client:write(data)
        setmetatable({}, { __gc = function()
          local fine, ct = pcall(client.bio_read, client)
          if fine then pieces[#pieces + 1] = ct end
          local extra = H.pattern(20000, 1000 + i)
          sent[#sent + 1] = extra
          client:write(extra)
        end })
        local fine, ct = pcall(client.bio_read, client)
        if fine then
          pieces[#pieces + 1] = ct
        else
          refused = refused + 1
          assert.are.equal("arg", ct.kind)
          assert.matches("bytes were taken since bio_peek", ct.message, 1, true)
        end
      end
    end)
    if generational then collectgarbage("incremental") end
    full_collect()
    collectgarbage("stop")
    pieces[#pieces + 1] = client:bio_read()
    local got = plaintext(server, pieces)
    collectgarbage("restart")
    assert(ok, err)
    -- (5.4's generational collector runs the finalizers inside drains
    -- here, every run alike; 5.3's incremental one elsewhere in the loop)
    if generational then
      assert.is_true(refused > 0, "no finalizer drained inside a drain")
    end
    local want = table.concat(sent)
    assert.are.equal(#want, #got)
    assert.is_true(got == want, "the bytes differ")
  end)
end)
