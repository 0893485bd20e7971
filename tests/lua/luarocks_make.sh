#!/usr/bin/env bash
# tests/lua/luarocks_make.sh LUA ROCKS_LUA_VERSION - prove the rockspec.
#
# `luarocks make` from a clean copy of the tree (the committed files only:
# nothing a build left behind can help) into a temporary --tree, then the
# installed module is required by LUA and the smoke spec runs against it.
# ROCKS_LUA_VERSION is the Lua luarocks builds for (5.1 for LuaJIT, whose
# C API is Lua 5.1's).  Registered in CTest by bindings/lua/CMakeLists.txt.
set -euo pipefail
lua=$1 ver=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retls-luarocks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- a clean copy -----------------------------------------------------------
mkdir "$tmp/src"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do   # tracked files (deleted ones skipped)
    if [ -f "$root/$f" ]; then (cd "$root" && cp -p --parents "$f" "$tmp/src"); fi
  done < <(git -C "$root" ls-files -z)
else  # not a git checkout: the source directories, minus build products
  (cd "$root" && tar --exclude='build*' --exclude='*.so' --exclude='*_wrap.c' \
     -cf - CMakeLists.txt cmake core bindings tests LICENSE ./*.rockspec) | tar -xf - -C "$tmp/src"
fi

# ---- the version: one place (RETLS_VERSION in retls.h) ----------------------
version=$(sed -n 's/^#define RETLS_VERSION "\(.*\)"$/\1/p' "$root/core/include/retls.h")
[ -n "$version" ] || { echo "no RETLS_VERSION in core/include/retls.h" >&2; exit 1; }
for spec in "$root"/*.rockspec; do
  # scm-N/dev-N rockspecs build whatever the checkout holds (luarocks
  # allows no number there); a release rockspec must carry the header's.
  v=$(sed -n 's/^version *= *"\(.*\)-[0-9]*"/\1/p' "$spec")
  case $v in
    scm|dev) ;;
    "$version") ;;
    *) echo "$(basename "$spec"): version $v, but retls.h says $version" >&2; exit 1 ;;
  esac
done

# ---- luarocks make into a temporary tree ------------------------------------
cd "$tmp/src"
luarocks --lua-version "$ver" lint retls-scm-1.rockspec
if ! luarocks --lua-version "$ver" make --tree "$tmp/tree" retls-scm-1.rockspec \
     >"$tmp/luarocks.log" 2>&1; then
  tail -40 "$tmp/luarocks.log" >&2
  echo "luarocks make failed (Lua $ver)" >&2
  exit 1
fi
grep "is now installed" "$tmp/luarocks.log"
# The rockspec lists the Lua files by hand: every one must be installed.
(cd "$tmp/src/bindings/lua" && find . -name '*.lua' | sort) | while read -r f; do
  if [ ! -f "$tmp/tree/share/lua/$ver/${f#./}" ]; then
    echo "retls-scm-1.rockspec does not install bindings/lua/${f#./}" >&2
    exit 1
  fi
done

# ---- the installed module, with this Lua -----------------------------------
# Only the tree and the specs' helpers come before the system paths, where
# no retls is installed; the check below names the file that was loaded.
export LUA_PATH="$tmp/tree/share/lua/$ver/?.lua;$tmp/src/tests/lua/?.lua;;"
export LUA_CPATH="$tmp/tree/lib/lua/$ver/?.so;;"
RETLS_TREE=$tmp/tree RETLS_HEADER_VERSION=$version "$lua" -e '
  local tree, version = os.getenv("RETLS_TREE"), os.getenv("RETLS_HEADER_VERSION")
  local retls = require "retls"
  local src = debug.getinfo(retls.wrap, "S").source
  assert(src:find(tree, 1, true), "retls.lua came from " .. src .. ", not the tree")
  assert(retls._VERSION == "retls " .. version, "installed _VERSION "
         .. tostring(retls._VERSION) .. ", but retls.h says " .. version)
  print("installed: " .. retls._VERSION .. " from " .. src:sub(2))
  local lsrc = debug.getinfo(require("retls.luasec").wrap, "S").source
  assert(lsrc:find(tree, 1, true), "retls/luasec.lua came from " .. lsrc)
  print("installed: retls.luasec from " .. lsrc:sub(2))'
cd "$tmp/src/tests/lua"
"$lua" "$(command -v busted)" --output=utfTerminal smoke_spec.lua
