#!/usr/bin/env bash
# Reproducible side-by-side comparison (issue 17): sisync next to its
# floors, run alternately, medians of 3, printed as ratios (sisync /
# floor; < 1 is faster than the floor).
#
#   bench/compare.sh [--large] [STUDENTS...]   default sizes: 10000 50000
#
# --large adds 200000 students. With two sizes or more, the growth
# exponent from the smallest to the largest is printed (ln of the time
# ratio over ln of the size ratio; 1.00 is linear).
#
# Roster (per size; data from benches/roster.rs, SISYNC_BENCH_EXPORT /
# SISYNC_BENCH_STUDENTS): a first sync into csv-drop (fresh state file,
# state and audit written) against a plain Python script that reads the
# export and writes the same files (bench/reference.py), and a no-change
# rerun against a bare `csv` crate read of the export
# (benches/floor_csv.rs). Each roster row is given by wall time and by CPU
# time (user + system): on a shared machine the CPU ratio is the one to
# trust.
#
# Wire (once; SISYNC_NO_WIRE=1 skips it), against the fast in-repo SCIM
# and gradebook server of benches/floor_http.rs on loopback:
# - SCIM provisioning: the first `sync roster` of the 50,000-student
#   export (52,000 users, 3,000 groups) into that server, concurrency 4,
#   against a bare load loop replaying the very requests sisync sent, with
#   the same concurrency, without and with an `externalId eq` GET before
#   each POST;
# - QTI ingest: 100,000 results in 20 QTI files (benches/results.rs,
#   SISYNC_BENCH_RESULTS_EXPORT), sisync's reader against a bare quick-xml
#   event loop over the same files (benches/floor_qti.rs); the whole
#   ingest of `sync results` (parse, match, outbox commit) is shown too;
# - results push: the push of `sync results` to the gradebook, against
#   the replay of its PUTs with the same concurrency (8).
#
# SISYNC_BIN=/path/to/sisync measures that binary instead of the fresh
# build (SISYNC_NO_BUILD=1 skips the build).
# SISYNC_BEFORE=/path/to/older/sisync adds the same rows for an older
# build (run alternately with the others), for before/after tables.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=()
for a in "$@"; do
  case $a in
  --large) sizes+=(200000) ;;
  *) sizes+=("$a") ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] && [ "${sizes[*]}" != 200000 ] || sizes=(10000 50000 "${sizes[@]}")
work=$(mktemp -d "${TMPDIR:-/tmp}/sisync-compare.XXXXXX")
server_pid=
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${SISYNC_NO_BUILD:-}" ]; then
  echo "building (release)..." >&2
  cargo build --release --quiet --bin sisync
  cargo bench --no-run --quiet --bench roster --bench floor_csv \
    --bench floor_http --bench floor_qti --bench results 2>/dev/null
fi
bench_bin() { # newest built bench executable of that name
  ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -1
}
ROSTER=$(bench_bin roster)
FLOOR=$(bench_bin floor_csv)
HTTP=$(bench_bin floor_http)
QTI=$(bench_bin floor_qti)
RESULTS=$(bench_bin results)
SISYNC=${SISYNC_BIN:-target/release/sisync}
PY=${PYTHON:-python3}
echo "load: $(uptime)" >&2

# seconds, peak RSS (MB) and CPU seconds (user + system) of one command
measure() {
  local t="$work/time.$$"
  /usr/bin/time -o "$t" -f '%e %M %U %S' "$@" >"$work/last.out" 2>"$work/last.err" ||
    { echo "failed: $* (see below)" >&2; cat "$work/last.err" >&2; exit 1; }
  awk '{printf "%s %.0f %.2f\n", $1, $2/1024, $3 + $4}' "$t"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", ($2 > 0 ? $1/$2 : 0)}'; }
row() { printf '%-9s %-30s %8s %8s %8s\n' "$1" "$2" "$3" "$4" "$(ratio "$3" "$4")"; }

export_for() { # the roster export of $1 students, made once
  local d="$work/$1"
  if [ ! -d "$d/export" ]; then
    mkdir -p "$d"
    SISYNC_BENCH_STUDENTS=$1 SISYNC_BENCH_EXPORT="$d/export" "$ROSTER" >/dev/null
  fi
  echo "$d/export"
}

printf '%-9s %-30s %8s %8s %8s\n' students workload sisync floor ratio
declare -A FIRST RERUN FIRST_CPU RERUN_CPU
for n in "${sizes[@]}"; do
  d="$work/$n"
  export=$(export_for "$n")
  cat >"$d/sisync.toml" <<TOML
[institution]
name = "Bench"
brin = "10AA"
[state]
path = "state.db"
[source]
kind = "oneroster-csv"
path = "$export"
[platform]
kind = "csv-drop"
path = "drop"
TOML
  for f in first rerun py csv first_rss py_rss bfirst brerun bfirst_rss \
    first_cpu rerun_cpu py_cpu csv_cpu bfirst_cpu brerun_cpu; do : >"$d/$f"; done
  for i in 1 2 3; do
    rm -rf "$d/state.db"* "$d/drop" "$d/py-out"
    read -r s m c < <(measure "$PY" bench/reference.py "$export" "$d/py-out")
    echo "$s" >>"$d/py"; echo "$m" >>"$d/py_rss"; echo "$c" >>"$d/py_cpu"
    read -r s m c < <(measure "$SISYNC" --config "$d/sisync.toml" sync roster)
    echo "$s" >>"$d/first"; echo "$m" >>"$d/first_rss"; echo "$c" >>"$d/first_cpu"
    read -r s _ c < <(measure "$SISYNC" --config "$d/sisync.toml" sync roster)
    echo "$s" >>"$d/rerun"; echo "$c" >>"$d/rerun_cpu"
    read -r s _ c < <(SISYNC_FLOOR_DIR="$export" measure "$FLOOR")
    echo "$s" >>"$d/csv"; echo "$c" >>"$d/csv_cpu"
    if [ -n "${SISYNC_BEFORE:-}" ]; then
      rm -rf "$d/state.db"* "$d/drop"
      read -r s m c < <(measure "$SISYNC_BEFORE" --config "$d/sisync.toml" sync roster)
      echo "$s" >>"$d/bfirst"; echo "$m" >>"$d/bfirst_rss"; echo "$c" >>"$d/bfirst_cpu"
      read -r s _ c < <(measure "$SISYNC_BEFORE" --config "$d/sisync.toml" sync roster)
      echo "$s" >>"$d/brerun"; echo "$c" >>"$d/brerun_cpu"
    fi
  done
  rm -rf "$d/state.db"* "$d/drop" "$d/py-out"
  FIRST[$n]=$(median <"$d/first"); RERUN[$n]=$(median <"$d/rerun")
  FIRST_CPU[$n]=$(median <"$d/first_cpu"); RERUN_CPU[$n]=$(median <"$d/rerun_cpu")
  py=$(median <"$d/py"); bare=$(median <"$d/csv")
  py_cpu=$(median <"$d/py_cpu"); bare_cpu=$(median <"$d/csv_cpu")
  row "$n" "first sync vs python (s)" "${FIRST[$n]}" "$py"
  row "$n" "first sync vs python, CPU (s)" "${FIRST_CPU[$n]}" "$py_cpu"
  row "$n" "first sync RSS vs python (MB)" "$(median <"$d/first_rss")" "$(median <"$d/py_rss")"
  row "$n" "rerun vs bare csv (s)" "${RERUN[$n]}" "$bare"
  row "$n" "rerun vs bare csv, CPU (s)" "${RERUN_CPU[$n]}" "$bare_cpu"
  if [ -n "${SISYNC_BEFORE:-}" ]; then
    row "$n" "BEFORE first vs python" "$(median <"$d/bfirst")" "$py"
    row "$n" "BEFORE first vs python, CPU" "$(median <"$d/bfirst_cpu")" "$py_cpu"
    row "$n" "BEFORE first RSS vs python" "$(median <"$d/bfirst_rss")" "$(median <"$d/py_rss")"
    row "$n" "BEFORE rerun vs bare csv" "$(median <"$d/brerun")" "$bare"
    row "$n" "BEFORE rerun vs bare csv, CPU" "$(median <"$d/brerun_cpu")" "$bare_cpu"
  fi
done

# growth from the smallest to the largest size (1.00 = linear)
if [ ${#sizes[@]} -ge 2 ]; then
  lo=$(printf '%s\n' "${sizes[@]}" | sort -n | head -1)
  hi=$(printf '%s\n' "${sizes[@]}" | sort -n | tail -1)
  exponent() { echo "$1 $2 $lo $hi" | awk '{ if ($1 > 0 && $2 > 0) printf "%.2f", log($2/$1)/log($4/$3); else print "-" }'; }
  printf '%-9s %-30s %8s %8s %8s\n' "$lo-$hi" "growth exponent, first sync" "${FIRST[$hi]}" "${FIRST[$lo]}" "$(exponent "${FIRST[$lo]}" "${FIRST[$hi]}")"
  printf '%-9s %-30s %8s %8s %8s\n' "$lo-$hi" "growth exponent, rerun" "${RERUN[$hi]}" "${RERUN[$lo]}" "$(exponent "${RERUN[$lo]}" "${RERUN[$hi]}")"
  printf '%-9s %-30s %8s %8s %8s\n' "$lo-$hi" "growth exponent, first, CPU" "${FIRST_CPU[$hi]}" "${FIRST_CPU[$lo]}" "$(exponent "${FIRST_CPU[$lo]}" "${FIRST_CPU[$hi]}")"
  printf '%-9s %-30s %8s %8s %8s\n' "$lo-$hi" "growth exponent, rerun, CPU" "${RERUN_CPU[$hi]}" "${RERUN_CPU[$lo]}" "$(exponent "${RERUN_CPU[$lo]}" "${RERUN_CPU[$hi]}")"
fi

[ -z "${SISYNC_NO_WIRE:-}" ] || exit 0

# --- the wire: a fast SCIM + gradebook server, its replays, QTI ---
"$HTTP" serve >"$work/server.url" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/server.url" ] && break; sleep 0.1; done
base=$(head -1 "$work/server.url")
[ -n "$base" ] || { echo "the bench server did not start:" >&2; cat "$work/server.err" >&2; exit 1; }
bench_post() { curl -fsS -X POST "$base/_bench/$1" >/dev/null; }
seconds() { # a number from the last command's JSON report
  "$PY" -c "import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]], 3))" "$work/last.out" "$1"
}
echo bench >"$work/token"

# SCIM provisioning
w="$work/scim"; mkdir -p "$w"; cp "$work/token" "$w/token"
export=$(export_for 50000)
cat >"$w/sisync.toml" <<TOML
[institution]
name = "Bench"
brin = "10AA"
[state]
path = "state.db"
[source]
kind = "oneroster-csv"
path = "$export"
[platform]
kind = "scim"
base_url = "$base"
token_file = "token"
concurrency = 4
TOML
for f in sisync bare lookup before sisync_cpu bare_cpu lookup_cpu before_cpu; do : >"$w/$f"; done
for i in 1 2 3; do
  bench_post reset; rm -rf "$w/state.db"*
  read -r s _ c < <(measure "$SISYNC" --config "$w/sisync.toml" sync roster)
  echo "$s" >>"$w/sisync"; echo "$c" >>"$w/sisync_cpu"
  [ -s "$w/capture" ] || bench_post "dump?path=$w/capture"
  bench_post reset
  read -r s _ c < <(measure "$HTTP" replay "$base" "$w/capture" 4)
  echo "$s" >>"$w/bare"; echo "$c" >>"$w/bare_cpu"
  bench_post reset
  read -r s _ c < <(measure "$HTTP" replay "$base" "$w/capture" 4 lookup)
  echo "$s" >>"$w/lookup"; echo "$c" >>"$w/lookup_cpu"
  if [ -n "${SISYNC_BEFORE:-}" ]; then
    bench_post reset; rm -rf "$w/state.db"*
    read -r s _ c < <(measure "$SISYNC_BEFORE" --config "$w/sisync.toml" sync roster)
    echo "$s" >>"$w/before"; echo "$c" >>"$w/before_cpu"
  fi
done
requests=$(wc -l <"$w/capture")
row 50000 "SCIM provisioning vs bare (s)" "$(median <"$w/sisync")" "$(median <"$w/bare")"
row 50000 "SCIM vs bare + GET each (s)" "$(median <"$w/sisync")" "$(median <"$w/lookup")"
row 50000 "SCIM vs bare, CPU (s)" "$(median <"$w/sisync_cpu")" "$(median <"$w/bare_cpu")"
if [ -n "${SISYNC_BEFORE:-}" ]; then
  row 50000 "BEFORE SCIM vs bare" "$(median <"$w/before")" "$(median <"$w/bare")"
  row 50000 "BEFORE SCIM vs bare + GET" "$(median <"$w/before")" "$(median <"$w/lookup")"
  row 50000 "BEFORE SCIM vs bare, CPU" "$(median <"$w/before_cpu")" "$(median <"$w/bare_cpu")"
fi
echo "          ($requests writes replayed)"
rm -rf "$w/state.db"*

# QTI ingest and results push
r="$work/results"; mkdir -p "$r"; cp "$work/token" "$r/token"
SISYNC_BENCH_RESULTS_EXPORT="$r/data" "$RESULTS" >/dev/null
cat >"$r/sisync.toml" <<TOML
[institution]
name = "Bench"
brin = "99AA"
[state]
path = "state.db"
[source]
kind = "oneroster-csv"
path = "$r/data/roster"
[platform]
kind = "csv-drop"
path = "platform"
[results]
[results.source]
kind = "qti-folder"
path = "inbox"
settle = "0s"
[results.sink]
kind = "oneroster-rest"
base_url = "$base"
[results.sink.auth]
kind = "bearer"
token_file = "token"
TOML
measure "$SISYNC" --config "$r/sisync.toml" sync roster >/dev/null
mkdir -p "$r/pristine"; cp "$r"/state.db* "$r/pristine/"
for f in parse bare ingest push replay bparse bpush; do : >"$r/$f"; done
results_run() { # $1: binary; appends ingest and push seconds to $2 $3
  rm -rf "$r"/state.db* "$r/inbox"; cp "$r"/pristine/* "$r/"; cp -r "$r/data/inbox" "$r/inbox"
  bench_post reset
  measure "$1" --config "$r/sisync.toml" --json sync results >/dev/null
  seconds read_seconds >>"$2"; seconds push_seconds >>"$3"
}
for i in 1 2 3; do
  read -r s _ < <(measure "$QTI" sisync "$r/data/inbox"); cat "$work/last.out" >>"$r/parse"
  read -r s _ < <(measure "$QTI" bare "$r/data/inbox"); cat "$work/last.out" >>"$r/bare"
  results_run "$SISYNC" "$r/ingest" "$r/push"
  [ -s "$r/capture" ] || bench_post "dump?path=$r/capture"
  bench_post reset
  measure "$HTTP" replay "$base" "$r/capture" 8 >/dev/null; cat "$work/last.out" >>"$r/replay"
  [ -z "${SISYNC_BEFORE:-}" ] || results_run "$SISYNC_BEFORE" "$r/bparse" "$r/bpush"
done
row 100000 "QTI reader vs bare loop (s)" "$(median <"$r/parse")" "$(median <"$r/bare")"
row 100000 "whole ingest vs bare loop (s)" "$(median <"$r/ingest")" "$(median <"$r/bare")"
row 100000 "results push vs replay (s)" "$(median <"$r/push")" "$(median <"$r/replay")"
if [ -n "${SISYNC_BEFORE:-}" ]; then
  row 100000 "BEFORE whole ingest vs bare" "$(median <"$r/bparse")" "$(median <"$r/bare")"
  row 100000 "BEFORE push vs replay" "$(median <"$r/bpush")" "$(median <"$r/replay")"
fi
echo "          ($(wc -l <"$r/capture") PUTs replayed); load: $(uptime)"
