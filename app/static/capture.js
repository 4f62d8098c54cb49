// The start and capture pages, local-first. Without JavaScript both are plain forms that post
// to the server; with it, every change is kept on this device within a fraction of a second
// and observations reach the server through the outbox (offline.js), online or not.
import W from "./offline.js";
import WC from "./outbox-core.js";

(function () {
  "use strict";

  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  var AUTOSAVE_MS = 300;      // typing is saved to IndexedDB this long after the last key…
  var AUTOSAVE_MAX_MS = 1000; // …and never later than this after the first unsaved one
  var JOURNAL = "walkthrough-journal:";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // ------------------------------------------------------------------ start page
  var start = $("[data-start-form]");
  if (start) {
    var offset = $("[data-tz-offset]", start);
    var when = $("[data-now]", start);
    var now = new Date();
    offset.value = String(now.getTimezoneOffset());
    var local = new Date(now.getTime() - now.getTimezoneOffset() * 60000);
    when.value = local.toISOString().slice(0, 16);
    var search = $("[data-roster-search]", start);
    if (search) searchRosterAsTyped(search);
    if (W) {
      start.addEventListener("submit", function (event) {
        event.preventDefault();
        startLocally(start).catch(function () { start.submit(); });
      });
    }
  }

  // A district's roster (thousands of teachers) is searched on the server as one types; the
  // matches fill the suggestions and join the page's roster, so a chosen name finds its id.
  function searchRosterAsTyped(input) {
    var list = $("#" + input.getAttribute("list"));
    var rosterScript = $("#roster-json");
    var timer = null;
    var asked = "";
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = input.value.trim();
        if (q.length < 2 || q === asked) return;
        asked = q;
        // The whole district: a chosen teacher brings their own school along.
        fetch("/api/roster/search?q=" + encodeURIComponent(q),
              { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : { teachers: [] }; })
          .then(function (found) {
            if (q !== asked) return; // a later search is on its way
            var roster = JSON.parse(rosterScript.textContent);
            var known = {};
            roster.forEach(function (t) { known[t.id] = true; });
            list.textContent = "";
            found.teachers.forEach(function (t) {
              var option = document.createElement("option");
              option.value = t.name;
              option.textContent = t.school + (t.grades.length ? " · grades " + t.grades.join(", ") : "");
              list.appendChild(option);
              if (!known[t.id]) roster.push({ id: t.id, name: t.name, school_id: t.school_id });
            });
            rosterScript.textContent = JSON.stringify(roster);
          })
          .catch(function () { /* offline: a typed name still starts the walk-through */ });
      }, 200);
    });
  }

  function startLocally(form) {
    var data = new FormData(form);
    var rubric = String(data.get("rubric") || "").split(":");
    var name = String(data.get("teacher") || "").trim();
    var schoolId = Number(data.get("school_id")) || null;
    var roster = JSON.parse($("#roster-json").textContent);
    var matches = roster.filter(function (t) { return t.name.toLowerCase() === name.toLowerCase(); });
    if (matches.length > 1) matches = matches.filter(function (t) { return t.school_id === schoolId; });
    var teacher = matches.length === 1 ? matches[0] : null;
    var observedAt = new Date(String(data.get("observed_at")));
    if (!name || rubric.length !== 2 || isNaN(observedAt.getTime())) {
      return Promise.reject(new Error("let the server explain what is missing"));
    }
    var id = crypto.randomUUID(); // minted on the device, when the observation starts
    var payload = {
      rubric_slug: rubric[0],
      rubric_version: Number(rubric[1]),
      teacher_id: teacher ? teacher.id : null,
      teacher_name: teacher ? "" : name,
      school_id: teacher ? teacher.school_id : schoolId,
      grade: String(data.get("grade") || ""),
      subject: String(data.get("subject") || ""),
      observed_at: observedAt.toISOString(),
      duration_seconds: null,
      status: "draft",
      values: {},
      notes: [],
      tags: [],
      overall_notes: ""
    };
    var owner = W.currentAccountId();
    if (owner === null) return Promise.reject(new Error("nobody noted as signed in: use the server"));
    var draft = {
      format: W.OUTBOX_FORMAT, id: id, base_revision: 0, payload: payload, dirty: true, owner: owner,
      label: teacher ? teacher.name : name, updated_at: new Date().toISOString()
    };
    return W.store.put("drafts", draft).then(function () {
      location.href = "/capture/" + encodeURIComponent(rubric[0]) + "/" + rubric[1] + "#" + id;
    });
  }

  // ------------------------------------------------------------------ capture page
  var form = $("[data-capture]");
  if (!form) return;

  var mode = form.dataset.mode; // "server": an observation the server sent; "shell": offline page
  var saveStatus = $("[data-save-status]", form);
  var timerEl = $("[data-timer]", form);
  var obsId = mode === "server" ? form.dataset.obsId : location.hash.slice(1);
  var startedAt = form.dataset.startedAt ? new Date(form.dataset.startedAt) : new Date();
  // The start form gives the visit's time to the minute, so a visit begun just now would
  // open at 0:25. Within two minutes of that time the timer counts from this observation's
  // first opening on the device instead.
  var timerKey = "walkthrough-timer-" + obsId;
  var firstOpen = Number(localStorage.getItem(timerKey)) || 0;
  if (!firstOpen) {
    firstOpen = Date.now();
    try { localStorage.setItem(timerKey, String(firstOpen)); } catch (e) { /* storage full */ }
  }
  function visitStart(observedAt) {
    var lead = firstOpen - observedAt.getTime();
    return lead >= 0 && lead < 120000 ? new Date(firstOpen) : observedAt;
  }
  startedAt = visitStart(startedAt);
  form.dataset.lessonStart = String(startedAt.getTime()); // the lesson timer, for participation.js
  var draft = null;
  var pending = null;
  var pendingTimer = null;
  var readOnly = false;

  function elapsedSeconds() {
    return Math.max(0, Math.floor((Date.now() - startedAt.getTime()) / 1000));
  }

  function tick() {
    var s = elapsedSeconds();
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var text = (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
    timerEl.textContent = s < 86400 ? text : "—";
  }
  tick();
  setInterval(tick, 1000);

  // Tally buttons: large + and − beside the number.
  form.addEventListener("click", function (event) {
    var button = event.target.closest("[data-step]");
    if (!button || readOnly) return;
    var input = button.parentElement.querySelector("input[type=number]");
    var max = input.max ? Number(input.max) : Infinity;
    var next = Math.min(max, Math.max(0, (Number(input.value) || 0) + Number(button.dataset.step)));
    input.value = String(next);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // A typed tally outside its range is corrected where it is typed, with a word why (the
  // browser's own bubble would hide under the sticky header at submit).
  form.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.closest || !input.closest("[data-tally]") || input.type !== "number") return;
    var max = input.max ? Number(input.max) : Infinity;
    var typed = Number(input.value);
    var note = input.closest("[data-tally]").parentElement.querySelector("[data-tally-note]");
    var fixed = !isFinite(typed) || input.value === "" ? 0 : Math.min(max, Math.max(0, Math.round(typed)));
    if (note) {
      note.textContent = fixed === typed ? "" :
        (typed < 0 ? "A count cannot be below 0: set to 0." : typed > max ? "At most " + max + ": set to " + max + "." : "Counts are whole numbers: set to " + fixed + ".");
    }
    if (fixed !== typed || input.value === "") {
      input.value = String(fixed);
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });

  // Timed notes: a new row stamped with the current minute of the lesson.
  var notes = $("[data-notes]", form);
  var addNote = $("[data-add-note]", form);
  var blank = $("[data-blank-note]", form);
  var noteTemplate = blank.cloneNode(true);
  noteTemplate.removeAttribute("data-blank-note");
  addNote.hidden = false;
  addNote.addEventListener("click", function () {
    var row = noteTemplate.cloneNode(true);
    $(".minute", row).value = String(Math.floor(elapsedSeconds() / 60));
    $("textarea", row).value = "";
    notes.appendChild(row);
    $("textarea", row).focus();
  });

  var duration = $("[data-duration]", form);
  if (!W) {
    // No storage script (should not happen when signed in): keep the plain form, fill duration.
    form.addEventListener("submit", function () {
      var minutes = Math.round(elapsedSeconds() / 60);
      if (duration && !duration.value && minutes <= 240) duration.value = String(minutes);
    });
    // Nothing to fill from the device: a map works on what the server sent.
    $$("input[data-participation]", form).forEach(function (map) { map.dispatchEvent(new Event("walkthrough:filled")); });
    return;
  }

  // --- reading and writing the form
  function itemCards() { return $$("fieldset.item-card", form); }

  function readForm(base) {
    var payload = JSON.parse(JSON.stringify(base));
    var values = {};
    itemCards().forEach(function (card) {
      var key = card.id.replace(/^item-/, "");
      var entry = {};
      var evidence = $("[name='evidence-" + key + "']", card);
      entry.evidence = evidence ? evidence.value : "";
      var radios = $$("input[type=radio][name='item-" + key + "']", card);
      var number = $("input[type=number][name='item-" + key + "']", card);
      var checkbox = $("input[type=checkbox][name='item-" + key + "']", card);
      var text = $("textarea[name='item-" + key + "']", card);
      var map = $("input[data-participation]", card);
      if (map) {
        if (map.value) entry.value = JSON.parse(map.value);
      } else if (radios.length) {
        var chosen = radios.filter(function (r) { return r.checked; })[0];
        if (chosen && chosen.value === "na") entry.not_observed = true;
        else if (chosen && chosen.value !== "") entry.value = Number(chosen.value);
      } else if (number) {
        if (number.value !== "" && /^\d+$/.test(number.value)) entry.value = Number(number.value);
      } else if (checkbox) {
        entry.value = checkbox.checked;
      } else if (text && text.value.trim() !== "") {
        entry.value = text.value;
      }
      if (entry.value !== undefined || entry.not_observed || entry.evidence) {
        if (entry.value === undefined) entry.value = null;
        entry.not_observed = !!entry.not_observed;
        values[key] = entry;
      }
    });
    payload.values = values;
    var minutes = $$("input[name=note_minute]", form);
    var texts = $$("textarea[name=note_text]", form);
    payload.notes = [];
    texts.forEach(function (t, i) {
      if (t.value.trim()) payload.notes.push({ minute: Number(minutes[i].value) || 0, text: t.value.trim() });
    });
    payload.tags = $("#tags", form).value.split(",").map(function (t) { return t.trim(); })
      .filter(function (t, i, all) { return t && all.indexOf(t) === i; });
    payload.overall_notes = $("#overall_notes", form).value;
    payload.duration_seconds = duration.value !== "" && /^\d+$/.test(duration.value) ? Number(duration.value) * 60 : null;
    return payload;
  }

  function fillForm(payload) {
    itemCards().forEach(function (card) {
      var key = card.id.replace(/^item-/, "");
      var entry = (payload.values || {})[key] || {};
      var evidence = $("[name='evidence-" + key + "']", card);
      if (evidence) {
        evidence.value = entry.evidence || "";
        if (entry.evidence) evidence.closest("details").open = true;
      }
      var radios = $$("input[type=radio][name='item-" + key + "']", card);
      var number = $("input[type=number][name='item-" + key + "']", card);
      var checkbox = $("input[type=checkbox][name='item-" + key + "']", card);
      var text = $("textarea[name='item-" + key + "']", card);
      var map = $("input[data-participation]", card);
      if (map) {
        map.value = entry.value && typeof entry.value === "object" ? JSON.stringify(entry.value) : "";
        map.dispatchEvent(new Event("walkthrough:filled"));
        return;
      }
      var wanted = entry.not_observed ? "na" : (entry.value === null || entry.value === undefined ? "" : String(entry.value));
      if (radios.length) radios.forEach(function (r) { r.checked = r.value === wanted; });
      else if (number) number.value = wanted === "" ? "0" : wanted;
      else if (checkbox) checkbox.checked = entry.value === true;
      else if (text) text.value = wanted;
    });
    $$(".note-row", notes).forEach(function (row) { row.remove(); });
    (payload.notes || []).concat([{ minute: Math.floor(elapsedSeconds() / 60), text: "" }]).forEach(function (note) {
      var row = noteTemplate.cloneNode(true);
      $(".minute", row).value = String(note.minute);
      $("textarea", row).value = note.text;
      notes.appendChild(row);
    });
    $("#tags", form).value = (payload.tags || []).join(", ");
    $("#overall_notes", form).value = payload.overall_notes || "";
    duration.value = payload.duration_seconds ? String(Math.round(payload.duration_seconds / 60)) : "";
  }

  function say(text) { saveStatus.textContent = text; }

  function clock() { return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }

  // --- keeping every change on the device
  // Every change goes at once into a synchronous journal (localStorage), which survives a
  // reload, a closed tab or a nav link tapped a moment later, and then into IndexedDB: taps at
  // once, typing within AUTOSAVE_MS (at most AUTOSAVE_MAX_MS). The journal entry is removed
  // when IndexedDB has the same state; a page that loads and finds one newer than its draft
  // takes it (see load).
  var firstUnsaved = 0;

  function journal() {
    if (!draft || readOnly) return null;
    draft.payload = readForm(draft.payload);
    draft.updated_at = new Date().toISOString();
    var entry = { at: draft.updated_at, base_revision: draft.base_revision, owner: draft.owner, payload: draft.payload };
    try { localStorage.setItem(JOURNAL + obsId, JSON.stringify(entry)); } catch (e) { /* full or disabled: IndexedDB still gets it */ }
    return entry;
  }

  function saveDraft() {
    if (!draft || readOnly) return Promise.resolve();
    if (pendingTimer) { clearTimeout(pendingTimer); pendingTimer = null; }
    firstUnsaved = 0;
    var entry = journal();
    draft.dirty = true;
    var snapshot = JSON.parse(JSON.stringify(draft));
    pending = W.store.update("drafts", obsId, function (stored) {
      // The sync may have moved the base revision on since this page loaded.
      if (stored && stored.base_revision > snapshot.base_revision) snapshot.base_revision = stored.base_revision;
      return snapshot;
    }).then(function (saved) {
      draft.base_revision = saved.base_revision;
      try {
        var kept = JSON.parse(localStorage.getItem(JOURNAL + obsId) || "null");
        if (kept && entry && kept.at === entry.at) localStorage.removeItem(JOURNAL + obsId);
      } catch (e) { /* a journal entry left behind is read, and removed, on the next load */ }
      say("Saved on this device at " + clock());
    });
    return pending;
  }

  function scheduleSave() {
    if (readOnly || !draft) return;
    journal();
    var now = Date.now();
    if (!firstUnsaved) firstUnsaved = now;
    if (pendingTimer) clearTimeout(pendingTimer);
    var wait = Math.max(0, Math.min(AUTOSAVE_MS, firstUnsaved + AUTOSAVE_MAX_MS - now));
    pendingTimer = setTimeout(saveDraft, wait);
  }

  function isTap(target) {
    return target && (target.type === "radio" || target.type === "checkbox" || target.type === "number");
  }

  // The final save waits for any autosave still pending, then writes the latest state.
  function finalSave() {
    return Promise.resolve(pending).catch(function () {}).then(saveDraft);
  }

  form.addEventListener("input", function (event) { if (isTap(event.target)) saveDraft(); else scheduleSave(); });
  form.addEventListener("change", function () { if (draft && !readOnly) saveDraft(); });
  window.addEventListener("pagehide", function () { if (pendingTimer) saveDraft(); });
  document.addEventListener("visibilitychange", function () { if (document.hidden && pendingTimer) saveDraft(); });

  // --- sending
  function queueAndSend(status) {
    var mark = W.markQueued(obsId, status); // done by the next page load if this one is left
    return finalSave().then(function () {
      if (status) draft.payload.status = status;
      return W.store.put("drafts", draft);
    }).then(function () {
      return W.enqueue(obsId, draft.base_revision, draft.payload, draft.owner);
    }).then(function () {
      W.unmarkQueued(obsId, mark);
      return W.flush("save");
    }).then(function () {
      return W.store.get("outbox", obsId);
    });
  }

  function outcome(record, submitted) {
    if (!record) {
      return W.store.update("drafts", obsId, function (d) { if (d) { d.dirty = false; } return d || undefined; })
        .then(function () {
          if (submitted) location.href = "/observations/" + obsId + "?submitted=1";
          else say("Saved and sent to the server at " + clock() + ".");
        });
    }
    if (record.state === "conflict") {
      say("The server has a newer version. Both are kept: open the observation to choose.");
    } else if (record.state === "rejected") {
      say("The server did not accept this observation: " + record.reason);
    } else if (submitted) {
      showSubmitted(true);
      review.hidden = true;
      say("Submitted and saved on this device at " + clock() +
        ". It will be sent automatically when the connection is back; nothing more to do here.");
      var next = $("[data-next-walkthrough]", form);
      next.hidden = false;
      $("a", next).focus();
    } else {
      say("Saved on this device at " + clock() + ". It will be sent automatically when the connection is back.");
    }
    return null;
  }

  // A submitted observation says so; changing it is an amendment, made through the review.
  var submitted = false;
  function showSubmitted(yes) {
    submitted = yes;
    $("[data-submitted-note]", form).hidden = !yes;
    var status = $("[data-status]", form);
    if (status) { status.textContent = yes ? "Submitted" : "Draft"; status.className = yes ? "status-submitted" : "status-draft"; }
    $$("[data-save-draft]", form).forEach(function (b) { b.hidden = yes; });
    $("[data-review-button]", form).textContent = yes ? "Review the amendment" : "Review and submit";
    $("[data-submit]", review).textContent = yes ? "Submit the amendment" : "Submit observation";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (readOnly || !draft) return;
    var action = event.submitter ? event.submitter.value : "draft";
    if (action === "review" || submitted) { // a submitted observation is amended through review
      finalSave().then(showReview);
      return;
    }
    queueAndSend(null).then(function (record) { return outcome(record, false); });
  });

  var review = $("[data-review]", form);
  function showReview() {
    var missing = $("[data-review-missing]", review);
    missing.innerHTML = "";
    var values = draft.payload.values || {};
    var unrated = itemCards().filter(function (card) {
      var key = card.id.replace(/^item-/, "");
      if ($("[data-tally]", card) || $("input[type=checkbox]", card)) return false;
      var entry = values[key];
      return !entry || ((entry.value === null || entry.value === undefined || entry.value === "") && !entry.not_observed);
    });
    unrated.forEach(function (card) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "#" + card.id;
      a.textContent = $("legend", card).textContent + ($("input[data-participation]", card) ? " (no map laid out)" : "");
      a.addEventListener("click", function (e) {
        e.preventDefault();
        card.scrollIntoView();
        var first = $("input:not([type=hidden]), textarea, button", card);
        if (first) first.focus();
      });
      li.appendChild(a);
      missing.appendChild(li);
    });
    $("[data-review-title]", review).textContent = unrated.length
      ? unrated.length + " item" + (unrated.length === 1 ? "" : "s") + " without a rating"
      : "Every item has a rating";
    review.hidden = false;
    review.focus();
    review.scrollIntoView();
  }
  $("[data-review-back]", review).addEventListener("click", function () { review.hidden = true; });
  $("[data-submit]", review).addEventListener("click", function () {
    queueAndSend("submitted").then(function (record) { return outcome(record, true); });
  });

  // --- one draft, one tab: a second tab on the same observation is read-only
  // Read-only, with the one message that says why (another tab, another account, not here).
  function makeReadOnly(why) {
    readOnly = true;
    $(why, form).hidden = false;
    $$("input, textarea, select, button", form).forEach(function (el) { el.disabled = true; });
  }

  function claim(id) {
    if (navigator.locks) {
      return new Promise(function (resolve) {
        navigator.locks.request("walkthrough-draft-" + id, { ifAvailable: true }, function (lock) {
          resolve(!!lock);
          if (lock) return new Promise(function () {}); // held while this page lives
          return null;
        });
      });
    }
    if (!("BroadcastChannel" in window)) return Promise.resolve(true);
    return new Promise(function (resolve) {
      var bc = new BroadcastChannel("walkthrough-draft-" + id);
      var taken = false;
      bc.onmessage = function (e) {
        if (e.data === "who") bc.postMessage("mine");
        if (e.data === "mine") taken = true;
      };
      bc.postMessage("who");
      setTimeout(function () { resolve(!taken); }, 150);
    });
  }

  // --- loading
  function load() {
    if (!UUID.test(obsId)) {
      makeReadOnly("[data-missing]");
      return Promise.resolve();
    }
    var me = W.currentAccountId();
    return claim(obsId).then(function (mine) {
      return Promise.all([W.store.get("drafts", obsId), W.store.get("outbox", obsId)]).then(function (found) {
        var stored = found[0];
        var queued = found[1];
        // Another account's work on this shared device is never shown or edited here.
        // (A record with no owner yet predates owners: offline.js gives it to this person.)
        var notMine = function (r) { return r && r.owner !== undefined && r.owner !== null && r.owner !== me; };
        var othersWork = notMine(stored) || notMine(queued);
        // (Its unsent changes would also be overwritten, or conflict, if edited from the server.)
        if (othersWork) {
          makeReadOnly("[data-other-account]");
          return;
        }
        if (mode === "server") {
          var serverRevision = Number(form.dataset.baseRevision);
          var serverPayload = JSON.parse($("#server-payload").textContent);
          if (queued) {
            draft = { format: W.OUTBOX_FORMAT, id: obsId, base_revision: queued.base_revision, payload: queued.payload, dirty: true };
            say("Showing this device's changes that are waiting to be sent.");
          } else if (stored && stored.dirty && stored.base_revision >= serverRevision) {
            draft = stored;
            say("Restored changes kept on this device.");
          } else if (stored && stored.base_revision > serverRevision) {
            // This page is an older copy (the device's cache, offline) than what this device
            // already sent: the device's state is the newer one, never the page's.
            draft = stored;
          } else {
            draft = { format: W.OUTBOX_FORMAT, id: obsId, base_revision: serverRevision, payload: serverPayload, dirty: false };
          }
          draft.label = $("[data-teacher]", form).textContent;
          draft.owner = me;
        } else {
          if (!stored) {
            $("[data-server-link]", form).href = "/observations/" + obsId;
            makeReadOnly("[data-missing]");
            return;
          }
          draft = stored;
          if (queued && queued.seq && queued.payload && !stored.dirty) draft.payload = queued.payload;
          $("[data-teacher]", form).textContent = stored.label || stored.payload.teacher_name || "Observation";
          var p = stored.payload;
          $("[data-context]", form).textContent = [$("[data-context]", form).textContent]
            .concat(p.grade ? ["Grade " + p.grade] : []).concat(p.subject ? [p.subject] : []).join(" · ");
          document.title = (stored.label || "Observation") + " · Walkthrough";
          startedAt = visitStart(new Date(p.observed_at));
          form.dataset.lessonStart = String(startedAt.getTime());
          tick();
        }
        var kept = null;
        try { kept = JSON.parse(localStorage.getItem(JOURNAL + obsId) || "null"); } catch (e) { kept = null; }
        var folded = mine ? WC.foldEntry(draft, kept) : undefined;
        if (folded) {
          draft = folded;
          say("Restored the last changes made on this device.");
        }
        // A Save (or Submit) an earlier visit of this page made but could not finish: its
        // status shows here, and the outbox gets it once this draft is stored.
        var mark = mine ? W.queueMark(obsId) : null;
        if (mark && mark.status) draft.payload.status = mark.status;
        fillForm(draft.payload);
        showSubmitted(draft.payload.status === "submitted");
        if (!mine) { makeReadOnly("[data-other-tab]"); return; }
        return W.store.put("drafts", draft).then(function () {
          if (kept) { try { localStorage.removeItem(JOURNAL + obsId); } catch (e) { /* ignore */ } }
          if (mark) return W.replayQueued([obsId]);
        });
      });
    });
  }

  // Another observation's address on this same page (only the part after # changed): save
  // this one, then load the page afresh for the other, never showing one under the other's id.
  window.addEventListener("hashchange", function () {
    finalSave().then(function () { location.reload(); }, function () { location.reload(); });
  });

  load();
})();
