// The participation map on the capture page: anonymous numbered markers, two taps per
// contribution (the marker, then the kind of talk), undo, markers added on the fly, and the
// lesson's figures beside the map. The map lives in the item's hidden field as JSON; every tap
// fires "change" on it, which capture.js saves at once (journal, then IndexedDB), so a tap is
// kept like any other. The rules are participation-core.js's, checked by `node --test`.
import P from "./participation-core.js";

(function () {
  "use strict";

  function $(selector, root) { return root.querySelector(selector); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  var percent = P.percent;
  function clockOf(seconds) {
    if (seconds === null) return "";
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return " at " + m + ":" + String(s).padStart(2, "0");
  }

  var form = document.querySelector("[data-capture]");
  if (!form) return;

  Array.prototype.forEach.call(form.querySelectorAll("[data-participation-item]"), function (root) {
    var codes = JSON.parse($("[data-p-codes]", root).textContent);
    var input = $("[data-participation]", root);
    var grid = $("[data-p-grid]", root);
    var talkPanel = $("[data-p-talk]", root);
    var talkButtons = $("[data-p-talk-buttons]", root);
    var groupButtons = $("[data-p-group-buttons]", root);
    var chosenText = $("[data-p-chosen]", root);
    var last = $("[data-p-last]", root);
    var undoButton = $("[data-p-undo]", root);
    var summaryBox = $("[data-p-summary]", root);
    var brief = $("[data-p-brief]", root);
    var labels = {};
    codes.talk_types.concat(codes.teacher_moves).forEach(function (c) { labels[c.key] = c.label; });
    var groupLabels = {};
    codes.groups.forEach(function (c) { groupLabels[c.key] = c.label; });
    var chosen = null; // the marker tapped first, waiting for its kind of talk
    var waiting = root.hasAttribute("data-p-wait"); // until capture.js has filled the field

    function current() {
      if (!input.value) return null;
      try { return JSON.parse(input.value); } catch (e) { return null; }
    }

    // The second of the lesson, from the capture page's lesson timer; null more than a day
    // after the lesson began (an amendment), as the timer then shows "—".
    function lessonSecond() {
      var start = Number(form.dataset.lessonStart) || Date.now();
      var second = Math.max(0, Math.floor((Date.now() - start) / 1000));
      return second > 86400 ? null : second;
    }

    // A new map state: kept in the field, shown, and saved by capture.js at once.
    function commit(map) {
      input.value = JSON.stringify(map);
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function markerButton(n, count, group, most) {
      var b = el("button", { type: "button", "class": "p-marker", "data-marker": String(n) });
      b.appendChild(el("span", { "class": "p-n" }, n === P.TEACHER ? "Teacher" : String(n)));
      b.appendChild(el("span", { "class": "p-count", "data-p-count": "" }, String(count)));
      if (group) b.appendChild(el("span", { "class": "p-group" }, groupLabels[group] || group));
      label(b, n, count, group, most);
      return b;
    }

    function label(button, n, count, group, most) {
      var who = n === P.TEACHER ? "Teacher" : "Student " + n;
      button.setAttribute("aria-label", who + ", " + count + (n === P.TEACHER ? " coded moves" : " contributions") +
        (group ? ", " + (groupLabels[group] || group) : ""));
      button.dataset.level = String(P.shade(count, most));
    }

    function mostOf(counts) { return counts.reduce(function (a, b) { return Math.max(a, b); }, 0); }

    function teacherCount(map) {
      return map.events.filter(function (e) { return e.marker === P.TEACHER; }).length;
    }

    // The whole map: on load, after a layout change or an undo.
    function render() {
      var map = current();
      var disabled = input.disabled || waiting;
      $("[data-p-setup]", root).hidden = !!map;
      $("[data-p-map]", root).hidden = !map;
      grid.textContent = "";
      chosen = null;
      talkPanel.hidden = true;
      if (!map) { summaryBox.textContent = ""; setDisabled(disabled); return; }
      $("[data-p-seats]", root).value = String(map.markers);
      $("[data-p-per-row]", root).value = String(map.per_row);
      grid.style.setProperty("--per-row", String(map.per_row));
      var counts = P.countsPerMarker(map);
      var most = mostOf(counts);
      if (codes.teacher_moves.length) {
        var moves = teacherCount(map);
        var teacher = markerButton(P.TEACHER, moves, null, moves);
        teacher.classList.add("p-teacher");
        grid.appendChild(teacher);
      }
      for (var n = 1; n <= map.markers; n++) grid.appendChild(markerButton(n, counts[n - 1], map.groups[String(n)], most));
      setDisabled(disabled);
      undoButton.disabled = disabled || !map.events.length;
      renderSummary(map);
    }

    // Every control of the map: off while it waits for the device's copy, or is read-only.
    function setDisabled(disabled) {
      Array.prototype.forEach.call(root.querySelectorAll("button, input:not([type=hidden])"), function (b) {
        b.disabled = disabled;
      });
    }

    // After one tap only the marker's count and the figures change (and every shade, when
    // the tap made a new most active student).
    function update(map, marker) {
      var button = grid.querySelector("[data-marker='" + marker + "']");
      if (!button) { render(); return; }
      var counts = P.countsPerMarker(map);
      var most = mostOf(counts);
      var count = marker === P.TEACHER ? teacherCount(map) : counts[marker - 1];
      $("[data-p-count]", button).textContent = String(count);
      label(button, marker, count, map.groups[String(marker)], marker === P.TEACHER ? count : most);
      if (marker !== P.TEACHER && count === most) {
        Array.prototype.forEach.call(grid.querySelectorAll(".p-marker:not(.p-teacher)"), function (b) {
          b.dataset.level = String(P.shade(counts[Number(b.dataset.marker) - 1], most));
        });
      }
      undoButton.disabled = !map.events.length;
      renderSummary(map);
    }

    function choose(marker) {
      var map = current();
      if (!map) return;
      chosen = marker;
      Array.prototype.forEach.call(grid.querySelectorAll(".p-marker"), function (b) {
        b.setAttribute("aria-pressed", String(Number(b.dataset.marker) === marker));
      });
      var teacher = marker === P.TEACHER;
      chosenText.textContent = teacher ? "The teacher: which talk move?" : "Student " + marker + ": what kind of talk?";
      talkButtons.textContent = "";
      (teacher ? codes.teacher_moves : codes.talk_types).forEach(function (c) {
        var b = el("button", { type: "button", "class": "button p-talk-button", "data-talk": c.key }, c.label);
        if (c.description) b.title = c.description;
        talkButtons.appendChild(b);
      });
      groupButtons.textContent = "";
      groupButtons.hidden = teacher || !codes.groups.length;
      if (!groupButtons.hidden) {
        var now = map.groups[String(marker)] || "";
        groupButtons.appendChild(el("span", { "class": "hint" }, "Grouping label:"));
        codes.groups.concat([{ key: "", label: "None" }]).forEach(function (c) {
          groupButtons.appendChild(el("button", {
            type: "button", "class": "button secondary p-group-button", "data-group": c.key, "aria-pressed": String(now === c.key)
          }, c.label));
        });
      }
      talkPanel.hidden = false;
    }

    function unchoose() {
      chosen = null;
      talkPanel.hidden = true;
      Array.prototype.forEach.call(grid.querySelectorAll("[aria-pressed]"), function (b) { b.removeAttribute("aria-pressed"); });
    }

    root.addEventListener("click", function (event) {
      var target = event.target.closest("button");
      if (!target || target.disabled || !root.contains(target)) return;
      var map = current();
      if (target.matches("[data-p-layout]")) {
        var asked = Number($("[data-p-seats]", root).value);
        var laid = P.layout(map, asked, Number($("[data-p-per-row]", root).value));
        commit(laid);
        render();
        last.textContent = laid.markers > asked && map
          ? "Kept " + laid.markers + " students: student " + P.highestUsed(map) + " has spoken."
          : "Laid out " + laid.markers + " students.";
      } else if (target.matches("[data-p-relayout]")) {
        $("[data-p-setup]", root).hidden = false;
      } else if (target.matches(".p-marker")) {
        var marker = Number(target.dataset.marker);
        if (chosen === marker) unchoose(); else choose(marker);
      } else if (target.matches("[data-talk]") && chosen !== null && map) {
        var who = chosen;
        var at = lessonSecond();
        var next = P.tap(map, who, target.dataset.talk, at);
        unchoose();
        if (next === map) {
          last.textContent = "The map holds at most " + P.MAX_EVENTS + " contributions: this one was not added.";
          return;
        }
        commit(next);
        update(next, who);
        last.textContent = (who === P.TEACHER ? "Teacher" : "Student " + who) + ": " +
          labels[target.dataset.talk] + clockOf(at) + ".";
      } else if (target.matches("[data-group]") && chosen !== null && map) {
        var marked = P.setGroup(map, chosen, target.dataset.group);
        commit(marked);
        var again = chosen;
        render();
        choose(again);
      } else if (target.matches("[data-p-cancel]")) {
        unchoose();
      } else if (target.matches("[data-p-undo]") && map && map.events.length) {
        var gone = map.events[map.events.length - 1];
        commit(P.undo(map));
        render();
        last.textContent = "Took back " + (gone.marker === P.TEACHER ? "the teacher's " : "student " + gone.marker + "'s ") +
          (labels[gone.talk] || gone.talk) + clockOf(gone.at) + ".";
      } else if (target.matches("[data-p-add]") && map) {
        if (map.markers >= P.MAX_MARKERS) {
          last.textContent = "The map holds at most " + P.MAX_MARKERS + " students.";
          return;
        }
        commit(P.addMarker(map));
        render();
        last.textContent = "Added student " + current().markers + ".";
      }
    });

    // capture.js fills the field from this device's copy when the page loads.
    input.addEventListener("walkthrough:filled", function () { waiting = false; render(); });

    function renderSummary(map) {
      var s = P.summary(codes, map);
      brief.textContent = s.contributions + " contribution" + (s.contributions === 1 ? "" : "s") + " · " +
        s.speakers + " of " + s.students + " spoke · top 3: " + percent(s.top_share) +
        " · Gini " + (s.gini === null ? "—" : P.fixed(s.gini, 2));
      summaryBox.textContent = "";
      summaryBox.appendChild(el("h3", {}, "This lesson so far"));
      var lead = el("p", { "data-p-headline": "" },
        s.contributions + " contribution" + (s.contributions === 1 ? "" : "s") + "; " + s.speakers + " of " +
        s.students + " students spoke at least once (" + percent(s.students ? s.speakers / s.students : null) + ").");
      summaryBox.appendChild(lead);
      var table = el("table", { "class": "p-figures" });
      var body = el("tbody");
      s.by_talk.forEach(function (t) {
        var row = el("tr");
        row.appendChild(el("th", { scope: "row" }, t[1]));
        row.appendChild(el("td", { "data-talk-count": t[0] }, String(t[2])));
        body.appendChild(row);
      });
      s.by_move.forEach(function (t) {
        var row = el("tr");
        row.appendChild(el("th", { scope: "row" }, "Teacher: " + t[1]));
        row.appendChild(el("td", { "data-move-count": t[0] }, String(t[2])));
        body.appendChild(row);
      });
      [["The most active 3 students' share", percent(s.top_share)],
       ["The top 20% (" + s.top_fifth + " student" + (s.top_fifth === 1 ? "" : "s") + ")", percent(s.top_fifth_share)],
       ["Evenness: Gini coefficient", s.gini === null ? "— (no contributions)" : P.fixed(s.gini, 2)]].forEach(function (pair) {
        var row = el("tr");
        row.appendChild(el("th", { scope: "row" }, pair[0]));
        row.appendChild(el("td", {}, pair[1]));
        body.appendChild(row);
      });
      table.appendChild(body);
      summaryBox.appendChild(table);
      summaryBox.appendChild(el("p", { "class": "hint" },
        "Gini: 0 when every student contributed equally often; close to 1 when one student made every contribution."));
      if (s.groups.length) {
        var groups = el("table", { "class": "p-figures" });
        var head = el("tr");
        ["Grouping label", "Share of students", "Share of contributions"].forEach(function (h) { head.appendChild(el("th", { scope: "col" }, h)); });
        groups.appendChild(el("thead")).appendChild(head);
        var gbody = el("tbody");
        s.groups.forEach(function (g) {
          var row = el("tr");
          row.appendChild(el("th", { scope: "row" }, g.label));
          row.appendChild(el("td", {}, percent(g.share_of_students) + " (" + g.students + ")"));
          row.appendChild(el("td", {}, percent(g.share_of_contributions) + " (" + g.contributions + ")"));
          gbody.appendChild(row);
        });
        groups.appendChild(gbody);
        summaryBox.appendChild(groups);
      }
    }

    render();
  });
})();
