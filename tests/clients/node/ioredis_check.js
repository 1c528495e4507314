// ioredis with its default options (INFO ready check, offline queue,
// retries) through keyway: plain commands, multi(), scanStream.
// Usage: node ioredis_check.js PORT. Exits non-zero on the first mismatch.
const assert = require("node:assert/strict");
const Redis = require("ioredis");

async function main() {
  const r = new Redis({ port: Number(process.argv[2]), host: "127.0.0.1" });
  await new Promise((ok, fail) => {
    r.once("ready", ok);
    r.once("error", fail);
  });
  assert.equal(await r.set("io:a", "1"), "OK");
  assert.equal(await r.get("io:a"), "1");
  await r.del("{io}n");
  const tx = await r.multi().incr("{io}n").incr("{io}n").get("{io}n").exec();
  assert.deepEqual(tx, [[null, 1], [null, 2], [null, "2"]]);
  const want = new Set();
  for (let i = 0; i < 300; i++) want.add(`io:k${i}`);
  await r.mset(...[...want].flatMap((k) => [k, "v"]));
  const seen = new Set();
  await new Promise((ok, fail) => {
    const s = r.scanStream({ match: "io:k*", count: 50 });
    s.on("data", (keys) => keys.forEach((k) => seen.add(k)));
    s.on("end", ok);
    s.on("error", fail);
  });
  assert.deepEqual([...seen].sort(), [...want].sort());
  assert.ok((await r.dbsize()) >= 302);
  // A subscriber connection, and messages published through keyway.
  const sub = new Redis({ port: Number(process.argv[2]), host: "127.0.0.1" });
  const got = [];
  sub.on("message", (ch, msg) => got.push(`${ch}:${msg}`));
  sub.on("pmessage", (p, ch, msg) => got.push(`${p}>${ch}:${msg}`));
  assert.equal(await sub.subscribe("io:ch1", "io:ch2"), 2);
  assert.equal(await sub.psubscribe("io:p*"), 3);
  assert.equal(await r.publish("io:ch2", "hi"), 1);
  assert.equal(await r.publish("io:pq", "pat"), 1);
  for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((ok) => setTimeout(ok, 20));
  assert.deepEqual(got.sort(), ["io:ch2:hi", "io:p*>io:pq:pat"]);
  await sub.quit();
  await r.quit();
}

main().then(
  () => console.log("ioredis ok"),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
