#!/usr/bin/env bash
# Reproducible side-by-side comparison (issue 17): sisync next to its
# floors on the same synthetic OneRoster export, run alternately, medians
# of 3, printed as ratios (sisync / floor; < 1 is faster than the floor).
#
#   bench/compare.sh [STUDENTS...]      default: 10000 50000
#
# Floors: a bare `csv` crate read of the export (benches/floor_csv.rs) and
# a plain Python script that reads the export and writes the same
# csv-drop files (bench/reference.py). sisync runs as the release binary:
# a first sync into csv-drop (state and audit written, fresh state file)
# and a no-change rerun. Data comes from benches/roster.rs
# (SISYNC_BENCH_EXPORT / SISYNC_BENCH_STUDENTS).
#
# SISYNC_BIN=/path/to/sisync measures that binary instead of the fresh
# build (SISYNC_NO_BUILD=1 skips the build).
# SISYNC_BEFORE=/path/to/older/sisync adds the same rows for an older
# build (run alternately with the others), for before/after tables.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 50000)
work=$(mktemp -d "${TMPDIR:-/tmp}/sisync-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -z "${SISYNC_NO_BUILD:-}" ]; then
  echo "building (release)..." >&2
  cargo build --release --quiet --bin sisync
  cargo bench --no-run --quiet --bench roster --bench floor_csv 2>/dev/null
fi
bench_bin() { # newest built bench executable of that name
  ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -1
}
ROSTER=$(bench_bin roster)
FLOOR=$(bench_bin floor_csv)
SISYNC=${SISYNC_BIN:-target/release/sisync}
PY=${PYTHON:-python3}

# seconds and peak RSS (MB) of one command
measure() {
  local t="$work/time.$$"
  /usr/bin/time -o "$t" -f '%e %M' "$@" >/dev/null 2>"$work/last.err" ||
    { echo "failed: $* (see below)" >&2; cat "$work/last.err" >&2; }
  awk '{printf "%s %.0f\n", $1, $2/1024}' "$t"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-9s %-26s %8s %8s %8s\n' students workload sisync floor ratio
for n in "${sizes[@]}"; do
  d="$work/$n"
  mkdir -p "$d"
  SISYNC_BENCH_STUDENTS=$n SISYNC_BENCH_EXPORT="$d/export" "$ROSTER" >/dev/null
  cat >"$d/sisync.toml" <<TOML
[institution]
name = "Bench"
brin = "10AA"
[state]
path = "state.db"
[source]
kind = "oneroster-csv"
path = "$d/export"
[platform]
kind = "csv-drop"
path = "drop"
TOML
  : >"$d/first" ; : >"$d/rerun" ; : >"$d/py" ; : >"$d/csv"
  : >"$d/first_rss" ; : >"$d/py_rss" ; : >"$d/bfirst" ; : >"$d/brerun" ; : >"$d/bfirst_rss"
  for i in 1 2 3; do
    rm -rf "$d/state.db"* "$d/drop" "$d/py-out"
    read -r s m < <(measure "$PY" bench/reference.py "$d/export" "$d/py-out")
    echo "$s" >>"$d/py"; echo "$m" >>"$d/py_rss"
    read -r s m < <(measure "$SISYNC" --config "$d/sisync.toml" sync roster)
    echo "$s" >>"$d/first"; echo "$m" >>"$d/first_rss"
    read -r s _ < <(measure "$SISYNC" --config "$d/sisync.toml" sync roster)
    echo "$s" >>"$d/rerun"
    read -r s _ < <(SISYNC_FLOOR_DIR="$d/export" measure "$FLOOR")
    echo "$s" >>"$d/csv"
    if [ -n "${SISYNC_BEFORE:-}" ]; then
      rm -rf "$d/state.db"* "$d/drop"
      read -r s m < <(measure "$SISYNC_BEFORE" --config "$d/sisync.toml" sync roster)
      echo "$s" >>"$d/bfirst"; echo "$m" >>"$d/bfirst_rss"
      read -r s _ < <(measure "$SISYNC_BEFORE" --config "$d/sisync.toml" sync roster)
      echo "$s" >>"$d/brerun"
    fi
  done
  first=$(median <"$d/first"); rerun=$(median <"$d/rerun")
  py=$(median <"$d/py"); bare=$(median <"$d/csv")
  frss=$(median <"$d/first_rss"); prss=$(median <"$d/py_rss")
  row() { printf '%-9s %-26s %8s %8s %8.2f\n' "$n" "$1" "$2" "$3" "$(echo "$2 $3" | awk '{print ($2 > 0 ? $1/$2 : 0)}')"; }
  row "first sync vs python (s)" "$first" "$py"
  row "first sync RSS vs python" "$frss" "$prss"
  row "rerun vs bare csv (s)" "$rerun" "$bare"
  if [ -n "${SISYNC_BEFORE:-}" ]; then
    row "BEFORE first vs python" "$(median <"$d/bfirst")" "$py"
    row "BEFORE first RSS vs py" "$(median <"$d/bfirst_rss")" "$prss"
    row "BEFORE rerun vs bare csv" "$(median <"$d/brerun")" "$bare"
  fi
done
