// tests/e2e/k8s/validate.mjs -- checks Kubernetes and Istio objects offline against the API
// schemas of kubernetes-models and @kubernetes-models/istio (package-lock.json pins them).
//
//   node validate.mjs < objects.json      [{"name": "...", "object": {...}}, ...]
//
// Prints one JSON array, per object {"name", "errors": [...]}: the schema's errors (types,
// required fields, formats), then every field name the schema does not define. The models
// accept unknown fields, so the second check is ours: the object is handed to the validator
// behind a Proxy that records which keys the validator looks up; a key it never looked up in
// an object whose keys it did not enumerate (a map, such as labels) is not in the schema.
// An apiVersion without a schema here (petrel.io's Proxy) is an error too: check those with
// `petrel validate`.
import { readFileSync } from "node:fs";

const packages = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "batch/v1": "kubernetes-models/batch/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "networking.istio.io/v1": "@kubernetes-models/istio/networking.istio.io/v1",
  "security.istio.io/v1": "@kubernetes-models/istio/security.istio.io/v1",
};

// Wraps value so that the keys read (get/has) or enumerated (ownKeys) of each object are noted.
function tracked(value, path, objects) {
  if (value === null || typeof value !== "object") return value;
  const entry = { path, value, known: new Set(), enumerated: false };
  objects.push(entry);
  const children = new Map();
  return new Proxy(value, {
    get(target, key) {
      const v = target[key];
      if (typeof key !== "string") return v;
      entry.known.add(key);
      if (v === null || typeof v !== "object") return v;
      if (!children.has(key)) children.set(key, tracked(v, `${path}/${key}`, objects));
      return children.get(key);
    },
    has(target, key) {
      if (typeof key === "string") entry.known.add(key);
      return key in target;
    },
    ownKeys(target) {
      entry.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

async function check(object) {
  const errors = [];
  const pkg = packages[object.apiVersion];
  if (pkg === undefined) return [`apiVersion ${object.apiVersion}: no schema here`];
  const models = await import(pkg);
  const Model = models[object.kind];
  if (Model === undefined) return [`${object.apiVersion} ${object.kind}: no such kind`];
  const objects = [];
  try {
    Model.prototype.validate.call(tracked(object, "", objects));
  } catch (e) {
    errors.push(e.message);
    return errors; // a schema error stops the validator early: its reads say nothing
  }
  for (const o of objects) {
    if (Array.isArray(o.value) || o.enumerated) continue;
    for (const key of Object.keys(o.value))
      if (!o.known.has(key)) errors.push(`${o.path}/${key}: unknown field`);
  }
  return errors;
}

const input = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const { name, object } of input) results.push({ name, errors: await check(object) });
process.stdout.write(JSON.stringify(results) + "\n");
