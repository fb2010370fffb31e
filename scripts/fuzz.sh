#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time: bash scripts/fuzz.sh [SECONDS]
#
# Builds all targets once (nightly toolchain, installs cargo-fuzz if missing), then runs each for
# SECONDS (default 30) on a copy of its seed corpus fuzz/corpus/<target>/, so a run never writes
# into the repository. Prints executions, executions/s and coverage per target; exits 1 if any
# target crashed (the reproducer is kept in fuzz/artifacts/<target>/, the log's tail is shown).
#
# Without a nightly toolchain: an error under CI=true, SKIPPED otherwise.
# Environment: FUZZ_TARGETS (space-separated subset), FUZZ_TIMEOUT (seconds one input may take,
# default 20), FUZZ_RSS_MB (default 2048), FUZZ_BUILD (`release`, the default: optimized, for
# long runs; `dev`: unoptimized, with debug assertions and overflow checks, builds in a third
# of the time and runs several times slower — what CI's 30-second runs use).
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash scripts/fuzz.sh [SECONDS]   (a positive number of seconds per target)" >&2
    exit 2
fi
timeout_s="${FUZZ_TIMEOUT:-20}"
rss_mb="${FUZZ_RSS_MB:-2048}"
case "${FUZZ_BUILD:-release}" in
release) build=() ;;
dev) build=(--dev) ;;
*)
    echo "fuzz: FUZZ_BUILD is '${FUZZ_BUILD}'; use release or dev" >&2
    exit 2
    ;;
esac

skip_or_fail() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "fuzz: $1" >&2
        exit 1
    fi
    echo "fuzz: SKIPPED: $1"
    exit 0
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    skip_or_fail "the nightly toolchain is missing (rustup toolchain install nightly)"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz || cargo install cargo-fuzz ||
        skip_or_fail "cannot install cargo-fuzz (cargo install cargo-fuzz)"
fi

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

start=$(date +%s)
echo "fuzz: building ${#targets[@]} targets (${FUZZ_BUILD:-release})"
cargo +nightly fuzz build "${build[@]}"
built=$(date +%s)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    mkdir -p "$corpus"
    if [[ -d "fuzz/corpus/$t" ]]; then
        cp -R "fuzz/corpus/$t/." "$corpus/"
    fi
    log="$work/$t.log"
    echo "fuzz: $t for ${seconds}s"
    rc=0
    cargo +nightly fuzz run "${build[@]}" "$t" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -aoE '^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 |
        sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+)/cov \1, ft \2/')
    if [[ $rc -ne 0 ]]; then
        failed+=("$t")
        echo "fuzz: $t FAILED (exit $rc); end of its log:"
        tail -n 60 "$log"
        summary+=("$(printf '%-14s FAILED  executions %s (%s/s), %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-no coverage line}")")
    else
        summary+=("$(printf '%-14s ok      executions %s (%s/s), %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-no coverage line}")")
    fi
done
end=$(date +%s)

echo
echo "fuzz: ${FUZZ_BUILD:-release} build $((built - start))s, runs $((end - built))s (${seconds}s per target)"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: crash or error in: ${failed[*]} (reproducers in fuzz/artifacts/<target>/;" \
        "replay with: cargo +nightly fuzz run <target> <file>)" >&2
    exit 1
fi
