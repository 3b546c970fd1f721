// tests/e2e/otel/receiver.js OUTFILE
// An OTLP/HTTP JSON trace receiver for tests/e2e/test_90_tracing.py. Each POST /v1/traces body
// is decoded with the OpenTelemetry project's own protobuf definitions (the opentelemetry-proto
// messages generated into @opentelemetry/otlp-transformer) following the OTLP JSON mapping
// (ids as hex, 64-bit integers as strings, enums as numbers), then checked strictly: the
// message must verify, survive a binary encode/decode, and turn back into exactly the JSON that
// was sent, so an unknown field, a wrong type or a malformed id is an error, not ignored.
// Writes one JSON line per request to OUTFILE: {"spans": N, "request": <decoded>} or
// {"error": "..."}; answers 200 or 400. Prints "listening PORT" once ready.
"use strict";

const fs = require("fs");
const http = require("http");
const assert = require("assert");
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root");

const Request = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ID_FIELDS = { traceId: 16, spanId: 8, parentSpanId: 8 };

// OTLP JSON writes trace and span ids as hex; protobuf's JSON form for bytes is base64.
function idsToBase64(spans) {
  for (const s of spans) {
    for (const [k, n] of Object.entries(ID_FIELDS)) {
      if (s[k] === undefined) continue;
      if (typeof s[k] !== "string" || !/^[0-9a-f]*$/.test(s[k]) || s[k].length !== 2 * n)
        throw new Error(`${k} is not ${2 * n} lower-case hex digits: ${JSON.stringify(s[k])}`);
      s[k] = Buffer.from(s[k], "hex").toString("base64");
    }
  }
}

function idsToHex(spans) {
  for (const s of spans)
    for (const k of Object.keys(ID_FIELDS))
      if (s[k] !== undefined) s[k] = Buffer.from(s[k], "base64").toString("hex");
}

function eachSpanList(req, fn) {
  for (const rs of req.resourceSpans || [])
    for (const ss of rs.scopeSpans || []) fn(ss.spans || []);
}

// Empty lists are valid OTLP JSON and decode to nothing: compare without them.
function pruneEmptyLists(v) {
  if (Array.isArray(v)) return v.map(pruneEmptyLists);
  if (v === null || typeof v !== "object") return v;
  const out = {};
  for (const [k, x] of Object.entries(v))
    if (!(Array.isArray(x) && x.length === 0)) out[k] = pruneEmptyLists(x);
  return out;
}

function decode(text) {
  const sent = pruneEmptyLists(JSON.parse(text));
  const asProto = JSON.parse(text);
  eachSpanList(asProto, idsToBase64);
  const msg = Request.fromObject(asProto);
  const problem = Request.verify(msg);
  if (problem) throw new Error("verify: " + problem);
  const back = Request.toObject(Request.decode(Request.encode(msg).finish()), {
    longs: String,
    enums: Number,
    bytes: String,
    defaults: false,
    arrays: false,
  });
  eachSpanList(back, idsToHex);
  assert.deepStrictEqual(back, sent); // nothing unknown, nothing mistyped
  let spans = 0;
  eachSpanList(back, (list) => {
    spans += list.length;
  });
  return { spans, request: back };
}

const out = process.argv[2];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let line;
    let status = 200;
    try {
      if (req.method !== "POST" || req.url !== "/v1/traces")
        throw new Error(`unexpected ${req.method} ${req.url}`);
      if (!/^application\/json/.test(req.headers["content-type"] || ""))
        throw new Error("content-type " + req.headers["content-type"]);
      line = decode(Buffer.concat(chunks).toString("utf8"));
    } catch (e) {
      line = { error: String(e && e.message ? e.message : e) };
      status = 400;
    }
    fs.appendFileSync(out, JSON.stringify(line) + "\n");
    res.writeHead(status, { "content-type": "application/json" });
    res.end("{}");
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
