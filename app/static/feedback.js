// The teacher's page of shared feedback: a Print button, and text being typed kept in this
// browser until it is saved, so a post that fails (a phone out of signal) loses nothing: the
// text is there again when the page is opened or reloaded.
(function () {
  "use strict";
  var page = "walkthrough-typed:" + location.pathname;
  function load() { try { return JSON.parse(sessionStorage.getItem(page) || "{}"); } catch (e) { return {}; } }
  function save(kept) { try { sessionStorage.setItem(page, JSON.stringify(kept)); } catch (e) { /* full or disabled */ } }
  var kept = load();
  var saved = new URLSearchParams(location.search).get("saved");
  // What was just saved no longer needs keeping.
  var savedFields = { reflect: ["reflection"], acknowledge: ["name", "comment"], reply: ["body"] }[saved] || [];
  savedFields.forEach(function (name) { delete kept[name]; });
  save(kept);
  document.querySelectorAll("[data-keep]").forEach(function (field) {
    var name = field.dataset.keep;
    if (kept[name]) field.value = kept[name]; // typed here and not saved: newer than the page
    field.addEventListener("input", function () { kept[name] = field.value; save(kept); });
  });
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
