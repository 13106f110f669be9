# Sourced by ci/test.sh and ci/aarch64.sh: named steps that each run even when an earlier one
# failed, and a summary of their times that fails the script if any step did.
failed=()
times=()
# step NAME CMD...: run one check, record its time and whether it failed.
step() {
  local name="$1" start=$SECONDS
  shift
  echo "== $name"
  if "$@"; then
    times+=("$(printf '%5d s  %s' $((SECONDS - start)) "$name")")
  else
    times+=("$(printf '%5d s  %s  FAILED' $((SECONDS - start)) "$name")")
    failed+=("$name")
  fi
}

# steps_summary TITLE: each step's time, then exit 1 if any step failed.
steps_summary() {
  echo "== $1"
  printf '%s\n' "${times[@]}"
  if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
  fi
}
