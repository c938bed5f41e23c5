#!/usr/bin/env bash
# Build the libFuzzer target of the native parsers and run it (default 600 s), from the seed
# corpus in fuzz/corpus into a scratch corpus (the repository keeps only the seeds).
#   bash fuzz/run.sh [seconds] [scratch-dir]
# Needs clang with libFuzzer (Debian/Ubuntu: apt-get install clang). Findings land in
# $SCRATCH/artifacts/ as crash-*/leak-*/timeout-* files; rerun one with: $SCRATCH/fuzz_parsers FILE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-600}
scratch=${2:-${TMPDIR:-/tmp}/asyncopt-fuzz}
mkdir -p "$scratch/corpus" "$scratch/artifacts"
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$here/../csrc" "$here/fuzz_parsers.cpp" -o "$scratch/fuzz_parsers"
"$scratch/fuzz_parsers" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$scratch/artifacts/" -print_final_stats=1 "$scratch/corpus" "$here/corpus"
