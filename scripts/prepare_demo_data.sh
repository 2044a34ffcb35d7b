#!/usr/bin/env bash
# Makes the demo corpus: the King James Bible (public domain, ~4.1 MB of ASCII text, one
# verse per line) from the `bible` program of Debian's bible-kjv package, then byte-level
# token shards in data/kjv/ (train_*.bin, val_*.bin; 5% of 16 KiB blocks go to val).
#
#   scripts/prepare_demo_data.sh            # PPTRAIN_BIN defaults to build/apps/pptrain
#   PPTRAIN_BIN=/path/to/pptrain scripts/prepare_demo_data.sh
#
# Re-runnable: does nothing when data/kjv/train_000000.bin is newer than this script.
# bible-kjv is installed by scripts/setup.sh; this script installs nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
script="scripts/prepare_demo_data.sh"
out_dir="data/kjv"
text="$out_dir/kjv.txt"
first_shard="$out_dir/train_000000.bin"
PPTRAIN_BIN="${PPTRAIN_BIN:-build/apps/pptrain}"

die() {
  echo "prepare_demo_data: error: $*" >&2
  exit 1
}

if [[ -f "$first_shard" && "$first_shard" -nt "$script" ]]; then
  echo "prepare_demo_data: $out_dir is up to date (remove $first_shard to rebuild)"
  exit 0
fi

command -v bible >/dev/null 2>&1 ||
  die "the 'bible' program is missing; install the bible-kjv package (scripts/setup.sh does)"
[[ -x "$PPTRAIN_BIN" ]] ||
  die "$PPTRAIN_BIN is not an executable; build pptrain first (cmake --build build) or set PPTRAIN_BIN"

mkdir -p "$out_dir"
trap 'rm -f "$text.tmp"' EXIT
# -f turns bible's pretty-printing off: one verse per line, as "Ge1:1 In the beginning ...".
# The leading reference is dropped so the model learns the text, not the verse numbers.
# Written to a temporary name so an interrupted run leaves no partial corpus behind.
echo "prepare_demo_data: extracting the King James Bible to $text"
bible -f "Gen1:1-Rev22:21" | sed 's/^[^ ]* //' >"$text.tmp"
bytes=$(wc -c <"$text.tmp")
lines=$(wc -l <"$text.tmp")
# The full text is 31102 verses, ~4.1 MB; much less means bible's data files are damaged.
((lines >= 31000 && bytes >= 4000000)) ||
  die "bible printed only $lines lines ($bytes bytes); expected 31102 verses (~4.1 MB)"
mv "$text.tmp" "$text"
echo "prepare_demo_data: $lines verses, $bytes bytes"

"$PPTRAIN_BIN" prepare --out "$out_dir" --val-fraction 0.05 "$text"
[[ -f "$first_shard" ]] || die "$PPTRAIN_BIN prepare did not write $first_shard"
echo "prepare_demo_data: done; shards in $out_dir/"
