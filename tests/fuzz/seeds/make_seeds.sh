#!/bin/sh
# make_seeds.sh - writes the fuzz seeds into OUTDIR/{decode,sigma,import}/ from sources the
# project owns (nothing from ../shared):
#   decode  packed batches of vigil's simulator and hand-made edge cases (gen_seeds.c)
#   import  JSON lines written from simulated events, and hand-made edge cases (gen_seeds.c)
#   sigma   vigil's own rules (rules/*.yml) and the hand-written rules of tests/fuzz/seeds/sigma/
#   evtx    EVTX file headers (gen_seeds.c) and the hand-written records of tests/fuzz/seeds/evtx/
#   state   changelog snapshots of made-up machines (gen_seeds.c, with vigil's own rules/)
# Usage: tests/fuzz/seeds/make_seeds.sh BUILD_DIR OUTDIR
#   BUILD_DIR: an ordinary gcc build of the project with vg_bench built
#   (cmake --build BUILD_DIR --target vg_bench).
# tests/fuzz/README.md says how the seeds become the saved corpora.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR OUTDIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=$(cd "$1" && pwd)
out=$2
here=$src/tests/fuzz/seeds
mkdir -p "$out/sigma"
cc -std=c11 -O1 -g -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
   -I"$src/common" -I"$src/bench" -I"$src/correlate" -I"$src/storage" -I"$build/proto" \
   "$here/gen_seeds.c" -o "$out/gen_seeds" \
   "$build/libvg_bench.a" "$build/libvg_ingest.a" "$build/libvg_correlate.a" \
   "$build/libvg_storage.a" "$build/libvg_common.a" "$build/libvg_proto.a" \
   -lprotobuf-c -ljansson -lyaml -lhs -lpcre2-8 -lrocksdb -lzstd -lxxhash -lrdkafka -lck \
   -levtx -lxml2 -lm
"$out/gen_seeds" "$out" "$src/rules"
cp "$src"/rules/*.yml "$here"/sigma/*.yml "$out/sigma/"
cp "$here"/evtx/*.xml "$out/evtx/"
# Each document of a multi-document file alone as well: smaller inputs for the mutator.
for f in "$here"/sigma/*.yml; do
    awk -v p="$out/sigma/$(basename "$f" .yml)-doc" '
        /^---/ { n++; next } { print > (p n ".yml") }' "$f"
done
echo "make_seeds: decode $(ls "$out/decode" | wc -l), sigma $(ls "$out/sigma" | wc -l)," \
     "import $(ls "$out/import" | wc -l), evtx $(ls "$out/evtx" | wc -l)," \
     "state $(ls "$out/state" | wc -l) seeds in $out"
