#!/usr/bin/env bash
# Build the Debian package: target/debian/sisync_<version>_<arch>.deb
# Needs cargo-deb (`cargo install --locked cargo-deb`) and python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked
rm -rf target/assets && mkdir -p target/assets/man target/assets/completions
target/release/sisync generate man target/assets/man
target/release/sisync generate completions bash > target/assets/completions/sisync.bash
target/release/sisync generate completions zsh > target/assets/completions/_sisync
target/release/sisync generate completions fish > target/assets/completions/sisync.fish
# the licences of every crate linked into the binary
python3 deploy/debian/copyright.py > target/assets/copyright
cargo deb --no-build --locked
