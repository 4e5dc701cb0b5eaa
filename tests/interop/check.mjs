// Asks a running orgauthz server for decisions from Node.js, as a client written
// outside this project would: @grpc/grpc-js plus @grpc/proto-loader reading proto/
// at run time (no generated JavaScript).
//
// Usage: node check.mjs HOST:PORT < calls.json
//   calls.json: [{"method": "Check" | "BatchCheck" | "ListScopes", "request": {...}}, ...]
//   with field names as written in the .proto files.
// Prints one JSON array on stdout, one entry per call, in order:
//   {"ok": true, "response": {...}}  or  {"ok": false, "code": <int>, "details": "..."}
// uint64 fields are printed as decimal strings (they may exceed 2^53).

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "proto");
const METHODS = new Set(["Check", "BatchCheck", "ListScopes", "ListAccessibleWorkspaces"]);

function loadService() {
  const definition = protoLoader.loadSync("orgauthz/v1/authorization.proto", {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  return pkg.orgauthz.v1.AuthorizationService;
}

function call(client, method, request, metadata) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 10_000);
    client[method](request, metadata, { deadline }, (err, response) => {
      if (err) {
        resolve({ ok: false, code: err.code, details: err.details });
      } else {
        resolve({ ok: true, response });
      }
    });
  });
}

async function main() {
  const [address] = process.argv.slice(2);
  if (!address) {
    console.error("usage: node check.mjs HOST:PORT < calls.json");
    process.exit(2);
  }
  const calls = JSON.parse(readFileSync(0, "utf8"));
  const Service = loadService();
  const client = new Service(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (process.env.ORGAUTHZ_AUTH_TOKEN) {
    metadata.set("authorization", `Bearer ${process.env.ORGAUTHZ_AUTH_TOKEN}`);
  }
  const results = [];
  for (const { method, request } of calls) {
    if (!METHODS.has(method)) {
      console.error(`unknown method ${method}`);
      process.exit(2);
    }
    results.push(await call(client, method, request, metadata));
  }
  client.close();
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
