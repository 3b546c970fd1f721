// tests/e2e/chaos/client.js API_PORT ECHO_PORT
// Drives Petrel's Toxiproxy-compatible API with npm's toxiproxy-node-client through every
// endpoint and every toxic type, and checks each toxic's effect on a real connection through
// the chaos proxy to the TCP echo server at ECHO_PORT. Prints "ok <step>" per step; exits 1 with
// the failing step on stderr. Run by tests/e2e/test_78_chaos_client.py.
"use strict";
const assert = require("node:assert/strict");
const net = require("node:net");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const [apiPort, echoPort] = process.argv.slice(2).map(Number);
const host = `http://127.0.0.1:${apiPort}`;
const upstream = `127.0.0.1:${echoPort}`;
const toxiproxy = new Toxiproxy(host);

function ok(step) {
  console.log(`ok ${step}`);
}

function portOf(proxy) {
  return Number(proxy.listen.split(":").pop());
}

// Sends data on a fresh connection (then FIN when end is set) and collects what comes back
// until the peer closes: {data, how: "eof" | "reset" | "timeout", ms, chunks}.
function exchange(port, data, { end = true, timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const chunks = [];
    let done = false;
    const sock = net.connect(port, "127.0.0.1", () => {
      sock.setNoDelay(true);
      sock.write(data);
      if (end) sock.end();
    });
    const finish = (how) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      resolve({ data: Buffer.concat(chunks), how, ms, chunks: chunks.map((c) => c.length) });
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    sock.on("data", (c) => chunks.push(c));
    sock.on("end", () => finish("eof"));
    sock.on("error", (e) => finish(e.code === "ECONNRESET" ? "reset" : e.code));
  });
}

async function expectStatus(promise, status) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof ToxiproxyError, String(e));
    assert.match(e.message, new RegExp(`status code ${status}`));
    return true;
  });
}

async function withToxic(proxy, body, check) {
  const toxic = await proxy.addToxic(body);
  assert.equal(toxic.type, body.type);
  await check(toxic);
  await toxic.remove();
}

async function main() {
  const version = await toxiproxy.getVersion();
  assert.match(version, /^\d+\.\d+\.\d+/);
  ok("GET /version");

  const proxy = await toxiproxy.createProxy({ name: "svc", listen: "127.0.0.1:0", upstream });
  assert.equal(proxy.enabled, true);
  assert.ok(portOf(proxy) > 0);
  const port = portOf(proxy);
  ok("POST /proxies");
  await expectStatus(toxiproxy.createProxy({ name: "svc", listen: "127.0.0.1:0", upstream }), 409);
  ok("POST /proxies duplicate 409");
  await expectStatus(toxiproxy.createProxy({ name: "bad", listen: "127.0.0.1:0" }), 400);
  ok("POST /proxies without upstream 400");

  const all = await toxiproxy.getAll();
  assert.deepEqual(Object.keys(all), ["svc"]);
  assert.equal((await toxiproxy.get("svc")).listen, proxy.listen);
  ok("GET /proxies, GET /proxies/{name}");
  await expectStatus(toxiproxy.get("nope"), 404);
  ok("GET /proxies/{name} missing 404");

  const base = await exchange(port, "hello");
  assert.equal(base.data.toString(), "hello");
  assert.equal(base.how, "eof");

  const populated = await toxiproxy.populate([
    { name: "svc", listen: proxy.listen, upstream },
    { name: "other", listen: "127.0.0.1:0", upstream },
  ]);
  assert.deepEqual(Object.keys(populated).sort(), ["other", "svc"]);
  assert.equal(populated.svc.listen, proxy.listen);
  ok("POST /populate");

  // Every toxic type, through the client, with its effect on a connection.
  await withToxic(proxy, { type: "latency", stream: "downstream", toxicity: 1,
                           attributes: { latency: 100, jitter: 0 } }, async (t) => {
    assert.equal(t.name, "latency_downstream");
    const r = await exchange(port, "x");
    assert.ok(r.ms >= 95, `latency: ${r.ms} ms`);
    const got = await proxy.getToxic("latency_downstream");
    assert.deepEqual(got.attributes, { latency: 100, jitter: 0 });
    const updated = await t.update({ attributes: { latency: 10, jitter: 0 } });
    assert.equal(updated.attributes.latency, 10);
    ok("GET/POST /proxies/{name}/toxics/{toxic}");
  });
  ok("toxic latency");
  await withToxic(proxy, { type: "bandwidth", stream: "downstream", toxicity: 1,
                           attributes: { rate: 100 } }, async () => {
    const r = await exchange(port, Buffer.alloc(50000, 1));
    assert.equal(r.data.length, 50000);
    assert.ok(r.ms >= 450, `bandwidth: 50 KB in ${r.ms} ms at 100 KB/s`);
  });
  ok("toxic bandwidth");
  await withToxic(proxy, { type: "slow_close", stream: "downstream", toxicity: 1,
                           attributes: { delay: 300 } }, async () => {
    const r = await exchange(port, "bye");
    assert.equal(r.how, "eof");
    assert.ok(r.ms >= 295, `slow_close: ${r.ms} ms`);
  });
  ok("toxic slow_close");
  await withToxic(proxy, { type: "timeout", stream: "downstream", toxicity: 1,
                           attributes: { timeout: 200 } }, async () => {
    const r = await exchange(port, "lost", { end: false });
    assert.equal(r.data.length, 0);
    assert.equal(r.how, "eof");
    assert.ok(r.ms >= 195, `timeout: ${r.ms} ms`);
  });
  ok("toxic timeout");
  await withToxic(proxy, { type: "reset_peer", stream: "upstream", toxicity: 1,
                           attributes: { timeout: 100 } }, async () => {
    const r = await exchange(port, "x", { end: false });
    assert.equal(r.how, "reset");
  });
  ok("toxic reset_peer (ECONNRESET)");
  await withToxic(proxy, { type: "slicer", stream: "downstream", toxicity: 1,
                           attributes: { average_size: 50, size_variation: 10, delay: 20000 } },
                  async () => {
    const r = await exchange(port, Buffer.alloc(300, 2), { end: false, timeoutMs: 2000 });
    assert.equal(r.data.length, 300);
    assert.ok(r.chunks.length >= 5, `slicer chunks ${r.chunks}`);
    assert.ok(r.chunks.slice(0, -1).every((n) => n >= 40 && n <= 60), `slicer ${r.chunks}`);
  });
  ok("toxic slicer");
  await withToxic(proxy, { type: "limit_data", stream: "downstream", toxicity: 1,
                           attributes: { bytes: 7 } }, async () => {
    const r = await exchange(port, "0123456789abcdef", { end: false });
    assert.equal(r.data.toString(), "0123456");
    assert.equal(r.how, "eof");
  });
  ok("toxic limit_data");
  await withToxic(proxy, { type: "latency", stream: "upstream", toxicity: 0,
                           attributes: { latency: 1000 } }, async () => {
    const r = await exchange(port, "fast");
    assert.ok(r.ms < 500, `toxicity 0 fired: ${r.ms} ms`);
  });
  ok("toxicity 0");

  await expectStatus(proxy.addToxic({ type: "nope", stream: "downstream", toxicity: 1,
                                      attributes: {} }), 400);
  ok("POST /proxies/{name}/toxics bad type 400");
  const t1 = await proxy.addToxic({ name: "l1", type: "latency", stream: "upstream",
                                    toxicity: 1, attributes: { latency: 1 } });
  await expectStatus(proxy.addToxic({ name: "l1", type: "latency", stream: "upstream",
                                      toxicity: 1, attributes: { latency: 1 } }), 409);
  ok("POST /proxies/{name}/toxics duplicate 409");
  const list = (await toxiproxy.getApi().get(`${host}/proxies/svc/toxics`)).data;
  assert.deepEqual(list.map((t) => t.name), ["l1"]);
  ok("GET /proxies/{name}/toxics");
  await expectStatus(proxy.getToxic("missing"), 404);
  ok("GET /proxies/{name}/toxics/{toxic} missing 404");

  const down = await proxy.update({ enabled: false, listen: proxy.listen, upstream });
  assert.equal(down.enabled, false);
  const refused = await exchange(port, "x");
  assert.equal(refused.how, "ECONNREFUSED");
  ok("POST /proxies/{name} enabled false");

  await toxiproxy.reset();
  const after = await toxiproxy.get("svc");
  assert.equal(after.enabled, true);
  assert.equal((await toxiproxy.getApi().get(`${host}/proxies/svc/toxics`)).data.length, 0);
  assert.equal((await exchange(port, "back")).data.toString(), "back");
  ok("POST /reset");
  await expectStatus(t1.remove(), 404); // reset removed it

  await proxy.remove();
  await populated.other.remove();
  assert.deepEqual(Object.keys(await toxiproxy.getAll()), []);
  ok("DELETE /proxies/{name}");
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(1);
  },
);
