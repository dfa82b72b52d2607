// Signoff inbox live updates: plain JavaScript, no build step.
// A server-sent-events stream says which request changed; the page re-fetches the fragment
// it shows (the server checks the session again) and swaps it in, keeping a half-typed
// deny reason and open boxes. Deadlines count down locally.
(function () {
  "use strict";
  var body = document.body;
  var live = document.getElementById("live");

  function left(seconds) {
    if (seconds <= 0) return "past the deadline";
    if (seconds < 60) return Math.floor(seconds) + " s left";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min left";
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
    if (seconds < 86400) return h + " h" + (m ? " " + (m < 10 ? "0" : "") + m + " min" : "") + " left";
    var d = Math.floor(seconds / 86400);
    return d + " day" + (d === 1 ? "" : "s") + " left";
  }

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var deadline = parseFloat(el.getAttribute("data-deadline"));
      if (deadline) el.textContent = left(deadline - now);
    });
  }

  function keepState() {
    var state = { text: {}, open: {}, focus: null };
    live.querySelectorAll("[data-request-id]").forEach(function (card) {
      var id = card.getAttribute("data-request-id");
      var area = card.querySelector("textarea");
      if (area && area.value) state.text[id] = area.value;
      var box = card.querySelector("details.deny-box");
      if (box && box.open) state.open[id] = true;
      if (area && document.activeElement === area) state.focus = id;
    });
    return state;
  }

  function restoreState(state) {
    live.querySelectorAll("[data-request-id]").forEach(function (card) {
      var id = card.getAttribute("data-request-id");
      var area = card.querySelector("textarea");
      var box = card.querySelector("details.deny-box");
      if (box && state.open[id]) box.open = true;
      if (area && state.text[id]) area.value = state.text[id];
      if (area && state.focus === id) area.focus();
    });
  }

  var busy = false, again = false;
  function refresh() {
    if (!live) return;
    if (busy) { again = true; return; }
    busy = true;
    fetch(live.getAttribute("data-live-url"), { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 401) { window.location.reload(); return null; }
        return resp.ok ? resp.text() : null;
      })
      .then(function (html) {
        if (html === null) return;
        var state = keepState();
        live.innerHTML = html;
        restoreState(state);
        tick();
        body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event or the periodic refresh tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var timer = null;
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 120);
  }

  tick();
  setInterval(tick, 15000);
  var url = body.getAttribute("data-events");
  if (!live || !url || !window.EventSource) return;
  setInterval(refresh, 60000);
  var source = new EventSource(url);
  source.onopen = function () {
    body.setAttribute("data-sse", "open");
    soon();  // catch up on anything that changed since the page was rendered (or offline)
  };
  source.onerror = function () { body.setAttribute("data-sse", "retry"); };
  source.addEventListener("change", function (event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    var only = live.getAttribute("data-live-id");
    if (only && data.id !== only) return;
    soon();
  });
})();
