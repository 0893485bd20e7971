-- luarocks make: builds the SWIG Lua module with CMake (like luv) and
-- installs retls_core.so, retls.lua and retls/luasec.lua into the
-- rocks tree.
-- Needs: a C compiler, CMake >= 3.18, SWIG >= 4.0, OpenSSL >= 3.0 headers
-- (Debian: build-essential cmake swig libssl-dev).
rockspec_format = "3.0"
package = "retls"
version = "scm-1"
source = {
  url = "git+file://.", -- built from this checkout with `luarocks make`
}
description = {
  summary = "TLS writes that keep OpenSSL's retry contract for you",
  detailed = [[
retls wraps OpenSSL 3 connections so that a write stopped by WantRead /
WantWrite is kept by the library: the string may be collected, a retry
with other bytes is refused, flush() finishes the pending write.
Errors are raised (retls.WantRead / retls.WantWrite are unique values);
conn:trywrite() is the non-raising form.]],
  license = "MIT",
  labels = { "tls", "ssl", "openssl", "swig" },
}
dependencies = {
  "lua >= 5.1",
}
build = {
  type = "cmake",
  variables = {
    -- only the Lua module: no Python, no tests
    BUILD_PYTHON = "OFF",
    BUILD_LUA = "ON",
    BUILD_TESTING = "OFF",
    -- the headers of the Lua that luarocks builds for
    LUA_INCDIR = "$(LUA_INCDIR)",
    CMAKE_BUILD_TYPE = "Release",
  },
  -- CMake's install step would also install the C library and header
  -- under its own prefix; luarocks only needs the two module files, which
  -- CMake leaves in build.luarocks/lua/ (the layout the tests use).
  install_pass = false,
  install = {
    lib = { retls_core = "build.luarocks/lua/retls_core.so" },
    lua = {
      retls = "bindings/lua/retls.lua",
      ["retls.luasec"] = "bindings/lua/retls/luasec.lua",
    },
  },
}
