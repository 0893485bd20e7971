-- LuaSocket's HTTP client over retls (issue 14): socket.http.request with
-- a create function that wraps the socket with require "retls.luasec",
-- the way LuaSec's own ssl.https does, against `openssl s_server -WWW`
-- serving a file.  The body must arrive byte for byte.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local lssl = require "retls.luasec"
local H = require "helpers"
local F = require "luasec_fixtures"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

-- LuaSocket's `create`: an object with connect, settimeout, send,
-- receive and close, whose connect does TCP, then TLS over it.
local function create_over_retls(params, stats)
  return function()
    local conn = { sock = socket.tcp() }
    function conn:settimeout(t) return self.sock:settimeout(t) end
    function conn:setoption(...) return self.sock:setoption(...) end
    function conn:connect(host, port)
      local ok, err = self.sock:connect(host, port)
      if not ok then return nil, err end
      local tls, werr = lssl.wrap(self.sock, params)
      if not tls then return nil, werr end
      self.sock = tls
      assert(tls:sni(host))
      tls:settimeout(30)
      local hok, herr = tls:dohandshake()
      if not hok then return nil, herr end
      stats.conn = tls
      return 1
    end
    function conn:send(...) return self.sock:send(...) end
    function conn:receive(...) return self.sock:receive(...) end
    function conn:close()
      if stats.conn then stats.bytes = stats.conn:stats().bytes_read end
      return self.sock:close()
    end
    return conn
  end
end

describe("socket.http over retls", function()
  local server
  after_each(function() if server then server.stop() server = nil end end)

  it("GET https://127.0.0.1:PORT/file from openssl s_server -WWW: the body byte for byte", function()
    local body = H.pattern(1536 * 1024 + 7, 21)
    local f = assert(io.open(pki.dir .. "/file.bin", "wb"))
    f:write(body)
    f:close()
    server = F.www_server(pki.dir, pki.server_cert, pki.server_key)
    local chunks, stats = {}, {}
    local ok, code, headers, status = http.request{
      url = ("https://127.0.0.1:%d/file.bin"):format(server.port),
      sink = ltn12.sink.table(chunks),
      create = create_over_retls(F.client_params(pki), stats),
    }
    assert.are.equal(1, ok)
    assert.are.equal(200, code)
    assert.matches("^HTTP/1%.0 200", status)
    local got = table.concat(chunks)
    assert.are.equal(#body, #got)
    assert.is_true(got == body, "the body differs")
    -- the certificate was checked against the address in the URL
    assert.is_true(stats.conn:info().verify_result == 0)
    assert.is_true(stats.bytes > #body) -- status line and headers too
  end)

  it("fails the request when the certificate does not match (no silent fallback)", function()
    server = F.www_server(pki.dir, pki.server_cert, pki.server_key)
    local ok, err = http.request{
      url = ("https://127.0.0.1:%d/file.bin"):format(server.port),
      sink = ltn12.sink.table({}),
      create = create_over_retls(F.client_params(pki, { cafile = pki.other_ca }), {}),
    }
    assert.is_nil(ok)
    assert.matches("certificate verify failed", err, 1, true)
  end)
end)
