# Sourced by every fake: appends "<tool>\x1f<arg>\x1f<arg>…" to $FAKE_STATE/calls.log.
record() {
  local line
  line=$(basename "$0")
  for a in "$@"; do line+=$'\x1f'"$a"; done
  printf '%s\n' "$line" >> "$FAKE_STATE/calls.log"
}
record "$@"
