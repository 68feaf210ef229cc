#!/usr/bin/env bash
# Checks that third_party/h2 is exactly what third_party/h2.vendor.toml says:
# the published crate (fetched from crates.io, its checksum checked) with the
# recorded patch applied and the listed files left out. Fails on any drift.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
record="$repo/third_party/h2.vendor.toml"

field() { python3 -c "import sys,tomllib; print(tomllib.load(open(sys.argv[1],'rb'))[sys.argv[2]])" "$record" "$1"; }
name=$(field name)
version=$(field version)
checksum=$(field checksum)
patch="$repo/third_party/$(field patch)"
patch_sha=$(field patch_sha256)
mapfile -t omitted < <(python3 -c "import sys,tomllib; print('\n'.join(tomllib.load(open(sys.argv[1],'rb'))['omitted']))" "$record")

# The copy checked (another one to show that a drifted copy fails).
copy="${CHECK_VENDORED_COPY:-$repo/third_party/$name}"

fail() { echo "check-vendored: $*" >&2; exit 1; }

[[ "$(sha256sum "$patch" | cut -d' ' -f1)" == "$patch_sha" ]] ||
  fail "$patch changed: its sha256 is not the one in $record"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/probe/src"
cat >"$work/probe/Cargo.toml" <<TOML
[package]
name = "vendored-probe"
version = "0.0.0"
edition = "2021"
[dependencies]
$name = "=$version"
[workspace]
TOML
echo 'fn main() {}' >"$work/probe/src/main.rs"
(cd "$work/probe" && cargo fetch --quiet)
locked=$(python3 -c "
import sys,tomllib
lock=tomllib.load(open(sys.argv[1],'rb'))
print(next(p['checksum'] for p in lock['package'] if p['name']==sys.argv[2] and p['version']==sys.argv[3]))
" "$work/probe/Cargo.lock" "$name" "$version")
[[ "$locked" == "$checksum" ]] || fail "crates.io's $name $version has checksum $locked, not $checksum"

upstream=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$name-$version" | head -1)
cp -r "$upstream" "$work/expected"
(cd "$work/expected" && patch -p1 --quiet <"$patch")
for file in "${omitted[@]}"; do rm -rf "${work:?}/expected/$file"; done
if ! diff -r "$work/expected" "$copy" >"$work/diff"; then
  cat "$work/diff" >&2
  fail "$copy differs from $name $version + $(basename "$patch")"
fi
echo "check-vendored: $copy is $name $version (checksum $checksum) + $(basename "$patch")"
