#!/usr/bin/env bash
# Start scim2-server (PyPI) as the SCIM peer of the sisync interop test.
#
# Usage: .ci/scim2-server.sh VENV_DIR
#   VENV_DIR is a virtualenv where `pip install scim2-server` was run.
#
# Starts the server in the background on a free loopback port, with a random
# bearer token and the sisync exam extension on Users, waits until it answers,
# then prints exactly three lines for the caller to `eval`:
#   SISYNC_SCIM_URL=http://127.0.0.1:PORT/v2
#   SISYNC_SCIM_TOKEN=...
#   SISYNC_SCIM_PID=...
# Stop it with: kill "$SISYNC_SCIM_PID"
# Server log and generated config go to a fresh directory under $TMPDIR
# (the log path is printed on stderr).
set -euo pipefail

die() { echo "scim2-server.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: .ci/scim2-server.sh VENV_DIR"
venv=${1%/}
py=$venv/bin/python
server=$venv/bin/scim2-server
[ -x "$py" ] || die "no python at $py (is $venv a virtualenv?)"
[ -x "$server" ] || die "no scim2-server in $venv (run: $venv/bin/pip install scim2-server)"
command -v curl >/dev/null || die "curl is required"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
testpeer=$here/../deploy/scim/testpeer
ext_urn=urn:sisync:schemas:extension:exam:1.0:User

workdir=$(mktemp -d "${TMPDIR:-/tmp}/scim2-server.XXXXXX")
log=$workdir/server.log

# schemas.json and resource-types.json: the package's defaults plus our extension.
"$py" "$testpeer/gen-config.py" "$workdir" 2>"$log" \
  || die "could not generate the server config: $(tail -n 1 "$log")"

port=$("$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
# Hex: safe to eval, and never starts with "-" (argparse would take it for an option).
token=$("$py" -c 'import secrets; print(secrets.token_hex(32))')
base=http://127.0.0.1:$port/v2

# Redirect every stream, so that $(...) in the caller does not wait for the server.
"$server" --hostname=127.0.0.1 --port="$port" --bearer-token="$token" \
  --schema="$workdir/schemas.json" --resource-type="$workdir/resource-types.json" \
  </dev/null >"$log" 2>&1 &
pid=$!

fail() {
  kill "$pid" 2>/dev/null || true
  {
    echo "scim2-server.sh: $* (log: $log)"
    [ -s "$log" ] && tail -n 20 "$log" | sed 's/^/  | /'
  } >&2
  exit 1
}

ready=
for _ in $(seq 1 80); do   # 80 x 0.25 s = 20 s
  kill -0 "$pid" 2>/dev/null || fail "scim2-server exited during start-up"
  if curl -fsS -o /dev/null --max-time 2 -H "Authorization: Bearer $token" \
       "$base/ServiceProviderConfig" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.25
done
[ -n "$ready" ] || fail "scim2-server did not answer on $base within 20 s"

# /ServiceProviderConfig needs no authentication, so also check that the token
# is accepted and that the extension schema is served.
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
  -H "Authorization: Bearer $token" "$base/Schemas/$ext_urn" 2>/dev/null) || code=000
[ "$code" = 200 ] || fail "scim2-server started, but GET /Schemas/$ext_urn answered $code"

echo "scim2-server.sh: serving $base (pid $pid, log $log)" >&2
echo "SISYNC_SCIM_URL=$base"
echo "SISYNC_SCIM_TOKEN=$token"
echo "SISYNC_SCIM_PID=$pid"
