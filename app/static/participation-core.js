// Participation maps, the pure rules (no browser APIs, so `node --test` checks them against
// the same hand-computed examples as the server's app/observations/participation.py):
//  - a map: { markers, per_row, groups: {"<marker>": "<label key>"}, events: [{marker, talk, at}] }
//    where marker 0 is the teacher (when the rubric codes teacher talk moves) and `at` the
//    second of the lesson the contribution was logged at;
//  - what a tap, an undo, a new marker or a grouping label does to it (a new map each time);
//  - the lesson's figures: contributions per talk type, how many students spoke, the share of
//    the most active 3 (and of the top 20%), the Gini coefficient, shares by grouping label.
const core = (function () {
  "use strict";

  var TEACHER = 0;
  var MAX_MARKERS = 80;
  var MAX_EVENTS = 5000;
  var TOP = 3;

  function copy(map) {
    return {
      markers: map.markers,
      per_row: map.per_row,
      groups: Object.assign({}, map.groups || {}),
      events: (map.events || []).slice()
    };
  }

  // A fresh map of `markers` seats, `perRow` to a row (both kept within what the server takes).
  function layout(map, markers, perRow) {
    var next = map ? copy(map) : { markers: 0, per_row: 6, groups: {}, events: [] };
    var used = highestUsed(next);
    next.markers = Math.max(used, Math.min(MAX_MARKERS, Math.max(1, Math.floor(markers) || 1)));
    next.per_row = Math.min(12, Math.max(1, Math.floor(perRow) || 6));
    Object.keys(next.groups).forEach(function (m) { if (Number(m) > next.markers) delete next.groups[m]; });
    return next;
  }

  // The highest marker a contribution was logged for: a map never shrinks below it.
  function highestUsed(map) {
    var high = 0;
    (map.events || []).forEach(function (e) { if (e.marker > high) high = e.marker; });
    return high;
  }

  function addMarker(map) {
    var next = copy(map);
    if (next.markers < MAX_MARKERS) next.markers += 1;
    return next;
  }

  // The second tap: marker `marker` said something of type `talk` at second `at` of the
  // lesson (null: more than a day after it began, when the timer no longer says when).
  function tap(map, marker, talk, at) {
    if (marker < 0 || marker > map.markers || map.events.length >= MAX_EVENTS) return map;
    var next = copy(map);
    var second = at === null || at > 86400 ? null : Math.max(0, Math.floor(at) || 0);
    next.events.push({ marker: marker, talk: talk, at: second });
    return next;
  }

  // A marker's shade, 0 (silent) to 4 (as often as the lesson's most active student): the
  // map is a picture of who talked, whatever the lesson's scale.
  function shade(count, most) {
    if (!count || !most) return 0;
    return Math.max(1, Math.min(4, Math.ceil(4 * count / most)));
  }

  // Figures rounded as the server's pages round them (halves up): 0.125 is "0.13" and "13%".
  function percent(x) { return x === null ? "—" : Math.round(x * 100) + "%"; }
  function fixed(x, places) { return x === null ? "—" : x.toFixed(places); }

  function undo(map) {
    if (!map.events.length) return map;
    var next = copy(map);
    next.events.pop();
    return next;
  }

  function setGroup(map, marker, key) {
    var next = copy(map);
    if (key) next.groups[String(marker)] = key;
    else delete next.groups[String(marker)];
    return next;
  }

  function countsPerMarker(map) {
    var counts = [];
    for (var i = 0; i < map.markers; i++) counts.push(0);
    (map.events || []).forEach(function (e) {
      if (e.marker >= 1 && e.marker <= map.markers) counts[e.marker - 1] += 1;
    });
    return counts;
  }

  // The Gini coefficient of contributions per student: the mean absolute difference between
  // every two students' counts over twice the mean. null with no students or contributions.
  function gini(counts) {
    var n = counts.length;
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    if (!n || !total) return null;
    var sorted = counts.slice().sort(function (a, b) { return a - b; });
    var weighted = 0;
    sorted.forEach(function (x, i) { weighted += (2 * i - n + 1) * x; });
    return 2 * weighted / (2 * n * n * (total / n));
  }

  // item: { talk_types: [{key, label}], teacher_moves: [...], groups: [...] }
  function summary(item, map) {
    map = map || { markers: 0, groups: {}, events: [] };
    var counts = countsPerMarker(map);
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    var talk = {};
    var moves = {};
    (map.events || []).forEach(function (e) {
      if (e.marker === TEACHER) moves[e.talk] = (moves[e.talk] || 0) + 1;
      else if (e.marker >= 1 && e.marker <= map.markers) talk[e.talk] = (talk[e.talk] || 0) + 1;
    });
    var ranked = counts.slice().sort(function (a, b) { return b - a; });
    var sumTop = function (k) { return ranked.slice(0, k).reduce(function (a, b) { return a + b; }, 0); };
    var fifth = map.markers ? Math.max(1, Math.ceil(map.markers / 5)) : 0;
    var groups = [];
    if ((item.groups || []).length) {
      item.groups.concat([null]).forEach(function (code) {
        var key = code ? code.key : "";
        var members = [];
        for (var m = 1; m <= map.markers; m++) if (((map.groups || {})[String(m)] || "") === key) members.push(m);
        if (!code && !members.length) return;
        var said = members.reduce(function (a, m) { return a + counts[m - 1]; }, 0);
        groups.push({
          key: key, label: code ? code.label : "No label", students: members.length, contributions: said,
          share_of_students: map.markers ? members.length / map.markers : null,
          share_of_contributions: total ? said / total : null
        });
      });
    }
    return {
      students: map.markers,
      contributions: total,
      by_talk: item.talk_types.map(function (c) { return [c.key, c.label, talk[c.key] || 0]; }),
      by_move: (item.teacher_moves || []).map(function (c) { return [c.key, c.label, moves[c.key] || 0]; }),
      per_marker: counts,
      speakers: counts.filter(function (x) { return x > 0; }).length,
      top_share: total ? sumTop(TOP) / total : null,
      top_fifth: fifth,
      top_fifth_share: total ? sumTop(fifth) / total : null,
      gini: gini(counts),
      groups: groups
    };
  }

  return {
    TEACHER: TEACHER,
    MAX_MARKERS: MAX_MARKERS,
    MAX_EVENTS: MAX_EVENTS,
    percent: percent,
    fixed: fixed,
    shade: shade,
    layout: layout,
    highestUsed: highestUsed,
    addMarker: addMarker,
    tap: tap,
    undo: undo,
    setGroup: setGroup,
    countsPerMarker: countsPerMarker,
    gini: gini,
    summary: summary
  };
})();

export default core;
