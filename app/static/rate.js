// Calibration rating page: each tap is kept on this device and sent to the server; if the
// wifi drops, the ratings wait here and are sent when it returns.
(function () {
  "use strict";
  var form = document.querySelector("[data-rate-form]");
  if (!form) return;
  var key = "walkthrough-ratings-" + form.dataset.code + "-" + form.dataset.round;
  var status = document.querySelector("[data-rate-status]");
  var token = document.querySelector("meta[name=csrf-token]").content;
  var pending = JSON.parse(localStorage.getItem(key) || "{}");
  var timer = null;

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
        if (pending[k] && pending[k].value === item.value) delete pending[k];
      });
      save();
      status.textContent = "Saved.";
    }).catch(function () {
      status.textContent = "Kept on this device; it will be sent when the connection is back.";
      if (!timer) timer = setTimeout(function () { timer = null; send(); }, 5000);
    });
  }

  form.addEventListener("change", function (event) {
    var input = event.target;
    if (input.type !== "radio" || input.name.indexOf("r-") !== 0) return;
    var parts = input.name.slice(2).split("-");
    var stimulus = Number(parts.shift());
    var item = parts.join("-");
    pending[stimulus + "-" + item] = { stimulus_id: stimulus, item_key: item, value: Number(input.value) };
    save();
    send();
  });
  // Ratings kept from an earlier visit (wifi dropped) show up checked and are sent now.
  Object.keys(pending).forEach(function (k) {
    var p = pending[k];
    var radio = document.getElementById("r-" + p.stimulus_id + "-" + p.item_key + "-" + p.value);
    if (radio) radio.checked = true;
  });
  window.addEventListener("online", send);
  send();
})();
