// Walkthrough offline client: the device's store (IndexedDB), the outbox and its sync with
// the server, the "waiting / last sync" badge, and the service worker. Loaded on every page
// of a signed-in person. Rules it keeps (see docs/sync.md):
//  - an item leaves the outbox only after the server answered created, updated or duplicate;
//  - a record being sent is frozen: an edit made meanwhile is kept and rebased, never lost;
//  - connectivity is a real request to /api/ping, never navigator.onLine alone;
//  - a 401 keeps everything and asks the person to sign in again.
(function () {
  "use strict";

  var DB_NAME = "walkthrough";
  var DB_VERSION = 1;
  var OUTBOX_FORMAT = 1; // bump with a migration in upgradeRecord(), never drop old records
  var BATCH = 100;
  var MAX_DELAY = 5 * 60 * 1000;

  // --- IndexedDB, reopened whenever the browser closes it (iPadOS does under memory pressure)
  var dbPromise = null;

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
        Promise.resolve(work(tx)).then(function (value) { result = value; });
        tx.oncomplete = function () { resolve(result); };
        tx.onerror = function () { reject(tx.error); };
        tx.onabort = function () { reject(tx.error || new Error("transaction aborted")); };
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
  function enqueue(id, baseRevision, payload) {
    return store.update("outbox", id, function (current) {
      var seq = current ? current.seq + 1 : 1;
      return {
        format: OUTBOX_FORMAT,
        id: id,
        base_revision: current && current.state === "waiting" && current.base_revision > baseRevision
          ? current.base_revision : baseRevision,
        payload: payload,
        seq: seq,
        state: "waiting",
        reason: null,
        queued_at: new Date().toISOString()
      };
    }).then(function (record) {
      changed();
      if ("serviceWorker" in navigator && navigator.serviceWorker.ready) {
        navigator.serviceWorker.ready.then(function (reg) {
          if (reg.sync) reg.sync.register("walkthrough-outbox").catch(function () {});
        });
      }
      return record;
    });
  }

  // --- talking to the server
  function online() {
    return fetch("/api/ping", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok; })
      .catch(function () { return false; });
  }

  function sessionToken() {
    return fetch("/api/session", { cache: "no-store", credentials: "same-origin" })
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

  function flush(reason) {
    if (flushing) return flushing;
    var work = function () { return doFlush(reason); };
    var locked = navigator.locks
      ? navigator.locks.request("walkthrough-outbox-flush", work)
      : work();
    flushing = Promise.resolve(locked).finally(function () { flushing = null; });
    return flushing;
  }

  function doFlush() {
    return store.all("outbox").then(function (records) {
      var waiting = records.map(upgradeRecord).filter(function (r) { return r.state === "waiting"; });
      if (!waiting.length) return { sent: 0 };
      return online().then(function (up) {
        if (!up) { backoff(); return { offline: true }; }
        return sessionToken().then(function (session) {
          if (!session.user) { setSignIn(true); return { signIn: true }; }
          setSignIn(false);
          return deviceId().then(function (device) {
            return sendBatches(waiting, session.csrf_token, device);
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

  function sendBatches(waiting, token, device) {
    var sent = 0;
    var batches = [];
    for (var i = 0; i < waiting.length; i += BATCH) batches.push(waiting.slice(i, i + BATCH));
    return batches.reduce(function (chain, batch) {
      return chain.then(function (stop) {
        if (stop) return stop;
        var frozen = batch.map(function (r) { return { id: r.id, seq: r.seq, base_revision: r.base_revision, payload: r.payload }; });
        return fetch("/api/sync/push", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
          body: JSON.stringify({
            device_id: device,
            items: frozen.map(function (r) { return { id: r.id, base_revision: r.base_revision, payload: r.payload }; })
          })
        }).then(function (response) {
          if (response.status === 401) { setSignIn(true); return { signIn: true }; }
          if (!response.ok) throw new Error("push " + response.status);
          return response.json().then(function (body) {
            sent += body.results.length;
            return applyResults(frozen, body.results).then(function () { return null; });
          });
        });
      });
    }, Promise.resolve(null)).then(function (stop) {
      if (stop) return stop;
      return { sent: sent };
    });
  }

  function applyResults(frozen, results) {
    var bySent = {};
    frozen.forEach(function (r) { bySent[r.id] = r; });
    return results.reduce(function (chain, result) {
      return chain.then(function () {
        var sentItem = bySent[result.id];
        if (!sentItem) return null;
        var done = result.status === "created" || result.status === "updated" || result.status === "duplicate";
        return store.update("outbox", result.id, function (current) {
          if (!current) return undefined;
          if (done) {
            if (current.seq === sentItem.seq) return null; // what we sent is stored: remove
            current.base_revision = result.revision; // edited while sending: rebase and keep
            return current;
          }
          if (current.seq !== sentItem.seq) return undefined; // a newer edit will be sent
          current.state = result.status; // conflict or rejected: kept, shown, fixable
          current.reason = result.reason;
          current.server_revision = result.revision;
          return current;
        }).then(function () {
          if (!done) return null;
          return store.update("drafts", result.id, function (draft) {
            if (!draft) return undefined;
            draft.base_revision = Math.max(draft.base_revision || 0, result.revision);
            draft.synced_at = new Date().toISOString();
            return draft;
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
      var waiting = res[0].filter(function (r) { return r.state === "waiting"; }).length;
      var problems = res[0].length - waiting;
      var last = res[1] ? new Date(res[1].value) : null;
      var text = waiting ? waiting + " waiting" : "All sent";
      if (problems) text += " · " + problems + " need attention";
      if (signInNeeded) text += " · sign in to send";
      text += last ? " · last sync " + last.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : " · not synced yet";
      badge.textContent = text;
      badge.dataset.waiting = String(waiting);
      badge.classList.toggle("has-waiting", waiting > 0 || problems > 0);
    }).catch(function () {});
  }

  // --- wiring
  window.Walkthrough = {
    store: store,
    enqueue: enqueue,
    flush: flush,
    online: online,
    refreshBadge: refreshBadge,
    OUTBOX_FORMAT: OUTBOX_FORMAT
  };

  if (channel) channel.onmessage = function () { refreshBadge(); document.dispatchEvent(new CustomEvent("walkthrough:outbox")); };
  window.addEventListener("online", function () { flush("online"); });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) flush("visible"); });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-sync-now]")) { failures = 0; flush("button"); }
  });
  setInterval(function () { if (!timer) flush("interval"); }, 60 * 1000);

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
    navigator.serviceWorker.addEventListener("message", function (event) {
      if (event.data && event.data.type === "flush") flush("background-sync");
    });
  }
  if (navigator.storage && navigator.storage.persist) {
    navigator.storage.persisted().then(function (yes) { if (!yes) navigator.storage.persist(); }).catch(function () {});
  }

  refreshBadge();
  flush("load");

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
        var outbox = res[0], allDrafts = res[1], last = res[2];
        var labels = {};
        allDrafts.forEach(function (d) { labels[d.id] = d.label || d.payload.teacher_name; });
        list.innerHTML = "";
        summary.textContent = outbox.length
          ? outbox.length + " observation" + (outbox.length === 1 ? "" : "s") + " not yet stored on the server." +
            (last ? " Last successful sync: " + new Date(last.value).toLocaleString() + "." : "")
          : "Everything recorded on this device is on the server." +
            (last ? " Last successful sync: " + new Date(last.value).toLocaleString() + "." : "");
        outbox.forEach(function (r) {
          var li = el("li", null, "outbox-item state-" + r.state);
          li.dataset.id = r.id;
          li.appendChild(el("strong", (labels[r.id] || "Observation") + " · " + new Date(r.payload.observed_at).toLocaleString()));
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
        allDrafts.filter(function (d) { return d.dirty; }).forEach(function (d) {
          var li = el("li", null, "outbox-item");
          var a = el("a", (d.label || "Observation") + " · " + new Date(d.payload.observed_at).toLocaleString());
          a.href = captureUrl(d.payload, d.id);
          li.appendChild(a);
          drafts.appendChild(li);
        });
        if (!drafts.children.length) drafts.appendChild(el("li", "No unsaved drafts."));
      });
    }

    if (navigator.storage && navigator.storage.estimate) {
      Promise.all([navigator.storage.estimate(), navigator.storage.persisted ? navigator.storage.persisted() : false])
        .then(function (res) {
          var used = (res[0].usage || 0) / 1048576, quota = (res[0].quota || 0) / 1048576;
          document.querySelector("[data-storage]").textContent = "Using " + used.toFixed(1) + " MB of " +
            quota.toFixed(0) + " MB. " + (res[1] ? "Storage is persistent: the browser will not clear it on its own."
              : "Storage is not yet persistent: the browser may clear it when space runs low.");
        });
    }

    document.querySelector("[data-export]").addEventListener("click", function () {
      Promise.all([store.all("outbox"), deviceId()]).then(function (res) {
        var file = {
          format: OUTBOX_FORMAT, kind: "walkthrough-unsent", exported_at: new Date().toISOString(), device_id: res[1],
          items: res[0].map(function (r) { return { id: r.id, base_revision: r.base_revision, payload: r.payload }; })
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
        return data.items.reduce(function (chain, item) {
          return chain.then(function () { return enqueue(item.id, item.base_revision || 0, item.payload); });
        }, Promise.resolve()).then(function () {
          result.textContent = data.items.length + " observation(s) added to this device's outbox; sending now.";
          return flush("import");
        });
      }).catch(function (error) {
        result.textContent = "This file could not be read: " + error.message;
      });
    });

    document.addEventListener("walkthrough:outbox", render);
    render();
  }
})();
