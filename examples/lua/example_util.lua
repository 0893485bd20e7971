--[[
example_util.lua - the plumbing the Lua examples share, kept out of them so
they show only retls: command-line parsing, sizes like "16M", random test
data, and SHA-256 (Lua has none built in; this asks the openssl command,
which retls needs anyway).  Works on Lua 5.1 to 5.4 and LuaJIT.
]]
local M = {}

function M.die(fmt, ...)
  io.stderr:write("error: ", fmt:format(...), "\n")
  os.exit(1)
end

-- "16M", "256K", "1000" -> number of bytes.
function M.size(text)
  local n, unit = tostring(text):match("^(%d+)([KkMm]?)$")
  if not n then M.die("want a size like 1000, 256K or 16M, not '%s'", tostring(text)) end
  local mult = ({ k = 1024, m = 1024 * 1024 })[unit:lower()] or 1
  return tonumber(n) * mult
end

-- Parse --name value / --flag options (spec: name -> default, false for
-- "no default", "flag" for a boolean) and positional arguments, which are
-- returned as o[1], o[2]...; usage names the positionals.
function M.parse_args(argv, spec, usage)
  local o, i = {}, 1
  for k, v in pairs(spec) do
    if v == "flag" then o[k] = false elseif v then o[k] = v end
  end
  local function bad(msg)
    local names = {}
    for k, v in pairs(spec) do
      names[#names + 1] = "[--" .. k .. (v == "flag" and "" or " V") .. "]"
    end
    table.sort(names)
    io.stderr:write("error: ", msg, "\nusage: ", argv[0], " ",
                    table.concat(names, " "), " ", usage, "\n")
    os.exit(2)
  end
  while i <= #argv do
    local a = argv[i]
    local name = a:match("^%-%-(.+)$")
    if name then
      if spec[name] == nil then bad("unknown option " .. a) end
      if spec[name] == "flag" then
        o[name] = true
      else
        i = i + 1
        if argv[i] == nil then bad(a .. " needs a value") end
        o[name] = argv[i]
      end
    else
      o[#o + 1] = a
    end
    i = i + 1
  end
  local want = select(2, usage:gsub("%S+", ""))
  if #o ~= want then bad("expected " .. usage) end
  return o
end

-- n random bytes; with text, lines of 128 hex digits and a newline (the
-- last byte is a newline too), for line-based echo servers.
function M.random_data(n, text)
  local f = assert(io.open("/dev/urandom", "rb"))
  local data = f:read(n) or ""
  f:close()
  if not text then return data end
  local hex = {}
  for b = 0, 255 do hex[string.char(b)] = ("%x"):format(b % 16) end
  local lines, pos = {}, 1
  while pos <= n do
    local line = data:sub(pos, pos + 127):gsub(".", hex)
    pos = pos + 129
    lines[#lines + 1] = line
  end
  return (table.concat(lines, "\n"):sub(1, n - 1) .. "\n"):sub(1, n)
end

-- SHA-256 of a string as lowercase hex, via `openssl dgst`.
function M.sha256(s)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(s)
  f:close()
  local p = assert(io.popen("openssl dgst -sha256 -r " .. tmp))
  local out = p:read("*a")
  p:close()
  os.remove(tmp)
  local digest = out:match("^(%x+)")
  if not digest then M.die("openssl dgst gave no digest: %s", out) end
  return digest
end

return M
