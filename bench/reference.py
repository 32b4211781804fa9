#!/usr/bin/env python3
"""Plain Python reference for bench/compare.sh: reads a OneRoster 1.2 CSV
export and writes the files a csv-drop delivery holds (users.csv,
groups.csv, memberships.csv) into a new folder. No state, no audit, no
privacy policy: the floor a stateless script reaches.

usage: reference.py EXPORT_DIR OUT_DIR
"""
import csv
import os
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    users = {}
    with open(os.path.join(src, "users.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if r.get("status") == "tobedeleted":
                continue
            users[r["sourcedId"]] = r
    roles = {}
    with open(os.path.join(src, "roles.csv"), newline="") as f:
        for r in csv.DictReader(f):
            roles.setdefault(r["userSourcedId"], (r["role"], r["orgSourcedId"]))
    classes = {}
    with open(os.path.join(src, "classes.csv"), newline="") as f:
        for r in csv.DictReader(f):
            classes[r["sourcedId"]] = r
    members = {}
    with open(os.path.join(src, "enrollments.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if r["classSourcedId"] in classes and r["userSourcedId"] in users:
                members.setdefault(r["classSourcedId"], set()).add(r["userSourcedId"])
    with open(os.path.join(out, "users.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["externalId", "userName", "active", "givenName", "middleName",
                    "familyName", "role", "org", "extraTimePercent", "fontScale",
                    "screenReader"])
        for sid, u in sorted(users.items()):
            role, org = roles.get(sid, ("", u.get("primaryOrgSourcedId", "")))
            w.writerow([sid, sid, "true", u["givenName"], u["middleName"], u["familyName"],
                        role, org, u.get("metadata.extraTimePercent", ""),
                        u.get("metadata.fontScale", ""), u.get("metadata.screenReader", "")])
    with open(os.path.join(out, "groups.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["externalId", "displayName", "active", "org"])
        for sid, c in sorted(classes.items()):
            w.writerow([sid, c["title"], "true", c["schoolSourcedId"]])
    with open(os.path.join(out, "memberships.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["groupExternalId", "userExternalId"])
        for g in sorted(members):
            for m in sorted(members[g]):
                w.writerow([g, m])


if __name__ == "__main__":
    main()
