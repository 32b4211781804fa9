#!/usr/bin/env python3
"""Write the schema and resource-type files that make scim2-server accept
the sisync exam extension on Users.

scim2-server's --schema and --resource-type options REPLACE its built-in
defaults, so the files must hold the package's own RFC 7643 defaults (User,
Group, EnterpriseUser; the User and Group resource types) plus our extension.
They are derived from the installed package at run time, so they always match
the scim2-server version in use.

Usage: python gen-config.py OUTDIR      (run with the scim2-server venv python)
Writes OUTDIR/schemas.json and OUTDIR/resource-types.json.
"""

import importlib.resources
import json
import pathlib
import sys

from scim2_models import ResourceType
from scim2_models import Schema

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
HERE = pathlib.Path(__file__).resolve().parent
EXTENSION_FILE = HERE.parent / "exam-extension.json"


def package_default(name: str) -> list:
    path = importlib.resources.files("scim2_server") / "resources" / name
    with path.open() as f:
        return json.load(f)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: gen-config.py OUTDIR")
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    extension = json.loads(EXTENSION_FILE.read_text())
    urn = extension["id"]

    schemas = [s for s in package_default("default-schemas.json") if s.get("id") != urn]
    schemas.append(extension)

    resource_types = package_default("default-resource-types.json")
    users = [rt for rt in resource_types if rt.get("schema") == CORE_USER]
    if len(users) != 1:
        sys.exit(f"gen-config.py: expected one User resource type, found {len(users)}")
    extensions = [e for e in users[0].get("schemaExtensions", []) if e.get("schema") != urn]
    extensions.append({"schema": urn, "required": False})
    users[0]["schemaExtensions"] = extensions

    # Fail here, with a clear message, rather than in the server.
    for s in schemas:
        Schema.model_validate(s)
    for rt in resource_types:
        ResourceType.model_validate(rt)

    (out / "schemas.json").write_text(json.dumps(schemas, indent=2) + "\n")
    (out / "resource-types.json").write_text(json.dumps(resource_types, indent=2) + "\n")


if __name__ == "__main__":
    main()
