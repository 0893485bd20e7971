-- Sessions and resumption (mirrors tests/python/test_sessions.py and
-- tests/c/test_sessions.c): TLS 1.3 tickets, TLS 1.2 session IDs and
-- tickets against a retls server and openssl s_server; sessions through
-- their bytes (also in another process); bad input; strict ALPN and a
-- DHE-only client against openssl s_client.
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

-- TLS 1.3 tickets come after the handshake: a byte from the server
-- brings them to the client.
local function session_after_read(client, server)
  server:write("x")
  assert.are.equal("x", client:read(10))
  return client:session()
end

local function close_both(client, server)
  -- without close_notify OpenSSL drops the session from the server's cache
  client:shutdown()
  server:shutdown()
  client:close()
  server:close()
end

local VERSIONS = {
  { "TLSv1.3", 2, "a TLS 1.3 ticket" },
  { "TLSv1.2", 2, "a TLS 1.2 ticket" },
  { "TLSv1.2", 0, "a TLS 1.2 session ID" },
}

describe("resumption", function()
  for _, v in ipairs(VERSIONS) do
    -- test_resume_retls_server
    it("resumes " .. v[3] .. " with a retls server, through the session's bytes", function()
      local cctx = retls.context{ verify = false, max_version = v[1] }
      local sctx = server_ctx{ tickets = v[2] }
      local client, server = retls.pair(cctx, sctx)
      assert.is_false(client:session_reused())
      local s = session_after_read(client, server)
      assert.is_true(s:is_resumable())
      assert.are.equal(v[2] > 0, s:ticket_lifetime() > 0)
      local bytes = s:to_bytes()
      close_both(client, server)
      local back = retls.session(bytes)
      assert.are.equal(bytes, back:to_bytes())
      client, server = retls.pair(cctx, sctx, { session = back })
      assert.is_true(client:session_reused())
      assert.is_true(server:session_reused())
      assert.are.equal(v[1], client:info().version)
      client:write("ping")
      assert.are.equal("ping", H.drain(server))
    end)

    -- test_resume_s_server
    it("resumes " .. v[3] .. " with openssl s_server", function()
      local srv = H.s_server(pki.dir, pki.server_cert, pki.server_key,
        "-rev -naccept 2" .. (v[2] == 0 and " -no_ticket" or ""))
      local function round(session)
        local ctx = retls.context{ cafile = pki.ca, max_version = v[1] }
        local conn = retls.connect("127.0.0.1", srv.port, ctx,
          { server_hostname = "localhost", timeout = 10, session = session })
        conn:write("olleh\n")
        local got = ""
        while #got < 6 do got = got .. conn:read(100) end
        assert.are.equal("hello\n", got)
        local reused, newest = conn:session_reused(), conn:session()
        conn:shutdown()
        conn:close()
        return reused, newest
      end
      local ok, err = pcall(function()
        local reused, first = round()
        assert.is_false(reused)
        assert.is_true((round(first)))
      end)
      srv.stop()
      assert(ok, err)
    end)
  end

  -- test_session_resumed_in_another_process
  it("resumes a session saved by another process", function()
    local srv = H.s_server(pki.dir, pki.server_cert, pki.server_key, "-rev -naccept 2")
    local ok, err = pcall(function()
      local ctx = retls.context{ cafile = pki.ca }
      local conn = retls.connect("127.0.0.1", srv.port, ctx,
        { server_hostname = "localhost", timeout = 10 })
      conn:write("olleh\n")
      local got = ""
      while #got < 6 do got = got .. conn:read(100) end
      local path = pki.dir .. "/session.bin"
      local f = assert(io.open(path, "wb"))
      f:write(conn:session():to_bytes())
      f:close()
      conn:shutdown()
      conn:close()
      local child = ([[
local retls = require "retls"
local f = assert(io.open(%q, "rb"))
local s = retls.session(f:read("*a"))
f:close()
local conn = retls.connect("127.0.0.1", %d, retls.context{ cafile = %q },
  { server_hostname = "localhost", timeout = 10, session = s })
conn:write("dlihc\n")
local got = ""
while #got < 6 do got = got .. conn:read(100) end
conn:shutdown()
io.write(got:sub(1, 5), " ", tostring(conn:session_reused()))
]]):format(path, srv.port, pki.ca)
      local script = pki.dir .. "/child.lua"
      f = assert(io.open(script, "w"))
      f:write(child)
      f:close()
      local lua = os.getenv("RETLS_LUA_INTERPRETER") or arg[-1] or "lua"
      -- the sanitizer build preloads the ASan runtime into this process
      -- (not through LD_PRELOAD): the child needs it as well
      local asan = (H.readfile("/proc/self/maps") or ""):match("(/%S+/libasan%.so[%.%d]*)")
      local out = H.run(("%sLUA_PATH=%q LUA_CPATH=%q %s %s"):format(
        asan and ("LD_PRELOAD=%q ASAN_OPTIONS=detect_leaks=0 "):format(asan) or "",
        package.path, package.cpath, lua, script))
      assert.are.equal("child true", out)
    end)
    srv.stop()
    assert(ok, err)
  end)
end)

-- A memory-mode client for a server name; its session after the tickets.
local function a_session(name, opts)
  opts = opts or {}
  opts.verify = false
  local client = retls.wrap(retls.context(opts), nil, { server_hostname = name })
  local server = retls.wrap(server_ctx(), nil)
  H.handshake_memory(client, server)
  server:write("x")
  H.relay(server, client)
  assert.are.equal("x", client:read(10))
  return client:session()
end

describe("bad session input", function()
  -- test_session_from_garbage_bytes / truncated
  it("raises an arg error for garbage, empty, truncated or extended bytes", function()
    for _, bytes in ipairs({ "garbage", "", "\48\130\1" }) do
      local err = H.raised(retls.session, bytes)
      assert.are.equal("arg", err.kind)
      assert.truthy(err.message:find("session bytes", 1, true))
    end
    local good = a_session("localhost"):to_bytes()
    local err = H.raised(retls.session, good:sub(1, math.floor(#good / 2)))
    assert.truthy(err.message:find("not a TLS session", 1, true))
    err = H.raised(retls.session, good .. "\0")
    assert.truthy(err.message:find("trailing", 1, true))
  end)

  -- test_session_wrong_types
  it("names the wrong types", function()
    assert.are.equal("arg", H.raised(retls.session, 5).kind)
    local err = H.raised(retls.pair, nil, nil, { session = "bytes" })
    assert.truthy(err.message:find("option 'session'", 1, true))
    err = H.raised(retls.pair, nil, nil, { session = {} })
    assert.truthy(err.message:find("retls session expected", 1, true))
  end)

  -- test_session_from_another_server
  it("refuses a session from another server name; the same name elsewhere runs a full handshake", function()
    local alpha = a_session("alpha.test")
    local cctx = retls.context{ verify = false }
    local err = H.raised(retls.wrap, cctx, nil, { server_hostname = "beta.test", session = alpha })
    assert.are.equal("arg", err.kind)
    assert.truthy(err.message:find("'alpha.test'", 1, true))
    local client = retls.wrap(cctx, nil, { server_hostname = "alpha.test", session = alpha })
    local server = retls.wrap(server_ctx(), nil)
    H.handshake_memory(client, server)
    assert.is_false(client:session_reused())
    client:write("fine")
    H.relay(client, server)
    assert.are.equal("fine", server:read(10))
  end)

  -- test_session_of_another_protocol_version
  it("refuses a session of a protocol version the context excludes", function()
    local tls12 = a_session("localhost", { max_version = "TLSv1.2" })
    local err = H.raised(retls.wrap, retls.context{ verify = false, min_version = "TLSv1.3" },
      nil, { server_hostname = "localhost", session = tls12 })
    assert.are.equal("arg", err.kind)
    assert.truthy(err.message:find("TLSv1.2", 1, true))
  end)

  -- test_session_on_server_or_after_handshake
  it("refuses a session on a server; servers hold none", function()
    local s = a_session("localhost")
    local err = H.raised(retls.wrap, server_ctx(), nil, { session = s })
    assert.truthy(err.message:find("resumed by clients", 1, true))
    local _, server = retls.pair()
    assert.is_nil(server:session())
  end)

  -- test_session_options_by_role
  it("refuses the other role's options", function()
    for _, case in ipairs({ { "client", "tickets", 1 }, { "client", "alpn_strict", true },
        { "client", "early_data", 10 }, { "server", "early_data_replay", true } }) do
      local opts = { role = case[1], [case[2]] = case[3] }
      local err = H.raised(retls.context, opts)
      assert.are.equal("arg", err.kind)
      assert.truthy(err.message:find("option", 1, true))
    end
    assert.are.equal("arg", H.raised(retls.context, { role = "server", tickets = 101 }).kind)
    assert.are.equal("arg", H.raised(retls.context, { role = "server", tickets = "2" }).kind)
  end)
end)

-- Serve one openssl s_client on a retls server: the server's handshake
-- error (or nil) and s_client's output.
local function serve_s_client(sctx, args)
  local listener = assert(socket.bind("127.0.0.1", 0))
  local _, port = listener:getsockname()
  local out = pki.dir .. "/s_client.out"
  local p = assert(io.popen(("sh -c 'echo $$; exec timeout 20 %s s_client -ign_eof " ..
    "-connect 127.0.0.1:%d %s </dev/null >%s 2>&1' &"):format(H.OPENSSL, port, args, out)))
  local pid = assert(tonumber(p:read("*l")))
  p:close()
  listener:settimeout(15)
  local sock = assert(listener:accept())
  listener:close()
  sock:settimeout(10)
  local conn = retls.wrap(sctx, sock)
  -- LuaSocket keeps its sockets non-blocking: a select loop
  local err = H.raised(H.select_handshake, { conn })
  if err == nil then
    conn:write("served\n")
    conn:shutdown()
  end
  conn:close("discard")
  sock:close()
  assert(H.wait_exit(pid, 20), "s_client did not end")  -- its output is complete
  return err, H.readfile(out) or ""
end

describe("server handshake fixes", function()
  -- test_alpn_strict_against_s_client
  it("ends a handshake without a common ALPN protocol with no_application_protocol", function()
    local sctx = server_ctx{ alpn = { "h2" } }
    local err, out = serve_s_client(sctx, "-alpn spdy/1")
    assert.are.equal("ssl", err.kind)
    assert.truthy(err.message:find("no application protocol", 1, true))
    assert.truthy(out:find("no application protocol", 1, true))
    err, out = serve_s_client(sctx, "")
    assert.is_nil(err)
    assert.truthy(out:find("served", 1, true))
    err, out = serve_s_client(sctx, "-alpn spdy/1,h2")
    assert.is_nil(err)
    assert.truthy(out:find("ALPN protocol: h2", 1, true))
  end)

  -- test_alpn_lenient_against_s_client
  it("continues without ALPN when alpn_strict = false", function()
    local err, out = serve_s_client(server_ctx{ alpn = { "h2" }, alpn_strict = false }, "-alpn spdy/1")
    assert.is_nil(err)
    assert.truthy(out:find("No ALPN negotiated", 1, true))
    assert.truthy(out:find("served", 1, true))
  end)

  -- test_dhe_only_client
  it("serves a TLS 1.2 client that offers only DHE suites", function()
    local cert, key = pki.dir .. "/rsa.pem", pki.dir .. "/rsa.key"
    H.run(("%s req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost " ..
      "-keyout %s -out %s"):format(H.OPENSSL, key, cert))
    local sctx = retls.context{ role = "server", certfile = cert, keyfile = key }
    local err, out = serve_s_client(sctx, "-tls1_2 -cipher DHE-RSA-AES128-GCM-SHA256")
    assert.is_nil(err)
    assert.truthy(out:find("DHE-RSA-AES128-GCM-SHA256", 1, true))
    assert.truthy(out:find("served", 1, true))
  end)
end)
