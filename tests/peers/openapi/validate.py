#!/usr/bin/env python3
"""Validate recorded HTTP exchanges against an OpenAPI 3 document.

Usage: validate.py SPEC.yaml EXCHANGES.jsonl

Each line of EXCHANGES.jsonl is one exchange as a test recorded it:
  {"method": "GET", "path": "/offerings", "query": "pageSize=10",
   "headers": {"content-type": "application/json", ...},
   "body": "<request body as text or null>",
   "status": 200, "response_headers": {...},
   "response_body": "<response body as text or null>",
   "server": "http://127.0.0.1:1234"}       # optional, ignored
Set "skip_response": true on a line to check only its request.

Prints one line per invalid exchange (index, method, path, request or
response, the validator's reason) and exits 1 when any is invalid; exits 0
with "N exchanges valid" otherwise. The spec's own server prefix is not
required: paths are matched against the spec's paths as given.
"""

import json
import sys
import warnings

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict


class Req:
    def __init__(self, ex):
        self.host_url = "http://localhost"
        self.path = ex["path"]
        self.full_url_pattern = "http://localhost" + ex["path"]
        self.method = ex["method"].lower()
        query = ex.get("query") or ""
        pairs = []
        if query:
            from urllib.parse import parse_qsl

            pairs = parse_qsl(query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in (ex.get("headers") or {}).items()}
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(pairs),
            header=Headers(headers),
            cookie=ImmutableMultiDict(),
        )
        body = ex.get("body")
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = headers.get("content-type", "application/json").split(";")[0]


class Resp:
    def __init__(self, ex):
        self.status_code = int(ex["status"])
        headers = {k.lower(): v for k, v in (ex.get("response_headers") or {}).items()}
        body = ex.get("response_body")
        self.data = body.encode() if isinstance(body, str) else (body or b"")
        self.content_type = headers.get("content-type", "application/json").split(";")[0]
        self.headers = Headers(headers)


def main():
    spec_path, ex_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = yaml.safe_load(f)
    # match paths without the spec's server prefix (/v5)
    spec["servers"] = [{"url": "http://localhost"}]
    # The OKE document is one file with YAML anchors; its own structure is
    # not re-validated here (that recurses), requests and responses are.
    sys.setrecursionlimit(20000)
    # oauth2 security is checked by the fakes, not by openapi-core
    warnings.filterwarnings("ignore", message="Unsupported scheme type")
    # JSON Merge Patch bodies (RFC 7396, OOAPI PATCH) are JSON
    api = OpenAPI.from_dict(
        spec,
        config=Config(
            spec_validator_cls=None,
            extra_media_type_deserializers={
                "application/merge-patch+json": json.loads,
                "application/problem+json": json.loads,
            },
        ),
    )
    bad = 0
    n = 0
    with open(ex_path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            n += 1
            ex = json.loads(line)
            req = Req(ex)
            try:
                api.validate_request(req)
            except Exception as e:  # noqa: BLE001 - report every kind
                bad += 1
                print(f"exchange {i}: {ex['method']} {ex['path']}: request invalid: {reason(e)}")
                continue
            if ex.get("skip_response"):
                continue
            try:
                api.validate_response(req, Resp(ex))
            except Exception as e:  # noqa: BLE001
                bad += 1
                print(f"exchange {i}: {ex['method']} {ex['path']}: response {ex['status']} invalid: {reason(e)}")
    if bad:
        sys.exit(1)
    print(f"{n} exchanges valid")


def reason(e):
    parts = [f"{type(e).__name__}: {e}"]
    cause = e.__cause__
    while cause is not None:
        parts.append(str(cause))
        sub = getattr(cause, "schema_errors", None)
        if sub:
            parts.extend(str(s.message) for s in sub[:3])
        cause = cause.__cause__
    return " | ".join(p.replace("\n", " ") for p in parts)[:1500]


if __name__ == "__main__":
    main()
