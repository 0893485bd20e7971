-- tests/lua/old_copas.lua - LuaSec's "wantread"/"wantwrite" for Debian's
-- old copas.
--
-- Debian 12's lua-copas is copas 1.1.7 (packaged as 1.2): its send and
-- receive wait only when the socket says "timeout".  Current copas (2.x,
-- 3.x, 4.x) also waits on LuaSec's "wantread" and "wantwrite", each in its
-- own direction: after "wantread" for readable, after "wantwrite" for
-- writable, then it calls again from last_index + 1 (send) or with the
-- partial as prefix (receive).  wrap(conn) gives old copas that behaviour,
-- for a LuaSec connection and a retls one alike:
--
--   "wantwrite" from send, "wantread" from receive -> "timeout" (old copas
--       then waits in that same direction and calls again, as current
--       copas would);
--   the other direction (wantread from send, wantwrite from receive) ->
--       waited for here, through copas' own wait (a stand-in object whose
--       first call says "timeout" puts this coroutine in copas' read or
--       write set), then the call is repeated.
--
-- Nothing is retried with other data: send resends from last_index + 1
-- exactly as copas does, which is what LuaSec requires and what retls
-- checks.  handshake(conn) drives dohandshake() the same way.
local copas = require "copas"

local M = {}

-- Wait in copas until conn's socket is readable ("r") or writable ("w").
local function wait(conn, dir)
  local fd = conn:getfd()
  local waited = false
  local standin = {
    getfd = function() return fd end,
    dirty = function() return dir == "r" and conn:dirty() end,
    receive = function()
      if waited then return "" end
      waited = true
      return nil, "timeout", ""
    end,
    send = function()
      if waited then return 1 end
      waited = true
      return nil, "timeout", 0
    end,
  }
  if dir == "r" then copas.receive(standin, 1) else copas.send(standin, "x") end
end
M.wait = wait

local Adapter = {}
Adapter.__index = Adapter

function Adapter:send(data, i, j)
  local conn = self.conn
  while true do
    local n, err, last = conn:send(data, i, j)
    if err == "wantwrite" then return nil, "timeout", last end
    if err ~= "wantread" then return n, err, last end
    wait(conn, "r")
    i = last + 1
  end
end

function Adapter:receive(pattern, prefix)
  local conn = self.conn
  while true do
    local s, err, part = conn:receive(pattern, prefix)
    if err == "wantread" then return nil, "timeout", part end
    if err ~= "wantwrite" then return s, err, part end
    wait(conn, "w")
    prefix = part
  end
end

function Adapter:getfd() return self.conn:getfd() end
function Adapter:dirty() return self.conn:dirty() end
function Adapter:close() return self.conn:close() end

--- wrap(conn) -> an object for copas.send / copas.receive
function M.wrap(conn)
  conn:settimeout(0)
  return setmetatable({ conn = conn }, Adapter)
end

--- handshake(conn) -> true | nil, err, waiting in copas as asked
function M.handshake(conn)
  conn:settimeout(0)
  while true do
    local ok, err = conn:dohandshake()
    if ok then return true end
    if err == "wantread" then wait(conn, "r")
    elseif err == "wantwrite" then wait(conn, "w")
    else return nil, err end
  end
end

return M
