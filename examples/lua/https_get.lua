#!/usr/bin/env lua
--[[
https_get.lua - an HTTPS GET with the blocking API.

What it shows: the simple blocking path: retls.connect() (TCP connect with
a timeout), conn:handshake() with certificate and hostname verification and
ALPN, conn:sendall() of the request, conn:read() until the server closes.
Many HTTP servers close the TCP connection without a TLS close_notify; that
arrives as an error of kind "eof", which is fine once the whole body
(Content-Length) is in, and is reported as a truncation otherwise.

The status line and headers go to stderr, the body to stdout.  Exit status
0 for a 2xx response.

Run (any HTTPS server, e.g. the Python one in examples/python/https_get.py):
    lua5.4 examples/lua/https_get.lua --cafile cert.pem \
        https://localhost:4443/README.md
]]
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local retls = require "retls"
local util = require "example_util"  -- argument parsing

local o = util.parse_args(arg, { cafile = false, insecure = "flag", timeout = "30" }, "URL")
local host, port, path = o[1]:match("^https://([^/:]+):?(%d*)(.*)$")
if not host then util.die("want an https:// URL, not '%s'", o[1]) end
port = tonumber(port) or 443
if path == "" then path = "/" end

local function main()
  local ctx = retls.context {
    verify = not o.insecure, cafile = o.cafile or nil, alpn = { "http/1.1" },
  }
  local conn = retls.connect(host, port, ctx, { timeout = tonumber(o.timeout) })
  conn:handshake()
  local info = conn:info()
  io.stderr:write(("* %s %s, ALPN %s\n"):format(info.version, info.cipher,
    info.alpn or "(none)"))
  -- HTTP/1.0: the server answers without chunked encoding and closes.
  conn:sendall(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: retls-example\r\n\r\n")
    :format(path, o[1]:match("^https://([^/]+)")))
  local parts, clean = {}, true
  while true do
    local ok, chunk = pcall(conn.read, conn, 65536)
    if ok then
      parts[#parts + 1] = chunk
    elseif type(chunk) == "table" and chunk.kind == "zero_return" then
      break  -- close_notify: the server is done
    elseif type(chunk) == "table" and chunk.kind == "eof" then
      clean = false  -- TCP closed without close_notify
      break
    else
      error(chunk, 0)
    end
  end
  if clean then conn:shutdown() end
  conn:close()

  local response = table.concat(parts)
  local head_end = response:find("\r\n\r\n", 1, true)
  if not head_end then util.die("the response ended inside the headers") end
  local head, body = response:sub(1, head_end - 1), response:sub(head_end + 4)
  local status, length
  for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
    io.stderr:write("< ", line, "\n")
    status = status or tonumber(line:match("^HTTP/%S+ (%d+)"))
    length = length or tonumber(line:lower():match("^content%-length:%s*(%d+)"))
  end
  if length and #body ~= length then
    util.die("body truncated: %d of %d bytes (%s)", #body, length,
      clean and "close_notify" or "no close_notify")
  end
  io.stdout:write(body)
  return status and status >= 200 and status < 300
end

local ok, res = pcall(main)
if not ok then util.die("%s", tostring(res)) end
os.exit(res and 0 or 1)
