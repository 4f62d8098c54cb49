// Walkthrough offline client: the pure rules, with no browser APIs, so `node --test`
// (tests/js/) checks them and offline.js and capture.js use exactly the same code.
//  - whose work a record is (shared tablets: one person's outbox never goes out as another's);
//  - how the outbox is cut into pushes the server accepts (count and bytes), and what a 413
//    does;
//  - what the device does with each answer of a push;
//  - which saved state wins when a page loads (IndexedDB draft or the synchronous journal).
// An ES module: offline.js and capture.js import it; so do the Node tests.
const core = (function () {
  "use strict";

  // What the server documents (GET /api/session, "sync_limits"); used until it has answered.
  var DEFAULT_LIMITS = { max_items: 100, max_bytes: 5 * 1024 * 1024 };

  var encoder = typeof TextEncoder !== "undefined" ? new TextEncoder() : null;

  function byteLength(text) {
    if (encoder) return encoder.encode(text).length;
    return unescape(encodeURIComponent(text)).length;
  }

  // JSON with object keys sorted: two equal payloads give the same text, whatever the order
  // their keys were written in.
  function stableStringify(value) {
    if (value === null || typeof value !== "object") return JSON.stringify(value);
    if (Array.isArray(value)) return "[" + value.map(stableStringify).join(",") + "]";
    return "{" + Object.keys(value).sort().filter(function (k) { return value[k] !== undefined; })
      .map(function (k) { return JSON.stringify(k) + ":" + stableStringify(value[k]); }).join(",") + "}";
  }

  function samePayload(a, b) {
    return stableStringify(a) === stableStringify(b);
  }

  // --- whose work it is
  function isMine(record, accountId) {
    return accountId !== null && accountId !== undefined && record.owner === accountId;
  }

  // Records from a version of this script that did not yet note their owner belong to the
  // first person who signs in after the update (on a device used by one person, its owner).
  function claimUnowned(records, accountId) {
    return records.filter(function (r) { return r.owner === undefined || r.owner === null; })
      .map(function (r) { var copy = Object.assign({}, r); copy.owner = accountId; return copy; });
  }

  // The numbers the badge and the device page show for the person signed in.
  function counts(records, accountId) {
    var result = { waiting: 0, problems: 0, others: 0 };
    records.forEach(function (r) {
      if (!isMine(r, accountId)) result.others += 1;
      else if (r.state === "waiting") result.waiting += 1;
      else result.problems += 1;
    });
    return result;
  }

  function badgeText(c, signInNeeded, lastSync) {
    var text = c.waiting ? c.waiting + " waiting" : "All sent";
    if (c.problems) text += " · " + c.problems + " need attention";
    if (c.others) text += " · " + c.others + " waiting for " + (c.others === 1 ? "its" : "their") + " author to sign in";
    if (signInNeeded) text += " · sign in to send";
    text += lastSync ? " · last sync " + lastSync : " · not synced yet";
    return text;
  }

  // --- cutting the outbox into pushes
  function pushItem(record) {
    return { id: record.id, base_revision: record.base_revision, payload: record.payload };
  }

  function envelopeBytes(deviceId, accountId) {
    return byteLength(JSON.stringify({ device_id: deviceId, account_id: accountId, items: [] }));
  }

  function itemBytes(record) {
    return byteLength(JSON.stringify(pushItem(record)));
  }

  // Pushes of at most limits.max_items items and limits.max_bytes bytes each, in outbox
  // order. A record that could not fit even alone is returned in tooLarge, never sent.
  function planBatches(records, limits, deviceId, accountId) {
    var maxItems = Math.max(1, limits.max_items || DEFAULT_LIMITS.max_items);
    var maxBytes = limits.max_bytes || DEFAULT_LIMITS.max_bytes;
    var base = envelopeBytes(deviceId, accountId);
    var batches = [];
    var tooLarge = [];
    var current = [];
    var size = base;
    records.forEach(function (record) {
      var bytes = itemBytes(record);
      if (base + bytes > maxBytes) {
        tooLarge.push({ record: record, bytes: bytes + base });
        return;
      }
      var extra = bytes + (current.length ? 1 : 0); // the comma between items
      if (current.length && (current.length >= maxItems || size + extra > maxBytes)) {
        batches.push(current);
        current = [];
        size = base;
        extra = bytes;
      }
      current.push(record);
      size += extra;
    });
    if (current.length) batches.push(current);
    return { batches: batches, tooLarge: tooLarge };
  }

  function bodyBytes(batch, deviceId, accountId) {
    return byteLength(JSON.stringify({ device_id: deviceId, account_id: accountId, items: batch.map(pushItem) }));
  }

  // A push answered 413: split it in two and try each half; a single item that still gets
  // 413 can never go and is set aside with a reason. The byte limit learned (lower than the
  // push that was refused) keeps later pushes under it.
  function after413(batch, limits, bytesSent, answer) {
    var learned = Object.assign({}, limits);
    if (answer && answer.max_batch) learned.max_items = Math.min(learned.max_items, answer.max_batch);
    if (answer && answer.max_bytes) learned.max_bytes = Math.min(learned.max_bytes, answer.max_bytes);
    else if (batch.length > 1 && bytesSent) learned.max_bytes = Math.min(learned.max_bytes, bytesSent - 1);
    if (batch.length > 1) {
      var half = Math.ceil(batch.length / 2);
      return { limits: learned, retry: [batch.slice(0, half), batch.slice(half)], tooLarge: [] };
    }
    return { limits: learned, retry: [], tooLarge: batch };
  }

  function tooLargeReason(bytes, maxBytes) {
    function size(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.ceil(n / 1024) + " KB"; }
    return "This observation is too large to send (" + size(bytes) + (maxBytes ? "; the server takes at most " + size(maxBytes) : "") +
      "). Open it, shorten the longest notes or evidence, and save again. Everything else on this device is still sent.";
  }

  // --- answers of a push
  var STORED = { created: true, updated: true, duplicate: true };

  // What becomes of the outbox record `current` after the server answered `result` for the
  // frozen copy `sent`: null removes it, undefined leaves it as it is, an object replaces it.
  function outboxAfter(current, sent, result) {
    if (!current) return undefined;
    if (STORED[result.status]) {
      if (current.seq === sent.seq) return null; // what we sent is stored
      var rebased = Object.assign({}, current);
      rebased.base_revision = result.revision; // edited while sending: keep it, on the new base
      return rebased;
    }
    if (current.seq !== sent.seq) return undefined; // a newer edit will be sent
    var kept = Object.assign({}, current);
    kept.state = result.status; // conflict or rejected: kept, shown, fixable
    kept.reason = result.reason;
    kept.server_revision = result.revision;
    return kept;
  }

  // What becomes of the draft once the server stored `sent`: a draft that still holds what
  // was sent has nothing left to send (kept, not dirty, submitted or not: it is this
  // device's newest state of the observation, which an older copy of its edit page from the
  // cache must never undo; signing out removes it); one edited since keeps its changes on
  // the new revision.
  function draftAfter(draft, sent, result, now) {
    if (!draft || !STORED[result.status]) return undefined;
    var next = Object.assign({}, draft);
    next.base_revision = Math.max(draft.base_revision || 0, result.revision || 0);
    // The lowest base this device's own sends moved on from: a journal entry of an open page
    // that has not heard of them yet is still this device's latest work, not a stale one.
    if (next.base_revision > (draft.base_revision || 0)) {
      next.own_since = draft.own_since !== undefined ? draft.own_since : (draft.base_revision || 0);
    }
    next.synced_at = now;
    if (samePayload(draft.payload, sent.payload)) next.dirty = false;
    return next;
  }

  // --- signing out of a shared device
  // The ids of this account's drafts that hold nothing unsent: not dirty, not in the outbox,
  // no Save waiting to be queued (`marked`). They are copies of what the server has, removed
  // with the cached pages when their author signs out; everything unsent stays.
  // With `olderThan` (an ISO time), only those synced before it (pruning a device's old copies).
  function sentDrafts(drafts, outbox, me, marked, olderThan) {
    var queued = {};
    (outbox || []).forEach(function (r) { queued[r.id] = true; });
    return (drafts || []).filter(function (d) {
      return d.owner !== undefined && d.owner !== null && d.owner === me &&
        !d.dirty && !queued[d.id] && !(marked && marked[d.id]) &&
        (!olderThan || (!!d.synced_at && d.synced_at < olderThan));
    }).map(function (d) { return d.id; });
  }

  // --- loading the capture page
  // The synchronous journal entry wins over the IndexedDB draft when it is newer and made
  // from the same or a later server revision, or from a revision this device's own sends
  // moved the draft on from (the page kept the old base in memory until it heard of them).
  function journalWins(entry, draft) {
    if (!entry || !entry.payload || !draft) return false;
    var base = entry.base_revision || 0;
    var ownSends = draft.own_since !== undefined && base >= draft.own_since;
    if (base < (draft.base_revision || 0) && !ownSends) return false;
    return !draft.updated_at || entry.at > draft.updated_at;
  }

  // The draft with a journal entry folded in, or undefined when the entry does not win (or
  // is another account's). Used by the capture page and by every page load alike.
  function foldEntry(draft, entry) {
    if (!entry || !entry.payload || !draft) return undefined;
    var owned = function (x) { return x !== undefined && x !== null; };
    if (owned(entry.owner) && owned(draft.owner) && entry.owner !== draft.owner) return undefined;
    if (!journalWins(entry, draft)) return undefined;
    var next = Object.assign({}, draft, { payload: entry.payload, updated_at: entry.at, dirty: true });
    if ((entry.base_revision || 0) > (draft.base_revision || 0)) next.base_revision = entry.base_revision;
    return next;
  }

  // --- a Save whose page was left before the outbox had it (a queue mark left behind)
  // The draft to put in the outbox, with the status the Save gave it, or null when there is
  // nothing to do: the draft is gone or already sent, or the outbox already holds it as it is.
  function draftToQueue(mark, draft, queued) {
    if (!mark || !draft) return null;
    var restatus = !!mark.status && mark.status !== draft.payload.status; // a Submit not yet kept
    if (!draft.dirty && !restatus) return null;
    var next = Object.assign({}, draft, { payload: Object.assign({}, draft.payload), dirty: true });
    if (mark.status) next.payload.status = mark.status;
    if (queued && samePayload(queued.payload, next.payload)) return null;
    return next;
  }

  return {
    DEFAULT_LIMITS: DEFAULT_LIMITS,
    byteLength: byteLength,
    stableStringify: stableStringify,
    samePayload: samePayload,
    isMine: isMine,
    claimUnowned: claimUnowned,
    counts: counts,
    badgeText: badgeText,
    pushItem: pushItem,
    planBatches: planBatches,
    bodyBytes: bodyBytes,
    after413: after413,
    tooLargeReason: tooLargeReason,
    outboxAfter: outboxAfter,
    draftAfter: draftAfter,
    sentDrafts: sentDrafts,
    journalWins: journalWins,
    foldEntry: foldEntry,
    draftToQueue: draftToQueue
  };
})();

export default core;
