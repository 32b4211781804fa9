#!/usr/bin/env bash
# Build the Debian package and check it with lintian (Debian's package
# checker): exits non-zero on any lintian error or warning. Needs cargo-deb
# and lintian (`apt-get install lintian`). Not part of .ci/run: a release
# build of the package takes longer than CI's time budget allows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash deploy/build-deb.sh
deb=$(ls -t target/debian/sisync_*.deb | head -1)
echo "== lintian $deb"
lintian --fail-on error,warning --info --display-info "$deb"
echo "lintian: clean"
