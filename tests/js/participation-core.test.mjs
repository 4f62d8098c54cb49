// The participation map's rules, against the hand-computed examples the server's tests use too
// (tests/fixtures/participation-examples.json), so the capture page and the server agree.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import P from "../../app/static/participation-core.js";

const fixture = JSON.parse(readFileSync(new URL("../fixtures/participation-examples.json", import.meta.url)));

function close(actual, expected, what) {
  if (expected === null) return assert.equal(actual, null, what);
  assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} is not ${expected}`);
}

for (const example of fixture.examples) {
  test(`summary: ${example.name}`, () => {
    const s = P.summary(fixture.item, example.map);
    const e = example.expect;
    for (const name of ["students", "contributions", "speakers", "top_fifth"]) assert.equal(s[name], e[name], name);
    assert.deepEqual(s.per_marker, e.per_marker);
    const most = Math.max(0, ...s.per_marker);
    assert.deepEqual(s.per_marker.map((n) => P.shade(n, most)), e.shades, "shades");
    for (const name of ["top_share", "top_fifth_share", "gini"]) close(s[name], e[name], name);
    assert.deepEqual(s.by_talk.map((t) => t[2]), e.by_talk);
    assert.deepEqual(s.by_move.map((t) => t[2]), e.by_move);
    for (const [i, g] of (e.groups || []).entries()) {
      assert.equal(s.groups[i].key, g.key);
      assert.equal(s.groups[i].students, g.students);
      assert.equal(s.groups[i].contributions, g.contributions);
      close(s.groups[i].share_of_students, g.share_of_students, "share of students");
      close(s.groups[i].share_of_contributions, g.share_of_contributions, "share of contributions");
    }
  });
}

test("two taps make a contribution; undo takes back the last one only", () => {
  let map = P.layout(null, 24, 6);
  assert.equal(map.markers, 24);
  map = P.tap(map, 7, "explains", 65.9);
  map = P.tap(map, 3, "short", 70);
  assert.deepEqual(map.events, [{ marker: 7, talk: "explains", at: 65 }, { marker: 3, talk: "short", at: 70 }]);
  const undone = P.undo(map);
  assert.deepEqual(undone.events, [{ marker: 7, talk: "explains", at: 65 }]);
  assert.equal(map.events.length, 2, "the earlier map is never changed");
  assert.equal(P.undo(P.undo(undone)).events.length, 0);
});

test("a marker that is not on the map takes no contribution", () => {
  const map = P.layout(null, 4, 4);
  assert.equal(P.tap(map, 5, "short", 1), map);
  assert.equal(P.tap(map, -1, "short", 1), map);
});

test("a map never shrinks below a marker that has spoken, and keeps its bounds", () => {
  let map = P.tap(P.layout(null, 24, 6), 20, "short", 1);
  map = P.layout(map, 10, 6);
  assert.equal(map.markers, 20);
  assert.equal(P.layout(null, 500, 40).markers, P.MAX_MARKERS);
  assert.equal(P.layout(null, 500, 40).per_row, 12);
  assert.equal(P.layout(null, 0, 0).markers, 1);
});

test("adding a marker on the fly, and a grouping label set and cleared", () => {
  let map = P.addMarker(P.layout(null, 3, 3));
  assert.equal(map.markers, 4);
  map = P.setGroup(map, 4, "g1");
  assert.deepEqual(map.groups, { 4: "g1" });
  assert.deepEqual(P.setGroup(map, 4, "").groups, {});
  assert.deepEqual(P.layout(map, 3, 3).groups, {}, "a label for a marker laid away goes with it");
});

test("figures are rounded halves up, as the server's pages round them", () => {
  assert.equal(P.percent(0.125), "13%");
  assert.equal(P.percent(1 / 8), "13%");
  assert.equal(P.fixed(0.125, 2), "0.13");
  assert.equal(P.fixed(0.625, 2), "0.63");
  assert.equal(P.percent(null), "—");
});

test("a tap more than a day after the lesson began keeps no time", () => {
  const map = P.layout(null, 4, 4);
  assert.equal(P.tap(map, 1, "short", null).events[0].at, null);
  assert.equal(P.tap(map, 1, "short", 90000).events[0].at, null);
  assert.equal(P.tap(map, 1, "short", 86400).events[0].at, 86400);
});

test("a full map takes no more students", () => {
  let map = P.layout(null, P.MAX_MARKERS, 12);
  assert.equal(P.addMarker(map).markers, P.MAX_MARKERS);
});
