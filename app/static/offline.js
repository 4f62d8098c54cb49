// Walkthrough offline client: the device's store (IndexedDB), the outbox and its sync with
// the server, the "waiting / last sync" badge, and the service worker. Loaded on every page
// of a signed-in person. Rules it keeps (see docs/sync.md):
//  - an item leaves the outbox only after the server answered created, updated or duplicate;
//  - a record being sent is frozen: an edit made meanwhile is kept and rebased, never lost;
//  - connectivity is a real request to /api/ping, never navigator.onLine alone;
//  - a 401 keeps everything and asks the person to sign in again;
//  - every draft and outbox record belongs to the account that made it: on a shared tablet
//    another person signed in never sends, sees or edits it, and signing out removes the
//    cached pages that hold personnel data (unsent work stays, for its author);
//  - pushes are cut to the server's limits (outbox-core.js holds these rules, unit-tested).
import core from "./outbox-core.js";

// The client's API for capture.js (and the tests), as this module's default export.
const client = (function () {
  "use strict";

  var DB_NAME = "walkthrough";
  var DB_VERSION = 1;
  var OUTBOX_FORMAT = 1; // bump with a migration in upgradeRecord(), never drop old records
  var MAX_DELAY = 5 * 60 * 1000;
  var ACCOUNT_KEY = "walkthrough-account";
  var LAST_ACCOUNT_KEY = "walkthrough-last-account"; // kept by the sign-in page
  var JOURNAL = "walkthrough-journal:";
  var QUEUED = "walkthrough-queue:";
  var PAGES = "walkthrough-pages"; // the service worker's cache of pages (personnel data)
  var PERSONAL = ["/outbox", "/observations/new"]; // kept ready for offline use when signed in

  // --- IndexedDB, reopened whenever the browser closes it (iPadOS does under memory pressure)
  var dbPromise = null;
  var running = new Set(); // this page's transactions not yet complete

  // WebKit (every iPad browser) keeps a page left by a link or a reload in its back/forward
  // cache, frozen, with any IndexedDB transaction it had running: every later page's
  // transaction then waits on it, and the device can neither save nor send until that page
  // is evicted. So a page that leaves into that cache aborts its running transactions and
  // closes its connection; what they were writing is already in localStorage (the capture
  // journal, and the queue marks below), which the next page load writes again. A capture
  // page brought back from that cache loads afresh, so nothing it shows is stale.
  // Until then the page starts no new transaction (a later pagehide handler's save would only
  // open a connection in a frozen page; its journal entry has the change).
  var suspended = false;
  window.addEventListener("pagehide", function (event) {
    if (!event.persisted) return;
    suspended = true;
    running.forEach(function (tx) { try { tx.abort(); } catch (e) { /* already finished */ } });
    running.clear();
    var open = dbPromise;
    dbPromise = null;
    if (open) open.then(function (db) { db.close(); }).catch(function () {});
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    // A capture page loads afresh from the device's state; any other page carries on (a
    // reload could post a form again), its connection reopened at the next use.
    if (document.querySelector("[data-capture]")) { location.reload(); return; }
    suspended = false;
    refreshBadge();
  });

  function openDb() {
    if (dbPromise) return dbPromise;
    dbPromise = new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = function () {
        var db = request.result;
        if (!db.objectStoreNames.contains("outbox")) db.createObjectStore("outbox", { keyPath: "id" });
        if (!db.objectStoreNames.contains("drafts")) db.createObjectStore("drafts", { keyPath: "id" });
        if (!db.objectStoreNames.contains("meta")) db.createObjectStore("meta", { keyPath: "key" });
      };
      request.onsuccess = function () {
        var db = request.result;
        db.onclose = function () { dbPromise = null; };
        db.onversionchange = function () { db.close(); dbPromise = null; };
        resolve(db);
      };
      request.onerror = function () { dbPromise = null; reject(request.error); };
      request.onblocked = function () { dbPromise = null; reject(new Error("IndexedDB blocked")); };
    });
    return dbPromise;
  }

  function run(storeNames, mode, work, retried) {
    if (suspended) return Promise.reject(new Error("this page was left; the next page load writes it"));
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx;
        try {
          tx = db.transaction(storeNames, mode);
        } catch (error) {
          // The connection was closed under us: open a new one and try once more.
          dbPromise = null;
          if (!retried) { run(storeNames, mode, work, true).then(resolve, reject); return; }
          reject(error);
          return;
        }
        var result;
        running.add(tx);
        Promise.resolve(work(tx)).then(function (value) { result = value; });
        tx.oncomplete = function () { running.delete(tx); resolve(result); };
        tx.onerror = function () { running.delete(tx); reject(tx.error); };
        tx.onabort = function () { running.delete(tx); reject(tx.error || new Error("transaction aborted")); };
      });
    });
  }

  function req(request) {
    return new Promise(function (resolve, reject) {
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  var store = {
    get: function (name, key) {
      return run([name], "readonly", function (tx) { return req(tx.objectStore(name).get(key)); });
    },
    all: function (name) {
      return run([name], "readonly", function (tx) { return req(tx.objectStore(name).getAll()); });
    },
    put: function (name, value) {
      return run([name], "readwrite", function (tx) { return req(tx.objectStore(name).put(value)); });
    },
    del: function (name, key) {
      return run([name], "readwrite", function (tx) { return req(tx.objectStore(name).delete(key)); });
    },
    // Read-modify-write inside one transaction, so two tabs never interleave.
    update: function (name, key, change) {
      return run([name], "readwrite", function (tx) {
        var os = tx.objectStore(name);
        return req(os.get(key)).then(function (current) {
          var next = change(current);
          if (next === undefined) return current;
          if (next === null) { os.delete(key); return null; }
          os.put(next);
          return next;
        });
      });
    }
  };

  function upgradeRecord(record) {
    // Outbox records from older versions of this script stay sendable after an update.
    if (!record.format) record.format = OUTBOX_FORMAT;
    return record;
  }

  // --- identity of this device
  function deviceId() {
    return store.get("meta", "device").then(function (m) {
      if (m) return m.value;
      var id = "device-" + crypto.randomUUID();
      return store.put("meta", { key: "device", value: id }).then(function () { return id; });
    });
  }

  // --- the outbox
  var channel = "BroadcastChannel" in window ? new BroadcastChannel("walkthrough-outbox") : null;

  function changed() {
    if (channel) channel.postMessage({ type: "changed" });
    refreshBadge();
    document.dispatchEvent(new CustomEvent("walkthrough:outbox"));
  }

  // Put the latest state of an observation in the outbox. Each call gets a new local
  // sequence number; an item being sent keeps its number, so a change made meanwhile is
  // recognised as newer and kept.
  function enqueue(id, baseRevision, payload, owner, fromFile) {
    var who = owner !== undefined && owner !== null ? owner : currentAccountId();
    var refused = false;
    return store.update("outbox", id, function (current) {
      // Another person's unsent work under this id (a file from them, say) is never replaced.
      if (current && current.owner !== undefined && current.owner !== null && who !== null && current.owner !== who) {
        refused = true;
        return undefined;
      }
      var seq = current ? current.seq + 1 : 1;
      return {
        format: OUTBOX_FORMAT,
        id: id,
        owner: current && current.owner !== undefined && current.owner !== null ? current.owner : who,
        base_revision: current && current.state === "waiting" && current.base_revision > baseRevision
          ? current.base_revision : baseRevision,
        payload: payload,
        seq: seq,
        state: "waiting",
        reason: null,
        from_file: !!fromFile,
        queued_at: new Date().toISOString()
      };
    }).then(function (record) {
      if (refused) {
        var error = new Error("another account's observation with this id is waiting on this device");
        error.refused = true;
        throw error;
      }
      changed();
      if ("serviceWorker" in navigator && navigator.serviceWorker.ready) {
        navigator.serviceWorker.ready.then(function (reg) {
          if (reg.sync) reg.sync.register("walkthrough-outbox").catch(function () {});
        });
      }
      return record;
    });
  }

  // --- whose device session this is (shared tablets)
  // The account of a page fresh from the server is in its <meta name="walkthrough-account">;
  // the device remembers it (localStorage) for offline pages and capture shells, which carry
  // nobody's identity. When it changes, the pages the previous person cached are removed.
  function pageAccount() {
    var meta = document.querySelector("meta[name='walkthrough-account']");
    if (!meta || !meta.content) return null;
    return { id: Number(meta.content), label: meta.dataset.label || "" };
  }

  function storedAccount() {
    try { return JSON.parse(localStorage.getItem(ACCOUNT_KEY) || "null"); } catch (e) { return null; }
  }

  function currentAccountId() {
    var account = pageAccount() || storedAccount();
    return account ? account.id : null;
  }

  function noteAccount(account) {
    if (!account || signingOut) return Promise.resolve();
    var before = storedAccount();
    // The sign-in page forgets who was signed in; the last account is remembered apart, so
    // the next person's arrival can still remove what the last one left.
    var last = null;
    try { last = JSON.parse(localStorage.getItem(LAST_ACCOUNT_KEY) || "null"); } catch (e) { last = null; }
    try {
      localStorage.setItem(ACCOUNT_KEY, JSON.stringify(account));
      localStorage.setItem(LAST_ACCOUNT_KEY, JSON.stringify({ id: account.id }));
    } catch (e) { /* private mode */ }
    showWho(account);
    var gone = last && last.id !== account.id ? last.id : null;
    // Their copies of what the server has go after this page has folded any typing left in
    // the journal (see forgetLeft), on this load or a later one, until none is left.
    if (gone !== null) noteToForget(gone);
    if (before && before.id === account.id && gone === null) return Promise.resolve();
    // Someone else (or, on a device that never noted it, anyone) was here: drop their pages,
    // then keep this person's start page and device page ready for offline use.
    return purgePages().then(warmPages);
  }

  var FORGET_KEY = "walkthrough-forget"; // accounts whose copies of sent work are to go
  function toForget() {
    try { var ids = JSON.parse(localStorage.getItem(FORGET_KEY) || "[]"); return Array.isArray(ids) ? ids : []; } catch (e) { return []; }
  }
  function noteToForget(id) {
    var ids = toForget();
    if (ids.indexOf(id) < 0) ids.push(id);
    try { localStorage.setItem(FORGET_KEY, JSON.stringify(ids)); } catch (e) { /* private mode */ }
  }
  // Each account noted as gone: its copies of sent work are removed; it stays noted while
  // any copy is kept back (a Save or typing of its own not yet folded in).
  function forgetLeft() {
    var me = currentAccountId();
    var ids = toForget().filter(function (id) { return id !== me; });
    return ids.reduce(function (chain, id) {
      return chain.then(function () { return forgetSent(id); }).then(function (left) {
        if (left === 0) {
          var now = toForget().filter(function (x) { return x !== id; });
          try { localStorage.setItem(FORGET_KEY, JSON.stringify(now)); } catch (e) { /* ignore */ }
        }
      });
    }, Promise.resolve()).catch(function () {});
  }

  function showWho(account) {
    document.querySelectorAll("[data-who]").forEach(function (el) {
      if (!el.textContent.trim() && account && account.label) el.textContent = account.label;
    });
  }

  function purgePages() {
    if (!("caches" in window)) return Promise.resolve();
    return caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) { return n.indexOf(PAGES) === 0; })
        .map(function (n) { return caches.delete(n); }));
    }).catch(function () {});
  }

  function warmPages() {
    if (!("caches" in window) || signingOut) return Promise.resolve();
    return caches.open(PAGES).then(function (cache) {
      return Promise.all(PERSONAL.map(function (url) {
        return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (response) {
          if (response.ok && !response.redirected) return cache.put(url, response);
          return null;
        }).catch(function () {});
      }));
    }).catch(function () {});
  }

  // Records made before this script noted owners belong to the first person signed in after
  // the update: on a device used by one person, its owner.
  function claimUnowned(me) {
    if (me === null || me === undefined) return Promise.resolve();
    return Promise.all(["outbox", "drafts"].map(function (name) {
      return store.all(name).then(function (records) {
        return Promise.all(core.claimUnowned(records, me).map(function (r) {
          return store.update(name, r.id, function (current) {
            if (!current || (current.owner !== undefined && current.owner !== null)) return undefined;
            current.owner = me;
            return current;
          });
        }));
      });
    })).catch(function () {});
  }

  // Save and Submit first mark, synchronously (localStorage), that the observation's latest
  // state must go into the outbox, and unmark it once the outbox holds it. A page left at once
  // (a nav link tapped right after Save, a reload, a page frozen in WebKit's back/forward
  // cache) may never finish that write: the next page load finds the mark and does it.
  function markQueued(id, status) {
    var mark = { at: new Date().toISOString(), status: status || null };
    try { localStorage.setItem(QUEUED + id, JSON.stringify(mark)); } catch (e) { /* full or disabled */ }
    return mark;
  }

  function unmarkQueued(id, mark) {
    try {
      var kept = JSON.parse(localStorage.getItem(QUEUED + id) || "null");
      if (kept && kept.at === mark.at) localStorage.removeItem(QUEUED + id);
    } catch (e) { /* a mark left behind is done, and removed, on the next load */ }
  }

  function queueMark(id) {
    try { return JSON.parse(localStorage.getItem(QUEUED + id) || "null"); } catch (e) { return null; }
  }

  function storageKeys(prefix) {
    var keys = [];
    try {
      for (var i = 0; i < localStorage.length; i++) {
        var key = localStorage.key(i);
        if (key && key.indexOf(prefix) === 0) keys.push(key.slice(prefix.length));
      }
    } catch (e) { /* storage disabled: nothing was kept there */ }
    return keys;
  }

  // Observations a capture page holds open (its Web Lock): that page folds and queues its own.
  function heldByPages() {
    if (!navigator.locks || !navigator.locks.query) return Promise.resolve({});
    return navigator.locks.query().then(function (state) {
      var held = {};
      (state.held || []).forEach(function (lock) {
        if (lock.name && lock.name.indexOf("walkthrough-draft-") === 0) held[lock.name.slice(18)] = true;
      });
      return held;
    }).catch(function () { return {}; });
  }

  // Does the Save a mark stands for. The mark stays when this fails for any reason but
  // another account's item under the same id (which nothing on this device may replace).
  function replayQueued(ids) {
    var wanted = ids || storageKeys(QUEUED);
    return heldByPages().then(function (held) {
      return wanted.reduce(function (chain, id) {
        return chain.then(function () {
          var mark = queueMark(id);
          if (!mark || (!ids && held[id])) return null;
          return Promise.all([store.get("drafts", id), store.get("outbox", id)]).then(function (found) {
            var draft = core.draftToQueue(mark, found[0], found[1]);
            if (!draft) return null;
            return store.update("drafts", id, function (current) {
              if (!current) return undefined;
              if (mark.status) current.payload.status = mark.status;
              return current;
            }).then(function () { return enqueue(id, draft.base_revision, draft.payload, draft.owner); });
          }).then(function () { unmarkQueued(id, mark); }, function (error) {
            if (error && error.refused) unmarkQueued(id, mark);
          });
        });
      }, Promise.resolve());
    });
  }

  // Journal entries (capture.js) that never reached IndexedDB go into their drafts, by the
  // capture page's own rule (core.foldEntry); `skipHeld` leaves those a capture page holds.
  function foldJournals(skipHeld) {
    var ids = storageKeys(JOURNAL);
    return (skipHeld ? heldByPages() : Promise.resolve({})).then(function (held) {
      return ids.reduce(function (chain, id) {
        return chain.then(function () {
          if (held[id]) return null;
          var raw = localStorage.getItem(JOURNAL + id);
          var entry = null;
          try { entry = JSON.parse(raw || "null"); } catch (e) { entry = null; }
          if (!entry || !entry.payload) { localStorage.removeItem(JOURNAL + id); return null; }
          return store.update("drafts", id, function (draft) {
            if (!draft) {
              return {
                format: OUTBOX_FORMAT, id: id, base_revision: entry.base_revision || 0, payload: entry.payload,
                dirty: true, owner: entry.owner, label: entry.payload.teacher_name, updated_at: entry.at
              };
            }
            return core.foldEntry(draft, entry);
          }).then(function () {
            if (localStorage.getItem(JOURNAL + id) === raw) localStorage.removeItem(JOURNAL + id);
          });
        });
      }, Promise.resolve());
    }).catch(function () {});
  }

  // This account's drafts that hold nothing unsent (copies of what the server has), removed
  // when it signs out, like the cached pages; unsent work stays for its author.
  function forgetSent(me, olderThan) {
    if (me === null || me === undefined) return Promise.resolve();
    var work = Promise.all([store.all("drafts"), store.all("outbox")]).then(function (found) {
      // A Save not yet queued, or typing not yet folded into its draft, keeps the draft.
      var marked = {};
      storageKeys(QUEUED).concat(storageKeys(JOURNAL)).forEach(function (id) { marked[id] = true; });
      var ids = core.sentDrafts(found[0], found[1], me, marked, olderThan);
      var kept = core.sentDrafts(found[0], found[1], me, {}, olderThan).length - ids.length;
      return Promise.all(ids.map(function (id) {
        return store.update("drafts", id, function (d) { return d && !d.dirty && d.owner === me ? null : undefined; })
          .then(function () { return forgetPage(id); });
      })).then(function () { return kept; });
    }).catch(function () { return -1; });
    // Never holds up signing out or the page (a frozen page's transaction can block IndexedDB).
    return Promise.race([work, new Promise(function (resolve) { setTimeout(resolve, 3000); })]);
  }

  // The cached copy of an observation's edit page goes with the device's copy of its state:
  // without that, the older page would be the only state left to open offline.
  function forgetPage(id) {
    if (!("caches" in window)) return Promise.resolve();
    return caches.open(PAGES).then(function (pages) {
      return pages.delete("/observations/" + id + "/edit");
    }).catch(function () {});
  }

  // Signing out: the session ends on the server first; only then are the pages with personnel
  // data removed and the device forgets who was signed in. Unsent work stays for its author.
  // Offline (or when the server does not answer) nothing changes, and the page says why.
  var signingOut = false;
  function signOut(form) {
    if (signingOut) return Promise.resolve();
    signingOut = true;
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    function fail(error) {
      signingOut = false;
      if (button) button.disabled = false;
      var box = document.getElementById("messages");
      if (!box) return;
      box.innerHTML = "";
      box.appendChild(el("p", error && error.answered
        ? "The server did not sign you out (it answered " + error.answered + "). Nothing has changed on this device: reload the page and try again."
        : "Signing out needs the connection to the server, and it is not there now. Nothing has changed: " +
          "you are still signed in and your work stays on this device. Try again when you are back online.", "message warn"));
    }
    return foldJournals().then(function () { return replayQueued(); }).catch(function () {})
      .then(sessionToken).then(function (session) {
      var body = new URLSearchParams();
      body.set("csrf_token", session.csrf_token || "");
      return fetch("/logout", {
        method: "POST", credentials: "same-origin", body: body,
        headers: { "X-CSRF-Token": session.csrf_token || "" }
      });
    }).then(function (response) {
      if (!response.ok) { var refused = new Error("logout " + response.status); refused.answered = response.status; throw refused; }
      var me = currentAccountId();
      try { localStorage.removeItem(ACCOUNT_KEY); } catch (e) { /* ignore */ }
      return purgePages().then(function () { return forgetSent(me); });
    }).then(function () {
      location.href = "/login";
    }, fail);
  }

  // --- talking to the server
  // A request that never ends (a connection gone quiet) must not hold the outbox lock for
  // ever: it is given up after `ms`, counted as a network failure, and tried again later.
  function timed(url, options, ms) {
    if (typeof AbortController === "undefined") return fetch(url, options);
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, ms);
    return fetch(url, Object.assign({ signal: controller.signal }, options)).finally(function () { clearTimeout(timer); });
  }

  function online() {
    return timed("/api/ping", { cache: "no-store", credentials: "same-origin" }, 15000)
      .then(function (r) { return r.ok; })
      .catch(function () { return false; });
  }

  function sessionToken() {
    return timed("/api/session", { cache: "no-store", credentials: "same-origin" }, 15000)
      .then(function (r) { if (!r.ok) throw new Error("session " + r.status); return r.json(); });
  }

  var failures = 0;
  var timer = null;
  var flushing = null;
  var signInNeeded = false;

  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; flush("timer"); }, ms);
  }

  function backoff() {
    failures += 1;
    var delay = Math.min(MAX_DELAY, 5000 * Math.pow(2, failures - 1));
    schedule(delay * (0.8 + Math.random() * 0.4));
  }

  function setSignIn(needed) {
    signInNeeded = needed;
    document.querySelectorAll("[data-signin-needed]").forEach(function (el) { el.hidden = !needed; });
    refreshBadge();
  }

  var again = null;
  function flush(reason) {
    if (signingOut) return Promise.resolve({ signingOut: true });
    // One already running read the outbox before this call's reason (a new save, say): run
    // once more when it ends, for every caller that asked meanwhile.
    if (flushing) {
      if (!again) again = flushing.then(function () { again = null; return flush(reason); });
      return again;
    }
    var work = function () { return doFlush(reason); };
    var locked = navigator.locks
      ? navigator.locks.request("walkthrough-outbox-flush", work)
      : work();
    flushing = Promise.resolve(locked).finally(function () { flushing = null; });
    return flushing;
  }

  function doFlush() {
    return store.all("outbox").then(function (records) {
      records = records.map(upgradeRecord);
      if (!records.some(function (r) { return r.state === "waiting"; })) return { sent: 0 };
      return online().then(function (up) {
        if (!up) { backoff(); return { offline: true }; }
        return sessionToken().then(function (session) {
          if (!session.user) { setSignIn(true); return { signIn: true }; }
          setSignIn(false);
          var me = session.user.id;
          return noteAccount({ id: me, label: session.user.label }).then(function () {
            return claimUnowned(me);
          }).then(function () { return store.all("outbox"); }).then(function (fresh) {
            var mine = fresh.map(upgradeRecord).filter(function (r) { return r.state === "waiting" && core.isMine(r, me); })
              .sort(function (a, b) { return (a.queued_at || "") < (b.queued_at || "") ? -1 : (a.queued_at || "") > (b.queued_at || "") ? 1 : 0; });
            if (!mine.length) return { sent: 0 };
            var limits = session.sync_limits || core.DEFAULT_LIMITS;
            // Items added from a file go under a device id of their own: an old copy of this
            // device's work is then never taken for its latest (a conflict, kept, if behind).
            var own = mine.filter(function (r) { return !r.from_file; });
            var filed = mine.filter(function (r) { return r.from_file; });
            return deviceId().then(function (device) {
              return (own.length ? sendAll(own, session.csrf_token, device, me, limits) : Promise.resolve({ sent: 0 }))
                .then(function (first) {
                  if (!filed.length || !first || first.sent === undefined) return first;
                  return sendAll(filed, session.csrf_token, "file:" + device, me, limits).then(function (second) {
                    return second && second.sent !== undefined ? { sent: first.sent + second.sent } : second;
                  });
                });
            });
          });
        });
      });
    }).then(function (outcome) {
      if (outcome && outcome.sent !== undefined) {
        failures = 0;
        store.put("meta", { key: "last_sync", value: new Date().toISOString() }).then(changed);
      }
      return outcome;
    }).catch(function () {
      backoff();
      return { error: true };
    });
  }

  // Pushes cut to the server's limits; a 413 (a proxy in front may take less than the server
  // says) splits the push, and an item that can never fit is set aside, shown with a reason,
  // while the items behind it still go.
  function sendAll(waiting, token, device, account, limits) {
    var plan = core.planBatches(waiting, limits, device, account);
    var queue = plan.batches.slice();
    var sent = 0;
    function step() {
      if (!queue.length) return { sent: sent };
      var batch = queue.shift();
      var frozen = batch.map(function (r) { return { id: r.id, seq: r.seq, base_revision: r.base_revision, payload: r.payload }; });
      var body = JSON.stringify({ device_id: device, account_id: account, items: frozen.map(core.pushItem) });
      return timed("/api/sync/push", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: body
      }, 120000).then(function (response) {
        if (response.status === 401) { setSignIn(true); return { signIn: true }; }
        if (response.status === 413) {
          return response.json().catch(function () { return null; }).then(function (answer) {
            var out = core.after413(frozen, limits, core.byteLength(body), answer);
            limits = out.limits;
            var rest = [].concat.apply([], queue);
            var replanned = core.planBatches(rest, limits, device, account);
            queue = out.retry.concat(replanned.batches);
            var refused = out.tooLarge.map(function (r) { return { record: r, bytes: core.byteLength(body) }; });
            return setAside(refused.concat(replanned.tooLarge), limits.max_bytes < core.DEFAULT_LIMITS.max_bytes ? limits.max_bytes : null).then(step);
          });
        }
        if (!response.ok) throw new Error("push " + response.status);
        return response.json().then(function (answer) {
          sent += answer.results.length;
          return applyResults(frozen, answer.results).then(step);
        });
      });
    }
    return setAside(plan.tooLarge, limits.max_bytes).then(step);
  }

  function setAside(tooLarge, maxBytes) {
    return tooLarge.reduce(function (chain, t) {
      return chain.then(function () {
        return store.update("outbox", t.record.id, function (current) {
          if (!current || current.seq !== t.record.seq) return undefined; // edited since: try that
          current.state = "rejected";
          current.reason = core.tooLargeReason(t.bytes, maxBytes);
          return current;
        });
      });
    }, Promise.resolve()).then(function () { if (tooLarge.length) changed(); });
  }

  function applyResults(frozen, results) {
    var bySent = {};
    frozen.forEach(function (r) { bySent[r.id] = r; });
    var now = new Date().toISOString();
    return results.reduce(function (chain, result) {
      return chain.then(function () {
        var sentItem = bySent[result.id];
        if (!sentItem) return null;
        return store.update("outbox", result.id, function (current) {
          return core.outboxAfter(current, sentItem, result);
        }).then(function () {
          return store.update("drafts", result.id, function (draft) {
            return core.draftAfter(draft, sentItem, result, now);
          });
        });
      });
    }, Promise.resolve()).then(changed);
  }

  // --- the badge on every page: waiting count and last successful sync
  function refreshBadge() {
    var badge = document.querySelector("[data-sync-badge]");
    if (!badge) return Promise.resolve();
    return Promise.all([store.all("outbox"), store.get("meta", "last_sync")]).then(function (res) {
      var c = core.counts(res[0], currentAccountId());
      var last = res[1] ? new Date(res[1].value).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : null;
      badge.textContent = core.badgeText(c, signInNeeded, last);
      badge.dataset.waiting = String(c.waiting);
      badge.dataset.others = String(c.others);
      badge.classList.toggle("has-waiting", c.waiting > 0 || c.problems > 0);
    }).catch(function () {});
  }

  // --- wiring
  var api = {
    store: store,
    enqueue: enqueue,
    flush: flush,
    online: online,
    refreshBadge: refreshBadge,
    markQueued: markQueued,
    unmarkQueued: unmarkQueued,
    queueMark: queueMark,
    replayQueued: replayQueued,
    currentAccountId: currentAccountId,
    OUTBOX_FORMAT: OUTBOX_FORMAT
  };

  if (channel) channel.onmessage = function () { refreshBadge(); document.dispatchEvent(new CustomEvent("walkthrough:outbox")); };
  window.addEventListener("online", function () { flush("online"); });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) flush("visible"); });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-sync-now]")) { failures = 0; flush("button"); }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form.signout");
    if (!form || form.dataset.signingOut) return;
    event.preventDefault();
    signOut(form);
  });
  setInterval(function () { if (!timer) flush("interval"); }, 60 * 1000);

  if ("serviceWorker" in navigator) {
    // Checked for a new version at every page load, not only when the browser chooses to
    // (WebKit may wait a day): a rubric version published meanwhile reaches the device's
    // cache the next time it is online.
    // A first install that fails (a fetch lost on a weak network) is tried again while the
    // page stays open: an observer may stay on one capture page for the whole lesson.
    var registerWorker = function (tries) {
      navigator.serviceWorker.register("/sw.js", { scope: "/" })
        .then(function (reg) {
          var installing = reg.installing;
          if (installing && !reg.active && tries > 0) {
            installing.addEventListener("statechange", function () {
              if (installing.state === "redundant" && !reg.active) {
                setTimeout(function () { registerWorker(tries - 1); }, 15000);
              }
            });
          }
          return reg.update();
        })
        .catch(function () { /* offline: the registered worker goes on serving */ });
    };
    registerWorker(3);
    navigator.serviceWorker.addEventListener("message", function (event) {
      if (event.data && event.data.type === "flush") flush("background-sync");
    });
  }
  if (navigator.storage && navigator.storage.persist) {
    navigator.storage.persisted().then(function (yes) { if (!yes) navigator.storage.persist(); }).catch(function () {});
  }

  showWho(storedAccount());
  // Work a page left behind (journal entries, Saves not yet in the outbox) is done first; a
  // capture page does its own observation's (capture.js), and any page skips those that an
  // open capture page holds.
  function leftBehind() {
    if (document.querySelector("[data-capture]")) return Promise.resolve();
    return foldJournals(true).then(function () { return replayQueued(); });
  }
  // A device keeps its copy of what it sent for a month (an older cached edit page must not
  // undo it); after that the copy goes, with the cached page it protects against. Done on
  // the device page, never in the way of a capture or start page.
  function pruneOldCopies() {
    if (!document.querySelector("[data-outbox-page]")) return Promise.resolve();
    var month = new Date(Date.now() - 30 * 24 * 3600 * 1000).toISOString();
    return forgetSent(currentAccountId(), month);
  }
  noteAccount(pageAccount()).then(function () { return claimUnowned(currentAccountId()); })
    .then(leftBehind)
    .then(forgetLeft)
    .then(pruneOldCopies)
    .catch(function () { /* the page still shows and sends what it can */ })
    .then(function () {
      refreshBadge();
      flush("load");
    });

  // --- the device page (/outbox)
  var page = document.querySelector("[data-outbox-page]");
  if (page) outboxPage();

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function outboxPage() {
    var list = document.querySelector("[data-outbox-list]");
    var drafts = document.querySelector("[data-drafts-list]");
    var summary = document.querySelector("[data-outbox-summary]");

    function captureUrl(payload, id) {
      return "/capture/" + encodeURIComponent(payload.rubric_slug) + "/" + payload.rubric_version + "#" + id;
    }

    function render() {
      Promise.all([store.all("outbox"), store.all("drafts"), store.get("meta", "last_sync")]).then(function (res) {
        var me = currentAccountId();
        var everything = res[0], last = res[2];
        var outbox = everything.filter(function (r) { return core.isMine(r, me); });
        var others = everything.length - outbox.length;
        var myDrafts = res[1].filter(function (d) { return core.isMine(d, me); });
        var labels = {};
        var queued = {};
        myDrafts.forEach(function (d) { labels[d.id] = d.label || d.payload.teacher_name; });
        outbox.forEach(function (r) { queued[r.id] = true; });
        var lastText = last ? " Last successful sync: " + new Date(last.value).toLocaleString() + "." : "";
        list.innerHTML = "";
        summary.textContent = outbox.length
          ? outbox.length + " of your observation" + (outbox.length === 1 ? "" : "s") + " not yet stored on the server." + lastText
          : "Everything you recorded on this device is on the server." + lastText;
        var waitingOthers = document.querySelector("[data-others-note]");
        waitingOthers.hidden = !others;
        waitingOthers.textContent = others
          ? others + " observation" + (others === 1 ? " was" : "s were") + " recorded on this device by another account, " +
            "waiting for " + (others === 1 ? "its" : "their") + " author to sign in. They are not shown, and go when that person signs in here."
          : "";
        outbox.forEach(function (r) {
          var li = el("li", null, "outbox-item state-" + r.state);
          li.dataset.id = r.id;
          li.appendChild(el("strong", (labels[r.id] || r.payload.teacher_name || "Observation") + " · " + new Date(r.payload.observed_at).toLocaleString()));
          li.appendChild(el("span", r.state === "waiting" ? " Waiting to be sent" : r.state === "conflict" ? " Conflict" : " Not accepted", "badge"));
          if (r.reason) li.appendChild(el("p", r.reason, "reason"));
          var actions = el("div", null, "row-actions");
          if (r.state === "rejected") {
            var fix = el("a", "Open and fix", "button secondary");
            fix.href = captureUrl(r.payload, r.id);
            actions.appendChild(fix);
          }
          if (r.state === "conflict") {
            var open = el("a", "Compare and choose", "button secondary");
            open.href = "/observations/" + r.id + "/conflicts";
            actions.appendChild(open);
            var done = el("button", "Chosen: remove from this device", "button secondary");
            done.type = "button";
            done.addEventListener("click", function () { store.del("outbox", r.id).then(changed); });
            actions.appendChild(done);
          }
          li.appendChild(actions);
          list.appendChild(li);
        });
        drafts.innerHTML = "";
        myDrafts.filter(function (d) { return d.dirty && !queued[d.id]; }).forEach(function (d) {
          var li = el("li", null, "outbox-item");
          var a = el("a", (d.label || "Observation") + " · " + new Date(d.payload.observed_at).toLocaleString());
          a.href = captureUrl(d.payload, d.id);
          li.appendChild(a);
          if (d.payload.status === "submitted") li.appendChild(el("span", " Submitted", "badge"));
          drafts.appendChild(li);
        });
        if (!drafts.children.length) drafts.appendChild(el("li", "No drafts: everything you started here was saved for sending."));
      });
    }

    // Safari clears a website's storage after 7 days without a visit, unless it was opened
    // from the Home Screen; WebKit may not say how much it stores, or promise to keep it.
    var homeScreen = navigator.standalone === true ||
      (window.matchMedia && window.matchMedia("(display-mode: standalone)").matches);
    var storageNote = document.querySelector("[data-storage]");
    var homeNote = homeScreen
      ? " Opened from the Home Screen: Safari does not clear its storage for want of visits."
      : " Opened in a browser tab: Safari clears a site's storage after 7 days without a visit, so send " +
        "your work (Sync now) before putting the tablet away, or add Walkthrough to the Home Screen.";
    if (navigator.storage && navigator.storage.estimate) {
      Promise.all([navigator.storage.estimate(), navigator.storage.persisted ? navigator.storage.persisted() : false])
        .then(function (res) {
          var used = (res[0].usage || 0) / 1048576, quota = (res[0].quota || 0) / 1048576;
          storageNote.textContent = "Using " + used.toFixed(1) + " MB of " +
            quota.toFixed(0) + " MB. " + (res[1] ? "Storage is persistent: the browser will not clear it on its own."
              : "Storage is not yet persistent: the browser may clear it when space runs low.") + (res[1] ? "" : homeNote);
        });
    } else {
      storageNote.textContent = "This browser does not say how much it stores or whether it will keep it." + homeNote;
    }

    document.querySelector("[data-export]").addEventListener("click", function () {
      Promise.all([store.all("outbox"), deviceId()]).then(function (res) {
        var me = currentAccountId();
        var file = {
          format: OUTBOX_FORMAT, kind: "walkthrough-unsent", exported_at: new Date().toISOString(), device_id: res[1],
          account_id: me,
          items: res[0].filter(function (r) { return core.isMine(r, me); }).map(function (r) { return { id: r.id, base_revision: r.base_revision, payload: r.payload }; })
        };
        var blob = new Blob([JSON.stringify(file, null, 2)], { type: "application/json" });
        var a = el("a");
        a.href = URL.createObjectURL(blob);
        a.download = "walkthrough-unsent-" + new Date().toISOString().slice(0, 10) + ".json";
        document.body.appendChild(a);
        a.click();
        a.remove();
      });
    });

    document.querySelector("[data-import]").addEventListener("change", function (event) {
      var result = document.querySelector("[data-import-result]");
      var file = event.target.files[0];
      if (!file) return;
      file.text().then(function (text) {
        var data = JSON.parse(text);
        if (data.kind !== "walkthrough-unsent" || !Array.isArray(data.items)) throw new Error("not a Walkthrough file");
        var me = currentAccountId();
        if (data.account_id !== undefined && data.account_id !== null && data.account_id !== me) {
          result.textContent = "This file holds another account's observations: nothing was added. " +
            "Ask its author to sign in here and add it, so that they are sent under their name.";
          return null;
        }
        var added = 0, refused = 0;
        return data.items.reduce(function (chain, item) {
          return chain.then(function () {
            return enqueue(item.id, item.base_revision || 0, item.payload, me, true).then(
              function () { added += 1; }, function () { refused += 1; });
          });
        }, Promise.resolve()).then(function () {
          result.textContent = added + " observation(s) added to this device's outbox; sending now." +
            (refused ? " " + refused + " left out: another account's observation with the same id waits on this device." : "");
          return flush("import");
        });
      }).catch(function (error) {
        result.textContent = "This file could not be read: " + error.message;
      });
    });

    document.addEventListener("walkthrough:outbox", render);
    render();
  }
  return api;
})();

export default client;
