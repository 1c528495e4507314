// node-redis with its defaults and `database: 1` through keyway: connect
// (which sends SELECT 1), multi().exec(), scanIterator.
// Usage: node node_redis_check.js PORT. Exits non-zero on the first mismatch.
const assert = require("node:assert/strict");
const { createClient } = require("redis");

async function main() {
  const c = createClient({ url: `redis://127.0.0.1:${process.argv[2]}`, database: 1 });
  c.on("error", (e) => console.error("client error", e));
  await c.connect();
  assert.equal(await c.set("nr:a", "1"), "OK");
  assert.equal(await c.get("nr:a"), "1");
  await c.del("{nr}n");
  const tx = await c.multi().incr("{nr}n").incr("{nr}n").exec();
  assert.deepEqual(tx, [1, 2]);
  const want = [];
  for (let i = 0; i < 300; i++) want.push(`nr:k${i}`);
  await c.mSet(want.map((k) => [k, "v"]));
  const seen = new Set();
  for await (const batch of c.scanIterator({ MATCH: "nr:k*", COUNT: 50 })) {
    for (const k of Array.isArray(batch) ? batch : [batch]) seen.add(k);
  }
  assert.deepEqual([...seen].sort(), [...want].sort());
  // A subscriber (node-redis's duplicate() connection).
  const sub = c.duplicate();
  await sub.connect();
  const got = [];
  await sub.subscribe("nr:ch", (msg) => got.push(msg));
  assert.equal(await c.publish("nr:ch", "hello"), 1);
  for (let i = 0; i < 50 && got.length < 1; i++) await new Promise((ok) => setTimeout(ok, 20));
  assert.deepEqual(got, ["hello"]);
  await sub.unsubscribe("nr:ch");
  await sub.quit();
  await c.quit();
}

main().then(
  () => console.log("node-redis ok"),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
