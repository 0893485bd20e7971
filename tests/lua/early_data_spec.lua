-- TLS 1.3 0-RTT early data (mirrors tests/python/test_early_data.py and
-- tests/c/test_early_data.c): accepted and rejected (server without early
-- data, server not reading early, stale ticket), replay on and off, WANT
-- during write_early with a mismatch attempt in between, against a retls
-- server and openssl s_server -early_data; bad input.  Every case compares
-- the exact bytes the server's application received.
local retls = require "retls"
local H = require "helpers"
local socket = require "socket"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

local function server_ctx(opts)
  opts = opts or {}
  opts.role, opts.certfile, opts.keyfile = "server", pki.server_cert, pki.server_key
  return retls.context(opts)
end

local EARLY = "GET /early\nmore\n"

local function first_session(cctx, sctx)
  local client, server = retls.pair(cctx, sctx)
  server:write("x")
  assert.are.equal("x", client:read(10))
  local s = client:session()
  client:shutdown()
  server:shutdown()
  return s
end

local function is_want(err)
  return err == retls.WantRead or err == retls.WantWrite
end

-- The server reads early data (when read_early) until its end, then the
-- rest; the client's handshake is driven in between.
local function serve(client, server, read_early)
  local early, rest, done = {}, {}, not read_early
  for _ = 1, 200 do
    if not done then
      local ok, chunk = pcall(server.read_early, server)
      if ok then
        done = chunk == ""
        early[#early + 1] = chunk
      else
        assert(is_want(chunk), tostring(chunk))
      end
    else
      rest[#rest + 1] = H.drain(server)
    end
    local err = H.raised(client.handshake, client)
    assert(err == nil or is_want(err), tostring(err))
    if err == nil and done and client:pending_write() == 0 then
      rest[#rest + 1] = H.drain(server)
      return table.concat(early), table.concat(rest)
    end
  end
  error("no progress")
end

describe("early data", function()
  for _, case in ipairs({ "accepted", "server without early data",
      "server not reading early", "stale ticket", "replay off" }) do
    -- test_early_data
    it("delivers every byte once when " .. case, function()
      local replay = case ~= "replay off"
      local cctx = retls.context{ verify = false, early_data_replay = replay }
      local sctx = server_ctx{ early_data = 16384 }
      local s = first_session(cctx, sctx)
      assert.are.equal(16384, s:max_early_data())
      if case == "stale ticket" or case == "replay off" then
        local c = retls.pair(cctx, sctx, { session = s })
        assert.is_true(c:session_reused())
      end
      if case == "server without early data" then sctx = server_ctx{ early_data = 0 } end
      local client, server = retls.pair(cctx, sctx, { handshake = false, session = s })
      assert.are.equal(11, client:write_early("GET /early\n"))
      assert.are.equal(5, client:write_early("more\n"))
      assert.is_nil(client:early_data_status())
      local early, rest = serve(client, server, case ~= "server not reading early")
      client:write("after\n")
      rest = rest .. H.drain(server)
      local st = client:stats()
      assert.are.equal(#EARLY, st.early_bytes)
      if case == "accepted" then
        assert.are.equal("accepted", client:early_data_status())
        assert.are.equal("accepted", server:early_data_status())
        assert.are.same({ EARLY, "after\n" }, { early, rest })
        assert.are.equal(0, st.early_replayed)
      elseif replay then
        assert.are.equal("rejected", client:early_data_status())
        assert.are.same({ "", EARLY .. "after\n" }, { early, rest })
        assert.are.equal(#EARLY, st.early_replayed)
        assert.are.equal("", client:early_data_rejected_bytes())
      else
        assert.are.equal("rejected", client:early_data_status())
        assert.are.same({ "", "after\n" }, { early, rest })
        assert.are.equal(0, st.early_replayed)
        assert.are.equal(EARLY, client:early_data_rejected_bytes())
      end
    end)
  end

  -- test_early_data_want_and_mismatch
  it("keeps a write_early that raised WantWrite: a mismatch sends nothing, flush() finishes it once", function()
    local cctx = retls.context{ verify = false }
    -- OpenSSL 3.0 counts each repeat of an early write again against
    -- max_early_data, hence a server allowing far more than is sent
    local sctx = server_ctx{ early_data = 1048576 }
    local s = first_session(cctx, sctx)
    local client, server = retls.pair(cctx, sctx, { capacity = 4096, handshake = false, session = s })
    local data = H.pattern(20000, 1)
    assert.are.equal(retls.WantWrite, H.raised(client.write_early, client, data))
    assert.are.equal(20000, client:pending_write())
    local other = data:sub(1, -2) .. (data:sub(-1) == "a" and "b" or "a")
    local err = H.raised(client.write_early, client, other)
    assert.are.equal("retry_mismatch", err.kind)
    assert.truthy(err.message:find("write_early", 1, true))
    assert.are.equal("retry_mismatch", H.raised(client.write, client, "x").kind)
    local early, flushed, done = {}, nil, false
    for _ = 1, 1000 do
      if done and flushed then break end
      local ok, chunk = pcall(server.read_early, server)
      if ok then
        done = chunk == ""
        early[#early + 1] = chunk
      end
      if not flushed then
        local e, n = H.raised(client.flush, client)
        if e == nil then flushed = n else assert(is_want(e), tostring(e)) end
      else
        H.raised(client.handshake, client)
      end
    end
    assert.are.equal(20000, flushed)
    for _ = 1, 100 do
      local a = H.raised(client.handshake, client)
      local b = H.raised(server.handshake, server)
      if a == nil and b == nil then break end
    end
    assert.are.equal(data, table.concat(early))
    assert.are.equal("", H.drain(server))
    assert.are.equal("accepted", client:early_data_status())
    local st = client:stats()
    assert.are.equal(20000, st.early_bytes)
    assert.are.equal(2, st.mismatches)
    assert.is_true(st.retries >= 1)
  end)
end)

-- openssl s_server -early_data in its plain mode, for several
-- connections: its stdin stays open (the plain mode ends a connection at
-- stdin EOF) and its stdout is exactly what its application read.
local function early_s_server()
  local probe = assert(socket.bind("127.0.0.1", 0))
  local _, port = probe:getsockname()
  port = tonumber(port)
  probe:close()
  local out = ("%s/early-%d.out"):format(pki.dir, port)
  local p = assert(io.popen(("setsid sh -c 'echo $$; sleep 60 | timeout --foreground 60 %s s_server " ..
    "-quiet -early_data -accept 127.0.0.1:%d -cert %s -key %s >%s 2>/dev/null' &")
    :format(H.OPENSSL, port, pki.server_cert, pki.server_key, out)))
  local pgid = assert(tonumber(p:read("*l")))
  p:close()
  local want = ("0100007F:%04X 00000000:0000 0A"):format(port)
  local deadline = socket.gettime() + 10
  repeat  -- listening?  (/proc: a probe connection would be a client)
    socket.sleep(0.02)
  until (H.readfile("/proc/net/tcp") or ""):find(want, 1, true) or socket.gettime() > deadline
  local srv = { port = port }
  -- (dash, the sh of Debian, takes no "--" before a process group)
  function srv.stop() os.execute(("kill -TERM -%d 2>/dev/null"):format(pgid)) end
  -- s_server drops data arriving together with close_notify: clients wait
  -- (bounded) until its application has read everything before closing
  function srv.wait_output(n)
    local d = socket.gettime() + 20
    while #(H.readfile(out) or "") < n and socket.gettime() < d do socket.sleep(0.01) end
    return H.readfile(out) or ""
  end
  return srv
end

local function s_server_round(srv, expect, session, early, data)
  -- without a session the round ends reading the tickets, and a read that
  -- finds nothing more ends by the timeout: keep it short then
  local conn = retls.connect("127.0.0.1", srv.port, retls.context{ cafile = pki.ca },
    { server_hostname = "localhost", timeout = session and 10 or 1, session = session })
  if early then conn:write_early(early) end
  conn:write(data or "first\n")
  assert.are.equal(expect, srv.wait_output(#expect))
  local status, newest = conn:early_data_status(), nil
  if not session then
    -- the tickets: s_server answers nothing, so read until they are here
    local err = H.raised(conn.read, conn, 100)
    assert.are.equal("timeout", err and err.kind)
    newest = conn:session()
  end
  conn:shutdown()
  conn:close()
  return status, newest
end

describe("early data against openssl s_server -early_data", function()
  for _, case in ipairs({ { 1, "accepted" }, { 2, "rejected" } }) do
    -- test_early_data_s_server
    it("is " .. case[2] .. (case[1] == 2 and " for a stale ticket, and replayed" or ""), function()
      local srv = early_s_server()
      local ok, err = pcall(function()
        local _, s = s_server_round(srv, "first\n")
        assert.is_true(s:max_early_data() > 0)
        local out, status = "first\n", nil
        for _ = 1, case[1] do
          out = out .. "early\nlate\n"
          status = s_server_round(srv, out, s, "early\n", "late\n")
        end
        assert.are.equal(case[2], status)
      end)
      srv.stop()
      assert(ok, err)
    end)
  end
end)

describe("bad early-data input", function()
  -- test_write_early_without_session
  it("refuses write_early without a session and after the handshake; the connection stays usable", function()
    local client, server = retls.pair(nil, nil, { handshake = false })
    local err = H.raised(client.write_early, client, "a")
    assert.are.equal("arg", err.kind)
    assert.truthy(err.message:find("has none", 1, true))
    for _ = 1, 10 do   -- still usable: the handshake runs
      H.raised(client.handshake, client)
      H.raised(server.handshake, server)
    end
    client:write("ok")
    err = H.raised(client.write_early, client, "a")
    assert.truthy(err.message:find("use write()", 1, true))
    assert.are.equal("ok", H.drain(server))
  end)

  -- test_write_early_session_without_early_data
  it("refuses write_early with a session whose server allows none", function()
    local cctx, sctx = retls.context{ verify = false }, server_ctx()
    local s = first_session(cctx, sctx)
    assert.are.equal(0, s:max_early_data())
    local client, server = retls.pair(cctx, sctx, { handshake = false, session = s })
    local err = H.raised(client.write_early, client, "a")
    assert.truthy(err.message:find("allows none", 1, true))
    for _ = 1, 10 do
      H.raised(client.handshake, client)
      H.raised(server.handshake, server)
    end
    assert.is_true(client:session_reused())
    assert.are.equal("not_sent", client:early_data_status())
  end)

  -- test_write_early_needs_the_sessions_server_name
  it("refuses write_early when the session is from another server name", function()
    local cctx, sctx = retls.context{ verify = false }, server_ctx{ early_data = 1024 }
    local c = retls.wrap(cctx, nil, { server_hostname = "localhost" })
    local s = retls.wrap(sctx, nil)
    H.handshake_memory(c, s)
    s:write("x")
    c:bio_write(s:bio_read())
    assert.are.equal("x", c:read(10))
    local sess = c:session()
    assert.are.equal(1024, sess:max_early_data())
    for _, name in ipairs({ "127.0.0.1", false }) do
      local client = retls.wrap(cctx, nil, { server_hostname = name or nil, session = sess })
      local server = retls.wrap(sctx, nil)
      local err = H.raised(client.write_early, client, "early")
      assert.are.equal("arg", err.kind, tostring(err))
      assert.truthy(err.message:find("from server 'localhost'", 1, true), err.message)
      assert.are.equal(0, client:bio_pending())
      H.handshake_memory(client, server)
      client:write("after")
      server:bio_write(client:bio_read())
      assert.are.equal("after", H.drain(server))
    end
    local client = retls.wrap(cctx, nil, { server_hostname = "localhost", session = sess })
    assert.are.equal(5, client:write_early("early"))
  end)

  -- test_early_data_wrong_ends_and_types
  it("names the wrong end and the wrong types", function()
    local client, server = retls.pair(nil, nil, { handshake = false })
    assert.truthy(H.raised(server.write_early, server, "a").message:find("for clients", 1, true))
    assert.truthy(H.raised(client.read_early, client).message:find("for servers", 1, true))
    assert.are.equal("arg", H.raised(client.write_early, client, 5).kind)
    assert.are.equal("arg", H.raised(server.read_early, server, 0).kind)
  end)

  -- test_read_early_after_handshake_started
  it("refuses read_early once the server's handshake began without it, then reports the end", function()
    local client, server = retls.pair(nil, server_ctx{ early_data = 1024 }, { handshake = false })
    assert.are.equal(retls.WantRead, H.raised(client.handshake, client))
    assert.are.equal(retls.WantRead, H.raised(server.handshake, server))
    assert.truthy(H.raised(server.read_early, server).message:find("first operation", 1, true))
    for _ = 1, 10 do
      H.raised(client.handshake, client)
      H.raised(server.handshake, server)
    end
    assert.are.equal("", server:read_early())
  end)
end)
