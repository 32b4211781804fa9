// SCIMMY (npm `scimmy` + `scimmy-routers`) as a real SCIM peer for
// sisync's interop test (tests/interop_scimmy.rs): Users and Groups in
// memory, bearer-token auth, a free loopback port.
//
// Usage: SCIMMY_TOKEN=... node server.js [--extension SCHEMA.json] [--express5] [--no-patch-no-filter]
//   --extension  declare this schema (e.g. deploy/scim/exam-extension-ietf.json)
//                as an extension of User; without it, SCIMMY's defaults.
//   --express5   serve with Express 5, under which scimmy-routers 1.3.2
//                ignores startIndex and count (its query casts are lost):
//                every list answers its first 20 resources.
// Prints one line, `SISYNC_SCIM_URL=http://127.0.0.1:PORT/scim/v2`, once it
// listens. Stops on SIGTERM or when stdin closes (the test process died).
import {readFileSync} from "node:fs";
import {randomUUID} from "node:crypto";
import express4 from "express";
import express5 from "express5";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const token = process.env.SCIMMY_TOKEN;
if (!token) {
    console.error("server.js: set SCIMMY_TOKEN to the bearer token to accept");
    process.exit(2);
}
const args = process.argv.slice(2);
const extIndex = args.indexOf("--extension");

if (extIndex >= 0) {
    const schema = JSON.parse(readFileSync(args[extIndex + 1], "utf8"));
    // SCIMMY's Attribute config spells the RFC 7643 characteristics its own way.
    const attrs = schema.attributes.map(a => new SCIMMY.Types.Attribute(a.type, a.name, {
        description: a.description,
        required: !!a.required,
        multiValued: !!a.multiValued,
        caseExact: !!a.caseExact,
        canonicalValues: a.canonicalValues ?? false,
        ...(a.mutability === "writeOnly" ? {mutable: true, direction: "in", returned: false}
            : {mutable: a.mutability !== "readOnly"}),
    }));
    SCIMMY.Resources.User.extend(new SCIMMY.Types.SchemaDefinition(schema.name, schema.id, schema.description, attrs), false);
}

// One in-memory store per resource type: id -> resource as last written.
function store(resourceType) {
    const items = new Map();
    return {
        ingress: (resource, instance) => {
            const data = JSON.parse(JSON.stringify(instance));
            delete data.schemas;
            delete data.meta;
            const now = new Date().toISOString();
            const clash = [...items.values()].find(r => r.id !== resource.id
                && ((resourceType === "User" && r.userName?.toLowerCase() === data.userName?.toLowerCase())
                    || (data.externalId !== undefined && r.externalId === data.externalId)));
            if (clash) throw new SCIMMY.Types.Error(409, "uniqueness", `${resourceType} already exists (id ${clash.id})`);
            if (resource.id) {
                const old = items.get(resource.id);
                if (!old) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
                const next = {...data, id: old.id, meta: {...old.meta, lastModified: now}};
                items.set(old.id, next);
                return next;
            }
            const id = randomUUID();
            const created = {...data, id, meta: {resourceType, created: now, lastModified: now}};
            items.set(id, created);
            return created;
        },
        egress: (resource) => {
            if (resource.id) {
                const found = items.get(resource.id);
                if (!found) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
                return found;
            }
            const all = [...items.values()];
            return resource.filter ? resource.filter.match(all) : all;
        },
        degress: (resource) => {
            if (!items.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        },
    };
}

for (const [Resource, name] of [[SCIMMY.Resources.User, "User"], [SCIMMY.Resources.Group, "Group"]]) {
    const s = store(name);
    SCIMMY.Resources.declare(Resource).ingress(s.ingress).egress(s.egress).degress(s.degress);
}

const app = (args.includes("--express5") ? express5 : express4)();
// method and path of every request on stderr (the test's log), no bodies
app.use((req, res, next) => {
    console.error(`${req.method} ${req.originalUrl}`);
    next();
});
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.invalid/sisync-testpeer",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`) throw new Error("Bearer token required");
        return "sisync";
    },
}));

// scimmy-routers declares PATCH, filter, bulk and sort; --no-patch-no-filter
// declares neither PATCH nor filter, as more modest platforms do.
if (args.includes("--no-patch-no-filter")) SCIMMY.Config.set({patch: false, filter: false});

const server = app.listen(0, "127.0.0.1", () => {
    const {port} = server.address();
    process.stdout.write(`SISYNC_SCIM_URL=http://127.0.0.1:${port}/scim/v2\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
