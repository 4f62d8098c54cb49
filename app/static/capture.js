// Progressive enhancement for the start and capture pages: everything works without it.
(function () {
  "use strict";

  // Start form: the device's own clock and offset decide the start time.
  var start = document.querySelector("[data-start-form]");
  if (start) {
    var offset = start.querySelector("[data-tz-offset]");
    var when = start.querySelector("[data-now]");
    var now = new Date();
    offset.value = String(now.getTimezoneOffset());
    if (when && !when.dataset.touched) {
      var local = new Date(now.getTime() - now.getTimezoneOffset() * 60000);
      when.value = local.toISOString().slice(0, 16);
    }
  }

  var form = document.querySelector("[data-capture]");
  if (!form) return;
  var startedAt = new Date(form.dataset.startedAt);

  function elapsedSeconds() {
    return Math.max(0, Math.floor((Date.now() - startedAt.getTime()) / 1000));
  }

  // Running timer since the observation started.
  var timer = form.querySelector("[data-timer]");
  function tick() {
    var s = elapsedSeconds();
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var text = (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
    if (timer) timer.textContent = s < 86400 ? text : "—";
  }
  tick();
  setInterval(tick, 1000);

  // Tally buttons: large + and − beside the number.
  form.addEventListener("click", function (event) {
    var button = event.target.closest("[data-step]");
    if (!button) return;
    var input = button.parentElement.querySelector("input[type=number]");
    var max = input.max ? Number(input.max) : Infinity;
    var next = Math.min(max, Math.max(0, (Number(input.value) || 0) + Number(button.dataset.step)));
    input.value = String(next);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // Timed notes: a new row stamped with the current minute of the lesson.
  var notes = form.querySelector("[data-notes]");
  var addNote = form.querySelector("[data-add-note]");
  var blank = form.querySelector("[data-blank-note]");
  if (addNote && blank) {
    var template = blank.cloneNode(true);
    blank.querySelector(".minute").value = String(Math.floor(elapsedSeconds() / 60));
    addNote.hidden = false;
    addNote.addEventListener("click", function () {
      var row = template.cloneNode(true);
      row.querySelector(".minute").value = String(Math.floor(elapsedSeconds() / 60));
      notes.appendChild(row);
      row.querySelector("textarea").focus();
    });
  }

  // Duration: filled from the timer on save when the observer left it empty.
  var duration = form.querySelector("[data-duration]");
  form.addEventListener("submit", function () {
    var minutes = Math.round(elapsedSeconds() / 60);
    if (duration && !duration.value && minutes <= 240) duration.value = String(minutes);
  });
})();
