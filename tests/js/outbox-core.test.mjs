// Unit tests of the offline client's pure rules: node --test tests/js/
import test from "node:test";
import assert from "node:assert/strict";
import core from "../../app/static/outbox-core.js";

function record(id, extra) {
  return Object.assign({
    id: id, owner: 1, seq: 1, state: "waiting", base_revision: 0,
    payload: { teacher_name: "T " + id, status: "draft", values: {}, notes: [] }
  }, extra || {});
}

function big(id, bytes, extra) {
  const r = record(id, extra);
  r.payload.overall_notes = "x".repeat(bytes);
  return r;
}

test("a record is one person's: others, the signed-out and unowned records are not mine", () => {
  assert.equal(core.isMine(record("a"), 1), true);
  assert.equal(core.isMine(record("a"), 2), false);
  assert.equal(core.isMine(record("a"), null), false);
  assert.equal(core.isMine(record("a", { owner: undefined }), 1), false);
});

test("unowned records from an older version are claimed by the person signed in", () => {
  const claimed = core.claimUnowned([record("a", { owner: undefined }), record("b", { owner: 2 })], 7);
  assert.deepEqual(claimed.map((r) => [r.id, r.owner]), [["a", 7]]);
});

test("counts separate my waiting items, my problems and other people's work", () => {
  const c = core.counts([
    record("a"), record("b", { state: "conflict" }), record("c", { owner: 2 }), record("d", { owner: 3, state: "rejected" })
  ], 1);
  assert.deepEqual(c, { waiting: 1, problems: 1, others: 2 });
  assert.equal(core.badgeText(c, false, "10:02"),
    "1 waiting · 1 need attention · 2 waiting for their author to sign in · last sync 10:02");
  assert.equal(core.badgeText({ waiting: 0, problems: 0, others: 1 }, true, null),
    "All sent · 1 waiting for its author to sign in · sign in to send · not synced yet");
});

test("stable JSON does not depend on key order", () => {
  assert.equal(core.stableStringify({ b: 1, a: [{ d: 1, c: 2 }] }), core.stableStringify({ a: [{ c: 2, d: 1 }], b: 1 }));
  assert.equal(core.samePayload({ a: 1 }, { a: 2 }), false);
});

test("byte sizes count UTF-8, not characters", () => {
  assert.equal(core.byteLength("é"), 2);
  assert.equal(core.byteLength("👋"), 4);
});

test("pushes respect the item limit", () => {
  const records = Array.from({ length: 250 }, (_, i) => record("r" + i));
  const plan = core.planBatches(records, { max_items: 100, max_bytes: 5e6 }, "dev", 1);
  assert.deepEqual(plan.batches.map((b) => b.length), [100, 100, 50]);
  assert.equal(plan.tooLarge.length, 0);
  assert.deepEqual(plan.batches.flat().map((r) => r.id), records.map((r) => r.id)); // order kept
});

test("pushes respect the byte limit exactly, body included", () => {
  const records = Array.from({ length: 30 }, (_, i) => big("r" + i, 20000));
  const limits = { max_items: 100, max_bytes: 100000 };
  const plan = core.planBatches(records, limits, "device-1", 1);
  assert.ok(plan.batches.length >= 7);
  for (const batch of plan.batches) {
    assert.ok(core.bodyBytes(batch, "device-1", 1) <= limits.max_bytes);
  }
  // each push is as full as it can be: the next record would not have fitted
  for (let i = 0; i < plan.batches.length - 1; i++) {
    const withNext = plan.batches[i].concat([plan.batches[i + 1][0]]);
    assert.ok(core.bodyBytes(withNext, "device-1", 1) > limits.max_bytes);
  }
});

test("a record that can never fit is set aside and the ones behind it still go", () => {
  const records = [record("a"), big("huge", 200000), record("b")];
  const plan = core.planBatches(records, { max_items: 100, max_bytes: 100000 }, "dev", 1);
  assert.deepEqual(plan.tooLarge.map((t) => t.record.id), ["huge"]);
  assert.ok(plan.tooLarge[0].bytes > 200000);
  assert.deepEqual(plan.batches.flat().map((r) => r.id), ["a", "b"]);
  assert.match(core.tooLargeReason(plan.tooLarge[0].bytes, 100000), /too large to send \(196 KB; the server takes at most 98 KB\)/);
});

test("a 413 splits the push in two and lowers the byte limit below what was refused", () => {
  const batch = [record("a"), record("b"), record("c")];
  const out = core.after413(batch, { max_items: 100, max_bytes: 5e6 }, 3000, null);
  assert.deepEqual(out.retry.map((b) => b.map((r) => r.id)), [["a", "b"], ["c"]]);
  assert.equal(out.limits.max_bytes, 2999);
  assert.equal(out.tooLarge.length, 0);
});

test("a 413 naming the server's limits is believed", () => {
  const out = core.after413([record("a"), record("b")], { max_items: 100, max_bytes: 5e6 }, 3000, { max_batch: 50 });
  assert.equal(out.limits.max_items, 50);
});

test("a single item refused with 413 is too large, not retried forever", () => {
  const out = core.after413([record("a")], { max_items: 100, max_bytes: 5e6 }, 3000, null);
  assert.deepEqual(out.retry, []);
  assert.deepEqual(out.tooLarge.map((r) => r.id), ["a"]);
  assert.equal(out.limits.max_bytes, 5e6); // one item says nothing about the limit for others
});

test("stored answers remove the record only when it was not edited meanwhile", () => {
  const sent = { id: "a", seq: 3 };
  assert.equal(core.outboxAfter(record("a", { seq: 3 }), sent, { status: "updated", revision: 4 }), null);
  assert.equal(core.outboxAfter(record("a", { seq: 3 }), sent, { status: "duplicate", revision: 4 }), null);
  const rebased = core.outboxAfter(record("a", { seq: 4, base_revision: 3 }), sent, { status: "updated", revision: 4 });
  assert.equal(rebased.base_revision, 4);
  assert.equal(rebased.state, "waiting");
  assert.equal(core.outboxAfter(null, sent, { status: "created", revision: 1 }), undefined);
});

test("conflicts and rejections are kept with their reason, unless a newer edit waits", () => {
  const sent = { id: "a", seq: 3 };
  const kept = core.outboxAfter(record("a", { seq: 3 }), sent, { status: "rejected", reason: "no", revision: null });
  assert.equal(kept.state, "rejected");
  assert.equal(kept.reason, "no");
  assert.equal(core.outboxAfter(record("a", { seq: 5 }), sent, { status: "conflict", revision: 2 }), undefined);
});

test("a synced draft leaves the drafts list; a submitted one leaves the device", () => {
  const payload = { status: "draft", values: { a: { value: 1 } } };
  const draft = { id: "a", dirty: true, base_revision: 0, payload: payload };
  const done = core.draftAfter(draft, { payload: { values: { a: { value: 1 } }, status: "draft" } }, { status: "created", revision: 1 }, "now");
  assert.equal(done.dirty, false);
  assert.equal(done.base_revision, 1);
  const submitted = Object.assign({}, draft, { payload: Object.assign({}, payload, { status: "submitted" }) });
  // A submitted one is kept too, as this device's newest state (an older cached edit page
  // must not undo it), with nothing left to send.
  const sentSubmitted = core.draftAfter(submitted, { payload: submitted.payload }, { status: "updated", revision: 2 }, "now");
  assert.equal(sentSubmitted.dirty, false);
  assert.equal(sentSubmitted.base_revision, 2);
  assert.equal(sentSubmitted.payload.status, "submitted");
  const edited = Object.assign({}, draft, { payload: { status: "draft", values: { a: { value: 2 } } } });
  const keep = core.draftAfter(edited, { payload: payload }, { status: "updated", revision: 2 }, "now");
  assert.equal(keep.dirty, true);
  assert.equal(keep.base_revision, 2);
  assert.equal(core.draftAfter(draft, { payload: payload }, { status: "conflict", revision: 2 }, "now"), undefined);
});

test("the journal wins only when newer and from the same or a later revision", () => {
  const draft = { base_revision: 2, updated_at: "2026-11-22T10:00:00.000Z" };
  assert.equal(core.journalWins({ at: "2026-11-22T10:00:01.000Z", base_revision: 2, payload: {} }, draft), true);
  assert.equal(core.journalWins({ at: "2026-11-22T09:59:59.000Z", base_revision: 2, payload: {} }, draft), false);
  assert.equal(core.journalWins({ at: "2026-11-22T10:00:01.000Z", base_revision: 1, payload: {} }, draft), false);
  assert.equal(core.journalWins(null, draft), false);
  assert.equal(core.journalWins({ at: "x", base_revision: 0, payload: {} }, { base_revision: 0 }), true);
});

test("a lost acknowledgement: the push is sent again and its duplicate answer clears it", () => {
  // The server stored seq 3 but the answer never arrived: the record stayed waiting, unchanged.
  const waiting = record("a", { seq: 3, base_revision: 0 });
  const [batch] = core.planBatches([waiting], core.DEFAULT_LIMITS, "dev", 1).batches;
  assert.deepEqual(batch.map((r) => r.id), ["a"]); // sent again as it was, same base
  assert.equal(core.pushItem(waiting).base_revision, 0);
  assert.equal(core.outboxAfter(waiting, { id: "a", seq: 3 }, { status: "duplicate", revision: 1 }), null);
});

test("rebase: an edit made during the push goes next, on the revision the push made", () => {
  const sent = { id: "a", seq: 1, base_revision: 0 };
  const editedMeanwhile = record("a", { seq: 2, base_revision: 0 });
  const next = core.outboxAfter(editedMeanwhile, sent, { status: "created", revision: 1 });
  assert.equal(next.seq, 2);
  assert.equal(next.base_revision, 1); // not 0: the server would call it a conflict
  assert.equal(core.pushItem(next).base_revision, 1);
});

test("a Save left behind by a page that was left at once is queued once, with its status", () => {
  const draft = { id: "a", dirty: true, base_revision: 2, payload: { status: "draft", values: { x: { value: 3 } } } };
  const submitted = core.draftToQueue({ at: "t", status: "submitted" }, draft, undefined);
  assert.equal(submitted.payload.status, "submitted");
  assert.equal(draft.payload.status, "draft"); // the stored draft is not changed in place
  assert.equal(core.draftToQueue({ at: "t", status: null }, draft, undefined).payload.status, "draft");
  // already in the outbox as it is, already sent (not dirty), or gone: nothing to do
  assert.equal(core.draftToQueue({ at: "t", status: "submitted" }, draft, { payload: submitted.payload }), null);
  assert.equal(core.draftToQueue({ at: "t", status: null }, Object.assign({}, draft, { dirty: false }), undefined), null);
  assert.equal(core.draftToQueue({ at: "t", status: null }, undefined, undefined), null);
  // an older state in the outbox is replaced by the saved one
  const older = { payload: { status: "draft", values: { x: { value: 2 } } } };
  assert.deepEqual(core.draftToQueue({ at: "t", status: null }, draft, older).payload.values, { x: { value: 3 } });
});

test("a journal entry written before the page heard of its own send still wins; a stale one does not", () => {
  const sent = { id: "a", dirty: true, base_revision: 0, updated_at: "t1", owner: 1, payload: { v: 1 } };
  const after = core.draftAfter(sent, { payload: { v: 1 } }, { status: "created", revision: 1 }, "t2");
  assert.equal(after.base_revision, 1);
  assert.equal(after.own_since, 0);
  const typed = { at: "t3", base_revision: 0, owner: 1, payload: { v: 2 } }; // the page still says base 0
  const folded = core.foldEntry(after, typed);
  assert.deepEqual(folded.payload, { v: 2 });
  assert.equal(folded.base_revision, 1); // the draft's base, never lowered
  assert.equal(folded.dirty, true);
  // A draft whose base came from the server (not this device's sends): the old entry loses.
  const fromServer = { id: "a", dirty: false, base_revision: 3, updated_at: "t1", owner: 1, payload: { v: 9 } };
  assert.equal(core.foldEntry(fromServer, typed), undefined);
  // Another account's entry, or an older one, never folds in.
  assert.equal(core.foldEntry(after, Object.assign({}, typed, { owner: 2 })), undefined);
  assert.equal(core.foldEntry(after, Object.assign({}, typed, { at: "t0" })), undefined);
  // A newer base in the entry moves the draft on.
  assert.equal(core.foldEntry(after, Object.assign({}, typed, { base_revision: 4 })).base_revision, 4);
});

test("a Submit left behind on a draft already sent as a draft is still queued, as submitted", () => {
  const sent = { id: "a", dirty: false, base_revision: 1, payload: { status: "draft", values: {} } };
  const queued = core.draftToQueue({ at: "t", status: "submitted" }, sent, undefined);
  assert.equal(queued.payload.status, "submitted");
  assert.equal(queued.dirty, true);
  assert.equal(core.draftToQueue({ at: "t", status: "draft" }, sent, undefined), null);
});

test("signing out forgets only this account's drafts that hold nothing unsent", () => {
  const drafts = [
    { id: "sent", owner: 1, dirty: false },
    { id: "typing", owner: 1, dirty: true },
    { id: "queued", owner: 1, dirty: false },
    { id: "marked", owner: 1, dirty: false },
    { id: "other", owner: 2, dirty: false },
    { id: "unowned", dirty: false },
  ];
  const outbox = [{ id: "queued", owner: 1 }];
  assert.deepEqual(core.sentDrafts(drafts, outbox, 1, { marked: true }), ["sent"]);
  assert.deepEqual(core.sentDrafts(drafts, [], 2, {}), ["other"]);
  assert.deepEqual(core.sentDrafts([], [], 1, {}), []);
});

test("old copies are pruned by when they were synced, never unsent ones", () => {
  const drafts = [
    { id: "old", owner: 1, dirty: false, synced_at: "2026-09-01T00:00:00.000Z" },
    { id: "recent", owner: 1, dirty: false, synced_at: "2026-11-29T00:00:00.000Z" },
    { id: "never", owner: 1, dirty: false },
    { id: "typing", owner: 1, dirty: true, synced_at: "2026-09-01T00:00:00.000Z" },
  ];
  assert.deepEqual(core.sentDrafts(drafts, [], 1, {}, "2026-10-31T00:00:00.000Z"), ["old"]);
  assert.deepEqual(core.sentDrafts(drafts, [], 1, { old: true }, "2026-10-31T00:00:00.000Z"), []);
});
