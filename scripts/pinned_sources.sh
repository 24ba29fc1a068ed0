# shellcheck shell=bash
# Sourced by scripts/setup_ros_tools.sh and scripts/setup_sim_extras.sh: getting pinned upstream
# sources either from a folder of vendored archives (SHA-256 checked before unpacking) or from a
# GitHub host (checked after unpacking against a tree hash of the same files). The caller defines
# log and die.

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# SHA-256 over the sorted (path, content hash) list of every file under $1: independent of how the
# files were packed (the vendored gzip, GitHub's tarball) and of file times and modes.
tree_hash() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1; }

# pick_source VALUE DEFAULT_FOLDER: VALUE when set, else DEFAULT_FOLDER (absolute) when it exists,
# else https://github.com.
pick_source() {
  local value=$1 vendor=$2
  if [ -n "$value" ]; then
    echo "$value"
  elif [ -d "$vendor" ]; then
    (cd "$vendor" && pwd)
  else
    echo "https://github.com"
  fi
}

# announce_source SRC VARIABLE_NAME: logs where the sources come from; dies on a bad value.
announce_source() {
  local src=$1 var=$2
  case "$src" in
    http://* | https://*) log "sources: $src (upstream commits, checked against pinned tree hashes)" ;;
    *)
      [ -d "$src" ] || die "$var=$src is neither a folder nor an http(s) URL"
      log "sources: $src (pinned archives, SHA-256 checked)"
      ;;
  esac
}

is_url() { case "$1" in http://* | https://*) return 0 ;; *) return 1 ;; esac; }

fetch() {  # url out
  local url=$1 out=$2
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 --connect-timeout 20 -o "$out.part" "$url"
  elif command -v wget >/dev/null; then
    wget -q --tries=3 --timeout=20 -O "$out.part" "$url"
  else
    die "neither curl nor wget found to download $url"
  fi && mv "$out.part" "$out" && return 0
  rm -f "$out.part"
  return 1
}

# download_once URL TARBALL HINT: fetches URL into TARBALL unless it is there already.
download_once() {
  local url=$1 tarball=$2 hint=$3
  [ -f "$tarball" ] && return 0
  log "downloading $url"
  fetch "$url" "$tarball" || die "download failed: $url ($hint)"
}

# check_archive ARCHIVE SHA256 WHERE: dies unless the vendored archive exists and matches (WHERE, e.g.
# "EXPO_MIMICGEN_SRC=/path", goes into the not-found message).
check_archive() {
  local archive=$1 want=$2 where=$3 got
  [ -f "$archive" ] || die "$archive not found ($where)"
  got=$(sha256_of "$archive")
  [ "$got" = "$want" ] || die "$archive: SHA-256 mismatch: got $got, expected $want; not unpacking it"
}

# check_tree DIR TREE_SHA256 NAME DOWNLOADED_TARBALL: dies unless DIR's files hash to TREE_SHA256;
# a downloaded tarball that fails is removed (not kept for the next run; pass "" for a vendored one).
check_tree() {
  local dir=$1 want=$2 name=$3 downloaded=$4 got
  got=$(tree_hash "$dir")
  if [ "$got" != "$want" ]; then
    [ -n "$downloaded" ] && rm -f "$downloaded"
    die "$name: files differ from the pinned sources (tree hash $got, expected $want)"
  fi
}
