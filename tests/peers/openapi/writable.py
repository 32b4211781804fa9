#!/usr/bin/env python3
"""Derive a copy of an OpenAPI document in which the named properties are
writable (their `readOnly: true` dropped), for a spec that marks as
read-only what its own flow documentation sends in writes.

Usage: writable.py SPEC.yaml OUT.yaml PROPERTY...

OKE 1.0.1 (ooapiv5_MBO.yaml) marks `primaryCode` (of offerings and
persons) and an association's `person` read-only, and at the same time
requires `primaryCode` in PUT /offerings/{id}; flows 2.1 and 2.2 send both
(the sitting's code for the invigilator, the candidate inside the
registration). openapi-core applies readOnly strictly, so those writes
could never validate. Only the readOnly flag of the named properties is
lifted; every other rule of the document still applies. 
With --any-of-associations, the association union (a `oneOf` of the
program, course and component association, with `person` and `offering`
beside it) becomes an `anyOf`: its three branches accept the same objects
and carry no discriminator, so as a `oneOf` no association could ever
validate (GET /associations/{id}, PATCH /associations/{id} answers).

Prints how many flags were lifted and exits 1 when none was found.
"""

import sys

import yaml


def main():
    args = sys.argv[1:]
    any_of = "--any-of-associations" in args
    args = [a for a in args if a != "--any-of-associations"]
    src, out, names = args[0], args[1], set(args[2:])
    sys.setrecursionlimit(20000)
    with open(src) as f:
        spec = yaml.safe_load(f)
    seen = set()
    lifted = 0

    unions = 0

    def walk(node):
        nonlocal lifted, unions
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, dict):
            props = node.get("properties")
            if (
                any_of
                and "oneOf" in node
                and isinstance(props, dict)
                and {"person", "offering"} <= set(props)
            ):
                node["anyOf"] = node.pop("oneOf")
                unions += 1
            props = node.get("properties")
            if isinstance(props, dict):
                for name, schema in props.items():
                    if name in names and isinstance(schema, dict) and schema.get("readOnly"):
                        del schema["readOnly"]
                        lifted += 1
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    if not lifted:
        print("no readOnly flag found on " + ", ".join(sorted(names)))
        sys.exit(1)
    with open(out, "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    print(f"{lifted} readOnly flags lifted, {unions} association unions made anyOf")


if __name__ == "__main__":
    main()
