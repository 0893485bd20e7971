-- retls/luasec.lua - LuaSec's module shape over retls:
--
--   local ssl = require "retls.luasec"   -- instead of require "ssl"
--   local conn = assert(ssl.wrap(sock, { mode = "client", verify = "peer",
--                                         cafile = "ca.pem" }))
--   conn:sni("example.org")
--   assert(conn:dohandshake())
--   conn:send("GET / HTTP/1.0\r\n\r\n")
--   print(conn:receive("*a"))
--
-- ssl.newcontext(params) and ssl.wrap(sock, params_or_context) take
-- LuaSec's params table and return nil, message on failure as LuaSec
-- does.  The connection is a retls connection: LuaSec's socket methods
-- (send, receive, settimeout, dohandshake, getfd, dirty, close, sni,
-- getpeername, getsockname, getpeercertificate, getalpn, info, want,
-- getfinished, getpeerfinished, exportkeyingmaterial, getpeerverification,
-- getpeerchain, getlocalchain, getlocalcertificate, getsniname, getstats,
-- setstats; setdane and settlsa answer nil, "not supported") beside
-- retls' own raising API.  Parameters retls does not support give an error naming
-- them; README "Switching from LuaSec" lists what differs and why.
local retls = require "retls"

local M = {
  _VERSION = "retls.luasec (LuaSec 1.2 shape) over " .. retls._VERSION,
}

-- The LuaSec parameters retls cannot honour, with the way out.
local UNSUPPORTED = {
  password = "encrypted private keys are not supported: give 'key' " ..
    "unencrypted (openssl pkey -in key.pem -out plain.pem)",
  certificates = "several certificate/key pairs are not supported: give " ..
    "one 'certificate' and 'key'",
  depth = "a verification depth is not supported (OpenSSL's default " ..
    "limit applies)",
  dhparam = "DH parameters are not supported (retls negotiates ECDHE " ..
    "with OpenSSL's groups)",
  curve = "choosing the curve is not supported (OpenSSL's default groups)",
  curveslist = "choosing the curves is not supported (OpenSSL's default " ..
    "groups)",
  verifyext = "extra verification flags (lsec_*) are not supported: " ..
    "verification failures always fail the handshake",
  dane = "DANE is not supported",
  -- (not a LuaSec parameter: LuaSec's servers pick contexts by name with
  -- conn:sni(table), which retls.luasec does not support either)
  sni = "server-side SNI (contexts chosen by host name) is not supported: " ..
    "serve each name from its own listening socket and context, or one " ..
    "certificate that carries every name; clients call conn:sni(hostname)",
}

local KNOWN = {
  mode = true, protocol = true, verify = true, options = true,
  cafile = true, capath = true, certificate = true, key = true,
  ciphers = true, ciphersuites = true, alpn = true,
}

local VERSIONS = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" }
local PROTOCOLS = {   -- protocol -> index range into VERSIONS
  any = { 3, 4 }, sslv23 = { 3, 4 },   -- retls' minimum is TLS 1.2
  tlsv1 = { 1, 1 }, tlsv1_1 = { 2, 2 }, tlsv1_2 = { 3, 3 }, tlsv1_3 = { 4, 4 },
}

-- LuaSec options whose effect retls already has (or maps), and what the
-- rest would need.
local OPTION_OK = {
  no_sslv2 = true, no_sslv3 = true,            -- never offered by OpenSSL 3
  no_compression = true,                       -- retls never compresses
  single_dh_use = true, single_ecdh_use = true, -- always so in OpenSSL 3
  no_tlsv1 = true, no_tlsv1_1 = true, no_tlsv1_2 = true, no_tlsv1_3 = true,
  no_renegotiation = true,                     -- renegotiation = false
}
local OPTION_WHY = {
  all = "SSL_OP_ALL turns on OpenSSL's bug workarounds, legacy_server_connect " ..
    "among them (renegotiation with servers without RFC 5746), which " ..
    "retls refuses; drop it",
  legacy_server_connect = "retls only talks to peers with secure " ..
    "renegotiation (RFC 5746)",
  allow_unsafe_legacy_renegotiation = "retls only talks to peers with " ..
    "secure renegotiation (RFC 5746)",
}

local function list_of(v)
  if type(v) == "table" then return v end
  return { v }
end

local function fail(fmt, ...)
  return nil, "retls.luasec: " .. fmt:format(...)
end

-- params -> retls.context options, or nil, message.
local function context_options(params)
  if type(params) ~= "table" then
    return fail("params table expected, got %s", type(params))
  end
  for k in pairs(params) do
    if UNSUPPORTED[k] then
      return fail("parameter '%s': %s", tostring(k), UNSUPPORTED[k])
    elseif not KNOWN[k] then
      return fail("unknown parameter '%s' (LuaSec's are mode, protocol, " ..
        "verify, options, cafile, capath, certificate, key, ciphers, " ..
        "ciphersuites, alpn)", tostring(k))
    end
  end
  local mode = params.mode
  if mode ~= "client" and mode ~= "server" then
    return fail("parameter 'mode' must be \"client\" or \"server\", got %s",
      tostring(mode))
  end
  local opts = { role = mode }

  -- protocol and version options -> min_version / max_version
  local range = PROTOCOLS[params.protocol or "any"]
  if not range then
    return fail("parameter 'protocol': \"%s\" is not supported (any, " ..
      "tlsv1_2, tlsv1_3; tlsv1 and tlsv1_1 where OpenSSL allows them)",
      tostring(params.protocol))
  end
  local lo, hi = range[1], range[2]
  for _, o in ipairs(list_of(params.options or {})) do
    if type(o) ~= "string" then
      return fail("parameter 'options': option names expected, got %s", type(o))
    elseif o == "no_renegotiation" then
      opts.renegotiation = false
    elseif o == "no_tlsv1" and lo <= 1 then lo = 2
    elseif o == "no_tlsv1_1" and lo <= 2 then lo = math.max(lo, 3)
    elseif o == "no_tlsv1_2" then
      if lo == 3 then lo = 4 elseif hi == 3 then hi = 2 end
    elseif o == "no_tlsv1_3" and hi == 4 then hi = 3
    elseif not OPTION_OK[o] then
      return fail("option '%s' is not supported: %s", o, OPTION_WHY[o] or
        "retls does not set OpenSSL options beyond its own defaults " ..
        "(supported: no_sslv2, no_sslv3, no_tlsv1, no_tlsv1_1, no_tlsv1_2, " ..
        "no_tlsv1_3, no_compression, no_renegotiation, single_dh_use, " ..
        "single_ecdh_use)")
    end
  end
  if lo > hi then
    return fail("parameters 'protocol' and 'options' leave no TLS version")
  end
  opts.min_version, opts.max_version = VERSIONS[lo], VERSIONS[hi]

  -- verify: LuaSec's default is "none"; retls verifies unless told not to
  -- (README: what differs).
  if params.verify ~= nil then
    local flags = {}
    for _, v in ipairs(list_of(params.verify)) do
      if v ~= "none" and v ~= "peer" and v ~= "client_once" and
          v ~= "fail_if_no_peer_cert" then
        return fail("parameter 'verify': \"%s\" is not one of none, peer, " ..
          "client_once, fail_if_no_peer_cert", tostring(v))
      end
      flags[v] = true
    end
    if flags.peer then
      if mode == "server" and not flags.fail_if_no_peer_cert then
        return fail("verify \"peer\" without \"fail_if_no_peer_cert\" on a " ..
          "server (ask for a client certificate but accept none) is not " ..
          "supported: use { \"peer\", \"fail_if_no_peer_cert\" } or \"none\"")
      end
      opts.verify = true
    else
      opts.verify = false
    end
  elseif mode == "server" then
    opts.verify = false
  end

  for _, k in ipairs({ "cafile", "capath", "certificate", "key", "ciphers",
                       "ciphersuites" }) do
    local v = params[k]
    if v ~= nil and type(v) ~= "string" then
      return fail("parameter '%s': string expected, got %s", k, type(v))
    end
  end
  if params.key and not params.certificate then
    return fail("parameter 'key' needs 'certificate' as well")
  end
  opts.cafile, opts.capath = params.cafile, params.capath
  opts.certfile, opts.keyfile = params.certificate, params.key
  opts.ciphers, opts.ciphersuites = params.ciphers, params.ciphersuites

  if params.alpn ~= nil then
    local a = params.alpn
    if type(a) == "function" then
      return fail("parameter 'alpn': a selection function is not " ..
        "supported: give the list of protocols (the server picks the first " ..
        "of its list that the client offers)")
    elseif type(a) == "string" and mode == "client" then
      a = { a }
    elseif type(a) ~= "table" then
      return fail("parameter 'alpn': invalid ALPN parameter (%s)", type(a))
    end
    if #a == 0 then return fail("parameter 'alpn': invalid ALPN list (empty)") end
    opts.alpn = a
  end
  return opts
end

--- ssl.newcontext(params) -> context | nil, message
function M.newcontext(params)
  local opts, err = context_options(params)
  if not opts then return nil, err end
  local ok, ctx = pcall(retls.context, opts)
  if not ok then
    return nil, "retls.luasec: " .. (type(ctx) == "table" and ctx.message or tostring(ctx))
  end
  return ctx
end

--- ssl.wrap(sock, params_or_context) -> connection | nil, message
-- sock: a connected LuaSocket TCP object.  The connection takes over its
-- descriptor as LuaSec's does: closing the connection closes it.  A
-- client checks the certificate (when it verifies) against the address
-- sock is connected to until conn:sni(hostname) names the host.
function M.wrap(sock, cfg)
  local ctx, err = cfg, nil
  if type(cfg) == "table" and getmetatable(cfg) == nil then
    ctx, err = M.newcontext(cfg)
    if not ctx then return nil, err end
  elseif not (type(cfg) == "table" and cfg._c and cfg.role) then
    return fail("params table or context expected, got %s", type(cfg))
  end
  if (type(sock) ~= "table" and type(sock) ~= "userdata") or
      not pcall(function() return sock.getfd and sock.setfd end) or
      not sock.getfd or not sock.setfd then
    return fail("connected LuaSocket TCP object expected, got %s", type(sock))
  end
  local name
  if ctx.role == "client" then
    name = sock:getpeername()
    if not name then
      return fail("the socket is not connected (getpeername failed)")
    end
  end
  return retls._luasec_wrap(ctx, sock, name)
end

return M
