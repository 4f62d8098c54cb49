// Calibration rating page: each tap (and each one-line "why") is kept on this device and sent
// to the server; if the wifi drops, the ratings wait here and are sent when it returns.
(function () {
  "use strict";
  var form = document.querySelector("[data-rate-form]");
  if (!form) return;
  var key = "walkthrough-ratings-" + form.dataset.code + "-" + form.dataset.round;
  var status = document.querySelector("[data-rate-status]");
  var token = document.querySelector("meta[name=csrf-token]").content;
  var pending = JSON.parse(localStorage.getItem(key) || "{}");
  var timer = null;
  var typing = {};

  function save() { localStorage.setItem(key, JSON.stringify(pending)); }

  function send() {
    var items = Object.keys(pending).map(function (k) { return pending[k]; });
    if (!items.length) return Promise.resolve();
    return fetch("/api/calibration/" + form.dataset.code + "/ratings", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify(items)
    }).then(function (response) {
      if (!response.ok) throw new Error("status " + response.status);
      items.forEach(function (item) {
        var k = item.stimulus_id + "-" + item.item_key;
        var p = pending[k];
        if (p && p.value === item.value && p.reason === item.reason) delete pending[k];
      });
      save();
      status.textContent = "Saved.";
    }).catch(function () {
      status.textContent = "Kept on this device; it will be sent when the connection is back.";
      if (!timer) timer = setTimeout(function () { timer = null; send(); }, 5000);
    });
  }

  // The unit's level and its "why", as they are on the page now (null: no level picked yet).
  function unit(unitKey) {
    var checked = form.querySelector('input[type=radio][name="r-' + unitKey + '"]:checked');
    if (!checked) return null;
    var why = document.getElementById("why-" + unitKey);
    var parts = unitKey.split("-");
    var stimulus = Number(parts.shift());
    return {
      stimulus_id: stimulus, item_key: parts.join("-"), value: Number(checked.value),
      reason: why ? why.value : null
    };
  }

  // Kept on the device at once (a reload right after typing loses nothing), then sent.
  function queue(unitKey, later) {
    var u = unit(unitKey);
    if (!u) return;
    pending[unitKey] = u;
    save();
    if (!later) send();
  }

  form.addEventListener("change", function (event) {
    var input = event.target;
    if (input.type === "radio" && input.name.indexOf("r-") === 0) queue(input.name.slice(2));
    if (input.id && input.id.indexOf("why-") === 0) queue(input.id.slice(4));
  });
  // A "why" is sent a moment after typing stops (and on leaving the field, above).
  form.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.id || input.id.indexOf("why-") !== 0) return;
    var unitKey = input.id.slice(4);
    queue(unitKey, true);
    clearTimeout(typing[unitKey]);
    typing[unitKey] = setTimeout(send, 800);
  });
  // Ratings kept from an earlier visit (wifi dropped) show up checked and are sent now.
  Object.keys(pending).forEach(function (k) {
    var p = pending[k];
    var radio = document.getElementById("r-" + p.stimulus_id + "-" + p.item_key + "-" + p.value);
    if (radio) radio.checked = true;
    var why = document.getElementById("why-" + p.stimulus_id + "-" + p.item_key);
    if (why && typeof p.reason === "string") why.value = p.reason;
  });
  window.addEventListener("online", send);
  send();
})();
