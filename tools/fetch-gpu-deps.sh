#!/bin/sh
# tools/fetch-gpu-deps.sh [DIR]: download, on a networked Debian 12 machine, the .deb files that dama needs to
# BUILD and RUN on the GPU machine, which has the CUDA toolkit, CMake, a C compiler and Python but none of dama's
# Debian packages and no network. tools/gpu-check.sh unpacks them there into a private prefix (dpkg -x, never
# into /). DIR defaults to .gpu-deps/ in the repository root (git-ignored); carry it to the GPU machine.
#
#   tools/fetch-gpu-deps.sh                 # -> .gpu-deps/debs/*.deb, .gpu-deps/manifest.tsv, .gpu-deps/source.txt
#   tools/fetch-gpu-deps.sh /tmp/deps       # elsewhere
#
# What is fetched (Debian 12 amd64; apt-get download, no install, no root needed when the apt lists are current):
#   dev      headers, link-time .so symlinks and .pc files of dama's direct dependencies
#   direct   the shared libraries dama links (LuaJIT, libedit, libtiff, OpenBLAS, cJSON, Cairo)
#   tool     pkgconf (CMake's pkg_check_modules needs a pkg-config; the GPU image may have none)
#   font     DejaVu Sans (dama.plot draws text with it, through fontconfig)
#   closure  the runtime libraries those need that a bare Ubuntu/Debian-like image may lack; gpu-check.sh drops
#            each one whose soname the GPU machine's own ldconfig already knows (its own copy is newer and
#            ABI-compatible), so these only fill gaps
# Not fetched, assumed present wherever a C compiler is: glibc, libgcc_s, libstdc++, libgomp (OpenMP comes with
# the compiler). The script checks that closure: every DT_NEEDED of every shared library fetched is either fetched
# too or one of those (it fails and names the missing soname otherwise).
# Total: about 23 MB of .deb files (the limit checked here is 40 MiB; the whole working tree carried to the GPU
# machine must stay under 64 MiB, and the script prints that too).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/.gpu-deps}
limit_mib=40

DEV="libluajit-5.1-dev libtiff-dev libstb-dev libopenblas-pthread-dev libedit-dev libcjson-dev libcairo2-dev"
DIRECT="libluajit-5.1-2 libtiff6 libopenblas0-pthread libedit2 libcjson1 libcairo2"
TOOL="pkgconf-bin libpkgconf3"
FONT="fonts-dejavu-core"
CLOSURE="libbrotli1 libbsd0 libdeflate0 libexpat1 libfontconfig1 libfreetype6 libgfortran5 libjbig0 libjpeg62-turbo
  liblerc4 liblzma5 libmd0 libpixman-1-0 libpng16-16 libquadmath0 libtinfo6 libwebp7 libx11-6 libxau6 libxcb-render0
  libxcb-shm0 libxcb1 libxdmcp6 libxext6 libxrender1 libzstd1 zlib1g"
# sonames the GPU machine is assumed to have (the C/C++ compiler's runtime and glibc)
BASE_SONAMES="libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 ld-linux-x86-64.so.2 libgcc_s.so.1
  libstdc++.so.6 libgomp.so.1"

command -v apt-get >/dev/null || { echo "fetch-gpu-deps: needs apt-get (a Debian 12 machine)" >&2; exit 2; }
arch=$(dpkg --print-architecture 2>/dev/null || echo unknown)
[ "$arch" = amd64 ] || echo "fetch-gpu-deps: warning: this machine is '$arch'; the GPU machine is amd64" >&2
if [ -r /etc/os-release ]; then
  . /etc/os-release
  [ "${VERSION_CODENAME:-}" = bookworm ] || echo "fetch-gpu-deps: warning: this is ${PRETTY_NAME:-?}, not Debian 12" >&2
fi

mkdir -p "$dir/debs"
debs=$(cd "$dir/debs" && pwd)
all="$DEV $DIRECT $TOOL $FONT $CLOSURE"

# one apt-get download for all of them; if the lists lack a package (never updated, or stale), update once and retry
rm -f "$debs"/*.deb
download() { (cd "$debs" && apt-get download -q $all:amd64); }
if ! download >"$dir/download.log" 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "fetch-gpu-deps: apt-get download failed (see $dir/download.log); running apt-get update once" >&2
    apt-get update -qq
    download >"$dir/download.log" 2>&1 || { cat "$dir/download.log" >&2; exit 1; }
  else
    cat "$dir/download.log" >&2
    echo "fetch-gpu-deps: apt-get download failed; run 'apt-get update' as root and retry" >&2
    exit 1
  fi
fi

# manifest: group, package, version, bytes, file, sha256 (gpu-check.sh reads the group to know what it may drop)
man="$dir/manifest.tsv"
printf 'group\tpackage\tversion\tbytes\tfile\tsha256\n' >"$man"
for g in dev direct tool font closure; do
  case $g in dev) list=$DEV ;; direct) list=$DIRECT ;; tool) list=$TOOL ;; font) list=$FONT ;; closure) list=$CLOSURE ;; esac
  for p in $list; do
    f=$(ls "$debs"/"${p}"_*.deb 2>/dev/null | head -1)
    [ -n "$f" ] || { echo "fetch-gpu-deps: $p was not downloaded" >&2; exit 1; }
    v=$(dpkg-deb -f "$f" Version)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$g" "$p" "$v" "$(stat -c %s "$f")" "$(basename "$f")" \
      "$(sha256sum "$f" | cut -d' ' -f1)" >>"$man"
  done
done

# the closure check: unpack into a scratch folder and resolve every DT_NEEDED against what was fetched + the base set
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$debs"/*.deb; do dpkg-deb -x "$f" "$tmp"; done
have=$(find "$tmp" -name 'lib*.so*' \( -type f -o -type l \) -printf '%f\n' | sort -u)
missing=""
if command -v readelf >/dev/null; then
  for so in $(find "$tmp" -name 'lib*.so*' -type f); do
    for need in $(readelf -d "$so" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case " $(echo $BASE_SONAMES) " in *" $need "*) continue ;; esac
      echo "$have" | grep -qxF "$need" || missing="$missing $need(<-$(basename "$so"))"
    done
  done
else
  echo "fetch-gpu-deps: readelf not found (binutils): closure not checked" >&2
fi
if [ -n "$missing" ]; then
  echo "fetch-gpu-deps: libraries needed but not fetched:$missing" >&2
  echo "fetch-gpu-deps: add their packages to CLOSURE in $0" >&2
  exit 1
fi

# where these came from, for the GPU run's record (the GPU machine may get no .git)
{
  echo "fetched $(date -u +%FT%TZ) on $(uname -n) (${PRETTY_NAME:-unknown OS})"
  if git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
    echo "commit $(git -C "$root" rev-parse HEAD)"
    echo "dirty_files $(git -C "$root" status --porcelain --untracked-files=no | wc -l)"
  fi
} >"$dir/source.txt"

bytes=$(awk -F'\t' 'NR > 1 { s += $4 } END { print s }' "$man")
n=$(($(wc -l <"$man") - 1))
echo "fetch-gpu-deps: $n packages, $bytes bytes ($(du -sh "$debs" | cut -f1) on disk) in $debs"
echo "fetch-gpu-deps: closure checked: every needed library is fetched or in the base set ($(echo $BASE_SONAMES))"
if [ "$bytes" -gt $((limit_mib * 1024 * 1024)) ]; then
  echo "fetch-gpu-deps: over the $limit_mib MiB budget" >&2
  exit 1
fi
# what travels to the GPU machine: tracked + untracked-not-ignored files, plus this folder when carried
if git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
  tree=$(cd "$root" && { git ls-files -z --cached; git ls-files -z --others --exclude-standard; } |
         xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
  carried=$(du -sb "$dir" | cut -f1)
  echo "fetch-gpu-deps: working tree $tree bytes + $(basename "$dir") $carried bytes =" \
       "$(( (tree + carried) / 1048576 )) MiB of the 64 MiB that may travel"
  [ $((tree + carried)) -lt $((64 * 1024 * 1024)) ] || { echo "fetch-gpu-deps: too much to carry" >&2; exit 1; }
fi
