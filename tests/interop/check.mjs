// Asks a running orgauthz server for decisions from Node.js, as a client written
// outside this project would: @grpc/grpc-js plus @grpc/proto-loader reading proto/
// at run time (no generated JavaScript).
//
// Usage: node check.mjs HOST:PORT < calls.json
//   calls.json: [{"method": "Check" | "BatchCheck" | "ListScopes", "request": {...}}, ...]
//   with field names as written in the .proto files. A call may name another "service" by
//   its full name (default orgauthz.v1.AuthorizationService): a management service of
//   management.proto, or envoy.service.auth.v3.Authorization when ENVOY_DESCRIPTOR_SET
//   names a file holding Envoy's descriptors (a serialized FileDescriptorSet, taken from the
//   published xds-protos package); and "metadata" ({name: value}) sent with that call.
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
const AUTHORIZATION = "orgauthz.v1.AuthorizationService";
const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function loadServices() {
  const definition = protoLoader.loadSync(["orgauthz/v1/authorization.proto", "orgauthz/v1/management.proto"], {
    includeDirs: [PROTO_ROOT],
    ...OPTIONS,
  });
  const services = { ...grpc.loadPackageDefinition(definition).orgauthz.v1 };
  const found = Object.fromEntries(Object.entries(services).map(([name, svc]) => [`orgauthz.v1.${name}`, svc]));
  if (process.env.ENVOY_DESCRIPTOR_SET) {
    const envoy = protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(process.env.ENVOY_DESCRIPTOR_SET), OPTIONS);
    found["envoy.service.auth.v3.Authorization"] = grpc.loadPackageDefinition(envoy).envoy.service.auth.v3.Authorization;
  }
  return found;
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
  const services = loadServices();
  const clients = {};
  const results = [];
  for (const { service = AUTHORIZATION, method, request, metadata: extra = {} } of calls) {
    const Service = services[service];
    if (!Service || !(service === AUTHORIZATION ? METHODS.has(method) : method in Service.service)) {
      console.error(`unknown method ${service}/${method}`);
      process.exit(2);
    }
    clients[service] ??= new Service(address, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    if (process.env.ORGAUTHZ_AUTH_TOKEN) {
      metadata.set("authorization", `Bearer ${process.env.ORGAUTHZ_AUTH_TOKEN}`);
    }
    for (const [name, value] of Object.entries(extra)) {
      metadata.set(name, value);
    }
    results.push(await call(clients[service], method, request, metadata));
  }
  for (const client of Object.values(clients)) {
    client.close();
  }
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
