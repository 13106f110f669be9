#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the parsers, on the stable toolchain (run by ci/test.sh).
#
#   ./ci/fuzz.sh                    # every target, FUZZ_SECONDS (default 12) each
#   ./ci/fuzz.sh rust:unpad py:rpc  # chosen targets
#   ./ci/fuzz.sh --list             # target names
#   FUZZ_MERGE=1 FUZZ_SEED=0 FUZZ_SECONDS=300 ./ci/fuzz.sh ...
#                                   # longer, random run that adds what it finds to the kept corpus
#   ./ci/fuzz.sh --build            # only build the Rust targets (so the crate cannot rot)
#
# Rust (core_ext/fuzz, the cargo-fuzz targets): built with libfuzzer-sys and the same
# SanitizerCoverage flags `cargo fuzz build --sanitizer none` uses. Those are stable rustc
# flags; only the address sanitizer (`-Zsanitizer`) needs nightly, and these crates are safe
# Rust apart from audited dependencies, so nothing is lost that a panic or an assert would not
# show. Debug assertions and overflow checks are on. With cargo-fuzz and a nightly toolchain the
# same targets also run as `cargo +nightly fuzz run TARGET fuzz/corpus-seed/TARGET`.
#
# Python (tests/fuzz/harnesses.py): atheris runs the same libFuzzer engine over the Python entry
# points, instrumenting the `session` package as it is imported.
#
# Each target starts from its corpus kept in the repository (core_ext/fuzz/corpus-seed/TARGET,
# tests/fuzz/corpus/TARGET), read-only; what a run finds goes to a temporary directory. A crash
# fails the script and prints the input (hex) that caused it; add it to the kept corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh

RUST_TARGETS=(bt_decode mnemonic_decode onion_layer_decode onion_peel onion_v4_decode session_decrypt blinded_dm_decrypt unpad
  zstd_decompress groups_parse plain_store link_frames)
PY_TARGETS=(rpc onion snodes content receive community)
SECONDS_EACH="${FUZZ_SECONDS:-12}"
# A fixed libFuzzer seed by default, so a run explores the same way on the same code and a
# failure is not chance; FUZZ_SEED=0 picks a random one (for longer runs by hand).
SEED="${FUZZ_SEED:-1}"

if [ "${1:-}" = "--list" ]; then
  printf 'rust:%s\n' "${RUST_TARGETS[@]}"
  printf 'py:%s\n' "${PY_TARGETS[@]}"
  exit 0
fi

build_only=0
if [ "${1:-}" = "--build" ]; then build_only=1; shift; fi

selected=("$@")
if [ ${#selected[@]} -eq 0 ]; then
  selected=("${RUST_TARGETS[@]/#/rust:}" "${PY_TARGETS[@]/#/py:}")
fi
want_rust=0
want_py=0
for t in "${selected[@]}"; do
  case "$t" in
    rust:*) want_rust=1 ;;
    py:*) want_py=1 ;;
    *) echo "unknown target '$t' (see ./ci/fuzz.sh --list)" >&2; exit 2 ;;
  esac
done
# atheris has wheels for x86_64 Linux only (see pyproject.toml): elsewhere say so and skip.
if [ "$want_py" = 1 ] && [ "$build_only" = 0 ] && ! python3 -c 'import atheris' 2>/dev/null; then
  if [ "$(uname -sm)" = "Linux x86_64" ]; then
    echo "atheris is not installed: run ./ci/install.sh" >&2
    exit 1
  fi
  echo "skipping the Python targets: atheris has no wheel for $(uname -sm)"
  mapfile -t selected < <(printf '%s\n' "${selected[@]}" | grep '^rust:' || true)
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
fuzz_target_dir="${FUZZ_TARGET_DIR:-$PWD/core_ext/fuzz/target}"
if [ "$want_rust" = 1 ] || [ "$build_only" = 1 ]; then
  # An explicit --target keeps these flags off build scripts and proc macros.
  (cd core_ext/fuzz && CARGO_TARGET_DIR="$fuzz_target_dir" RUSTFLAGS="\
-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --locked --release --quiet --target "$host" --bins)
fi
[ "$build_only" = 1 ] && exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()

# run NAME CORPUS CMD... : fuzz for SECONDS_EACH from the kept CORPUS; one summary line.
run() {
  local name="$1" corpus="$2"; shift 2
  local out="$work/$name" log="$work/$name.log"
  mkdir -p "$out" "$corpus" "$work/artifacts"
  local start=$SECONDS rc=0
  "$@" "$out" "$corpus" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=1024 \
    -max_len=8192 -seed="$SEED" -artifact_prefix="$work/artifacts/$name-" -print_final_stats=1 \
    >"$log" 2>&1 || rc=$?
  local runs
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $name (exit $rc after $((SECONDS - start)) s)"
    grep -v '^#[0-9]' "$log" | tail -40
    for a in "$work/artifacts/$name-"*; do
      [ -e "$a" ] && echo "input $(basename "$a"): $(od -An -v -tx1 "$a" | tr -d ' \n' | head -c 4096)"
    done
    failed+=("$name")
  else
    echo "ok   $name: ${runs:-?} inputs in $((SECONDS - start)) s, corpus $(ls "$corpus" | wc -l) kept + $(ls "$out" | wc -l) new"
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
      "$@" -merge=1 "$corpus" "$out" >"$log.merge" 2>&1
      echo "     merged: corpus now $(ls "$corpus" | wc -l)"
    fi
  fi
}

for t in "${selected[@]}"; do
  case "$t" in
    rust:*)
      n="${t#rust:}"
      run "$t" "core_ext/fuzz/corpus-seed/$n" "$fuzz_target_dir/$host/release/$n" ;;
    py:*)
      n="${t#py:}"
      run "$t" "tests/fuzz/corpus/$n" tests/fuzz/run_atheris.py "$n" ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found failures in: ${failed[*]}"
  exit 1
fi
