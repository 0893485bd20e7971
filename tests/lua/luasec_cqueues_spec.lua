-- cqueues over retls (issue 14): a coroutine writer that waits with
-- cqueues.poll on getfd() in the direction the want names, and a reader
-- beside it, against `openssl s_server -rev` (each line comes back
-- reversed).  The writer pushes ~1.6 MB of lines through LuaSec's send
-- with settimeout(0); every reversed line must come back once.
local cqueues = require "cqueues"
local socket = require "socket"
local lssl = require "retls.luasec"
local H = require "helpers"
local F = require "luasec_fixtures"

local pki
setup(function() pki = H.make_pki(H.tmpdir()) end)
teardown(function() H.rmdir(pki.dir) end)

-- Wait in cqueues until conn's socket is ready for what err asks.
local function wait_for(conn, err)
  local ev = err == "wantread" and "r" or "w"
  assert(err == "wantread" or err == "wantwrite", err)
  cqueues.poll({ pollfd = conn:getfd(), events = ev }, 10)
  return ev
end

describe("cqueues over retls", function()
  local server
  after_each(function() if server then server.stop() server = nil end end)

  it("a coroutine writer polls getfd() for the want direction; every line comes back reversed", function()
    server = H.s_server(pki.dir, pki.server_cert, pki.server_key, "-rev")
    local sock = socket.tcp()
    sock:settimeout(5)
    assert(sock:connect("127.0.0.1", server.port))
    assert(sock:setoption("send-buffer-size", 16384))
    local conn = assert(lssl.wrap(sock, F.client_params(pki)))
    assert(conn:sni("localhost"))
    conn:settimeout(0)

    local lines = F.lines(8000, 200, 31)
    local out = table.concat(lines, "\n") .. "\n"
    local expected = {}
    for i, l in ipairs(lines) do expected[i] = l:reverse() end

    local cq = cqueues.new()
    local waits = { r = 0, w = 0 }
    local got, sent_all = {}, false
    local function reader()
      local part
      while #got < #lines do
        local line, err
        line, err, part = conn:receive("*l", part)
        if line then
          got[#got + 1] = line
          part = nil
        else
          wait_for(conn, err)
        end
      end
    end
    cq:wrap(function()
      -- the handshake, then the reader beside this writer
      while true do
        local ok, err = conn:dohandshake()
        if ok then break end
        wait_for(conn, err)
      end
      cq:wrap(reader)
      local last = 0
      while last < #out do
        local n, err
        n, err, last = conn:send(out, last + 1)
        if n then
          last = n
        else
          local ev = wait_for(conn, err)
          waits[ev] = waits[ev] + 1
        end
      end
      sent_all = true
    end)
    local deadline = socket.gettime() + 60
    while not cq:empty() do
      assert(socket.gettime() < deadline, "the cqueues loop did not finish")
      local ok, err = cq:step(1)
      assert(ok, err)
    end
    assert.is_true(sent_all)
    assert.are.equal(#lines, #got)
    for i = 1, #lines do
      if got[i] ~= expected[i] then
        error(("line %d differs"):format(i))
      end
    end
    local st = conn:stats()
    assert.are.equal(#out, st.bytes_written)
    assert.are.equal(0, st.mismatches)
    assert.is_true(waits.w > 0) -- the writer did wait for writable
    assert.are.equal(waits.w, st.want_write)
    conn:close()
  end)
end)
