-- A plain LuaSec client, as found in the wild: blocking with a timeout,
-- sni, dohandshake, line-oriented send/receive, close.  It talks to
-- `openssl s_server -rev` (which answers each line reversed) on
-- 127.0.0.1:port and returns what it saw.  luasec_spec.lua runs it as is
-- and with only its require line changed to require "retls.luasec".
local socket = require "socket"
local ssl = require "ssl"

local port, cafile = ...
local params = {
  mode = "client",
  protocol = "any",
  verify = "peer",
  cafile = cafile,
  options = { "no_sslv3", "no_compression" },
}

local sock = assert(socket.connect("127.0.0.1", port))
sock = assert(ssl.wrap(sock, params))
sock:sni("localhost")
sock:settimeout(10)
assert(sock:dohandshake())

local result = { sent = {}, lines = {}, protocol = sock:info("protocol") }
-- what such programs also ask (channel binding, verification, stats)
local info = sock:info()
result.facts = {
  verification = { sock:getpeerverification() },
  finished = #sock:getfinished(),
  peerfinished = #sock:getpeerfinished(),
  exported = #sock:exportkeyingmaterial("EXPERIMENTAL-program", 16, "ctx"),
  cipher = info.cipher, bits = info.bits, algbits = info.algbits,
  key = info.key, encryption = info.encryption, mac = info.mac,
}
for i = 1, 300 do
  local line = ("line %d "):format(i) .. ("x"):rep(i)
  result.sent[i] = line
  assert(sock:send(line .. "\n"))
  result.lines[i] = assert(sock:receive("*l"))
end
local received, sent = sock:getstats()
result.facts.received, result.facts.sent = received, sent
sock:close()
return result
