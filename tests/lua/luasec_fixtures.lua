-- tests/lua/luasec_fixtures.lua - what the LuaSec-face specs (luasec_*,
-- copas, cqueues, http) share: LuaSec's params for the throwaway PKI, a
-- tiny coroutine scheduler over socket.select that drives LuaSec and retls
-- connections alike (the way current copas does: "wantread" waits for
-- readable, "wantwrite" for writable), openssl s_server -WWW, SHA-256 of
-- strings, and connected TCP socket pairs.
local socket = require "socket"
local H = require "helpers"

local F = {}

-- LuaSec's params for the PKI of helpers.make_pki.
function F.server_params(pki, extra)
  local p = { mode = "server", protocol = "any", certificate = pki.server_cert,
              key = pki.server_key }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

function F.client_params(pki, extra)
  local p = { mode = "client", protocol = "any", verify = "peer",
              cafile = pki.ca }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

-- A connected pair of LuaSocket TCP objects on 127.0.0.1, non-blocking.
-- sndbuf (bytes) shrinks the client's send buffer so writes stop early.
function F.tcp_pair(sndbuf)
  local listener = assert(socket.bind("127.0.0.1", 0))
  local _, port = listener:getsockname()
  local a = socket.tcp()
  a:settimeout(5)
  assert(a:connect("127.0.0.1", port))
  -- (LuaSocket makes the descriptor at connect: set options after it)
  if sndbuf then assert(a:setoption("send-buffer-size", sndbuf)) end
  listener:settimeout(5)
  local b = assert(listener:accept())
  listener:close()
  a:settimeout(0)
  b:settimeout(0)
  return a, b
end

-- ---- a coroutine scheduler over socket.select ------------------------------
-- F.run({ f1, f2, ... }, seconds) runs each function in a coroutine until
-- all have returned (bounded); inside, F.wait(sock, "r" | "w") waits.
-- Errors inside a task are raised from F.run with the task's traceback.
function F.wait(sock, dir)
  coroutine.yield(sock, dir)
end

function F.run(fns, seconds)
  local tasks = {}
  for i, f in ipairs(fns) do
    tasks[i] = { co = coroutine.create(f) }
  end
  local deadline = socket.gettime() + (seconds or 60)
  local function step(t)
    local ok, sock, dir = coroutine.resume(t.co)
    if not ok then error(debug.traceback(t.co, tostring(sock)), 0) end
    t.sock, t.dir = sock, dir
  end
  for _, t in ipairs(tasks) do step(t) end
  while true do
    local r, w, live = {}, {}, 0
    for _, t in ipairs(tasks) do
      if coroutine.status(t.co) ~= "dead" then
        live = live + 1
        if t.dir == "r" then r[#r + 1] = t.sock else w[#w + 1] = t.sock end
      end
    end
    if live == 0 then return end
    assert(socket.gettime() < deadline, "the tasks did not finish in time")
    local rr, ww = socket.select(r, w, 0.5)
    for _, t in ipairs(tasks) do
      if coroutine.status(t.co) ~= "dead" and
          ((t.dir == "r" and rr[t.sock]) or (t.dir ~= "r" and ww[t.sock])) then
        step(t)
      end
    end
  end
end

-- The LuaSec protocol driven to completion inside a F.run task, the way
-- current copas does it (identical for LuaSec and retls connections).
function F.handshake(conn)
  while true do
    local ok, err = conn:dohandshake()
    if ok then return true end
    if err == "wantread" then F.wait(conn, "r")
    elseif err == "wantwrite" then F.wait(conn, "w")
    else return nil, err end
  end
end

function F.send(conn, data, i, j)
  local last = (i or 1) - 1
  while true do
    local n, err
    n, err, last = conn:send(data, last + 1, j)
    if n then return n end
    if err == "wantwrite" then F.wait(conn, "w")
    elseif err == "wantread" then F.wait(conn, "r")
    else return nil, err, last end
  end
end

function F.receive(conn, pattern)
  local part
  while true do
    local s, err
    s, err, part = conn:receive(pattern, part)
    if s then return s end
    if err == "wantread" then F.wait(conn, "r")
    elseif err == "wantwrite" then F.wait(conn, "w")
    else return nil, err, part end
  end
end

-- ---- SHA-256 and servers -------------------------------------------------------
function F.sha256(s, dir)
  local path = dir .. "/sha-input"
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  return F.sha256_file(path)
end

function F.sha256_file(path)
  local out = H.run(("%s dgst -sha256 -r '%s'"):format(H.OPENSSL, path))
  return assert(out:match("^(%x+)"), out)
end

-- `openssl s_server -WWW` serving the files of dir (bounded: 60 s, one
-- connection).  Returns { port, stop }.
function F.www_server(dir, cert, key)
  local out = dir .. "/www.out"
  local err = dir .. "/www.err"
  os.remove(out)
  local cmd = ("sh -c 'echo $$; cd %s && exec timeout 60 %s s_server -WWW " ..
    "-accept 127.0.0.1:0 -cert %s -key %s -naccept 1 </dev/null >%s 2>%s' &")
    :format(dir, H.OPENSSL, cert, key, out, err)
  local p = assert(io.popen(cmd))
  local pid = assert(tonumber(p:read("*l")), "s_server -WWW did not start")
  p:close()
  local port
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    port = tonumber((H.readfile(out) or ""):match("ACCEPT 127%.0%.0%.1:(%d+)"))
    if port then break end
    socket.sleep(0.02)
  end
  local server = { pid = pid, port = port }
  function server.stop() os.execute(("kill %d 2>/dev/null"):format(pid)) end
  if not port then
    server.stop()
    error("s_server -WWW did not report its port: " .. (H.readfile(err) or ""))
  end
  return server
end

-- Lines of printable text, count of them, width bytes each.
function F.lines(count, width, seed)
  local lines, pat = {}, H.pattern(count * width, seed or 7)
  for i = 1, count do
    lines[i] = (pat:sub((i - 1) * width + 1, i * width):gsub(".", function(c)
      return string.char(97 + c:byte() % 26)
    end))
  end
  return lines
end

return F
