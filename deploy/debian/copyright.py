#!/usr/bin/env python3
"""Write the Debian copyright file (DEP-5) of the sisync binary package.

The binary links every crate it depends on statically, so the copyright
file lists each of them with its version, authors and SPDX licence, read
from `cargo metadata` (normal dependencies of the sisync binary on the
build host; dev- and build-dependencies are not in the binary), followed
by one standalone paragraph per licence. Usage: copyright.py > FILE
"""
import json
import platform
import subprocess
import sys

HOST = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
TRIPLE = next(l.split(": ", 1)[1] for l in HOST.splitlines() if l.startswith("host: "))

meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", TRIPLE],
    capture_output=True, text=True, check=True).stdout)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]

# Normal (linked) dependencies only, transitively.
linked, todo = set(), [root]
while todo:
    node = nodes[todo.pop()]
    for dep in node["deps"]:
        if any(k["kind"] is None for k in dep["dep_kinds"]) and dep["pkg"] not in linked:
            linked.add(dep["pkg"])
            todo.append(dep["pkg"])

# Where a licence is in Debian's common-licenses, refer to it (policy 12.5).
COMMON = {
    "Apache-2.0": "Apache-2.0",
    "MPL-2.0": "MPL-2.0",
    "BSL-1.0": None,
    "CC0-1.0": "CC0-1.0",
}
TEXTS = {
    "MIT": """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:
.
The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.
.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.""",
    "ISC": """Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.
.
THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH
REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY
AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT,
INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM
LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR
OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR
PERFORMANCE OF THIS SOFTWARE.""",
    "BSD-3-Clause": """Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
.
1. Redistributions of source code must retain the above copyright notice, this
list of conditions and the following disclaimer.
.
2. Redistributions in binary form must reproduce the above copyright notice,
this list of conditions and the following disclaimer in the documentation
and/or other materials provided with the distribution.
.
3. Neither the name of the copyright holder nor the names of its contributors
may be used to endorse or promote products derived from this software without
specific prior written permission.
.
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND
ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED
WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.""",
}


def dep5_license(spdx):
    """SPDX expression -> DEP-5 License field (OR -> or, AND -> and)."""
    expr = spdx.replace("/", " OR ")
    return " ".join({"OR": "or", "AND": "and", "WITH": "with"}.get(w, w) for w in expr.split())


def names(spdx):
    """The licences an SPDX expression names (an exception after WITH is
    part of its licence's paragraph, not a licence of its own)."""
    words = [w.strip("()") for w in spdx.replace("/", " OR ").split()]
    return {w for i, w in enumerate(words)
            if w not in ("OR", "AND", "WITH") and (i == 0 or words[i - 1] != "WITH")}


me = packages[root]
out = [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: sisync",
    "Upstream-Contact: sisync maintainers <sisync@example.org>",
    "Comment: The sisync binary links the Rust crates below statically; each",
    " paragraph names a crate, its version, authors and licence as published on",
    " crates.io. Generated by deploy/debian/copyright.py from cargo metadata.",
    "",
    "Files: *",
    "Copyright: 2026 sisync contributors",
    f"License: {dep5_license(me['license'])}",
    "",
]
used = set(names(me["license"]))
for pid in sorted(linked, key=lambda p: (packages[p]["name"], packages[p]["version"])):
    p = packages[pid]
    spdx = p.get("license") or "LicenseRef-see-crate"
    used |= names(spdx)
    authors = [a for a in p.get("authors") or [] if a.strip()] or [f"the {p['name']} authors"]
    out.append(f"Files: cargo-registry/{p['name']}-{p['version']}/*")
    out.append("Copyright: " + authors[0])
    out.extend(" " + a for a in authors[1:])
    out.append(f"License: {dep5_license(spdx)}")
    out.append("")

for lic in sorted(used):
    out.append(f"License: {lic}")
    if lic in COMMON and COMMON[lic]:
        out.append(f" On Debian systems the full text is in /usr/share/common-licenses/{COMMON[lic]}.")
    elif lic in TEXTS:
        out.extend(" " + l if l else " ." for l in TEXTS[lic].splitlines())
    else:
        out.append(f" The full text of {lic} is at https://spdx.org/licenses/{lic}.html")
    out.append("")

sys.stdout.write("\n".join(out).rstrip("\n") + "\n")
