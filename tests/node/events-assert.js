'use strict';
// Checks on the events a client got, shared by the recovery tests (Socket.IO,
// Server-Sent Events): an event's id is "topic:partition:offset".
const assert = require('node:assert/strict');

function parsePos(id) {
  const i = id.lastIndexOf(':');
  return { key: id.slice(0, i), offset: BigInt(id.slice(i + 1)) };
}

function assertSameEvents(got, want, what) {
  const ids = got.map((e) => e.id);
  const dup = ids.filter((x, i) => ids.indexOf(x) !== i);
  assert.deepEqual(dup.slice(0, 5), [], `${what}: no duplicates`);
  const wantIds = new Set(want.map((e) => e.id));
  const have = new Set(ids);
  const missing = [...wantIds].filter((i) => !have.has(i));
  const extra = ids.filter((i) => !wantIds.has(i));
  assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), n: ids.length },
    { missing: [], extra: [], n: wantIds.size }, `${what}: exactly the events entitled to`);
}

function assertOrdered(events, what) {
  const last = new Map();
  for (const e of events) {
    const p = parsePos(e.id);
    const l = last.get(p.key);
    assert.ok(l === undefined || p.offset > l, `${what}: ${e.id} after ${p.key}:${l}`);
    last.set(p.key, p.offset);
  }
}

module.exports = { parsePos, assertSameEvents, assertOrdered };
