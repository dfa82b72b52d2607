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
    var state = { text: {}, open: {}, focus: null, picked: {}, current: null, bulk: "" };
    live.querySelectorAll("[data-request-id]").forEach(function (card) {
      var id = card.getAttribute("data-request-id");
      var area = card.querySelector("textarea");
      if (area && area.value) state.text[id] = area.value;
      var box = card.querySelector("details.deny-box");
      if (box && box.open) state.open[id] = true;
      if (area && document.activeElement === area) state.focus = id;
      var pick = card.querySelector("input.pick");
      if (pick && pick.checked) state.picked[id] = true;
      card.querySelectorAll("details.edit-box").forEach(function (d) { if (d.open) state.open[id + ":edit"] = true; });
      card.querySelectorAll(".edit-form input[type=text]").forEach(function (input) {
        if (input.value !== input.defaultValue) state.text[id + ":" + input.name] = input.value;
      });
      card.querySelectorAll("select[name]").forEach(function (sel) {
        if (sel.selectedIndex > 0) state.text[id + ":select:" + sel.name] = sel.value;
      });
      if (card === current) state.current = id;
    });
    var bulkText = live.querySelector("#bulk input[name=comment]");
    if (bulkText) state.bulk = bulkText.value;
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
      var pick = card.querySelector("input.pick");
      if (pick && state.picked[id]) pick.checked = true;
      card.querySelectorAll("details.edit-box").forEach(function (d) { if (state.open[id + ":edit"]) d.open = true; });
      card.querySelectorAll(".edit-form input[type=text]").forEach(function (input) {
        var kept = state.text[id + ":" + input.name];
        if (kept !== undefined) input.value = kept;
      });
      card.querySelectorAll("select[name]").forEach(function (sel) {
        var kept = state.text[id + ":select:" + sel.name];
        if (kept !== undefined) sel.value = kept;
      });
      if (state.current === id) select(card);
    });
    var bulkText = live.querySelector("#bulk input[name=comment]");
    if (bulkText && state.bulk) bulkText.value = state.bulk;
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

  // Keyboard: j / k next / previous card, x select it, a approve it, d deny it (opens the
  // reason box), Enter opens it. Never while typing in a field.
  var current = null;
  function cards() { return live ? Array.prototype.slice.call(live.querySelectorAll("article.card[data-request-id]")) : []; }
  function select(card) {
    if (current) current.classList.remove("current");
    current = card;
    if (card) { card.classList.add("current"); card.focus({ preventScroll: true }); card.scrollIntoView({ block: "nearest" }); }
  }
  document.addEventListener("keydown", function (event) {
    var t = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    var list = cards();
    if (!list.length) return;
    var i = current ? list.indexOf(current) : -1;
    if (i < 0 && current) current = null;
    var key = event.key;
    if (key === "j" || key === "k") {
      var next = key === "j" ? Math.min(i + 1, list.length - 1) : Math.max(i - 1, 0);
      select(list[i < 0 ? 0 : next]);
      event.preventDefault();
      return;
    }
    var card = current || (list.length === 1 ? list[0] : null);
    if (!card) return;
    if (key === "x") {
      var pick = card.querySelector("input.pick");
      if (pick) { pick.checked = !pick.checked; pick.dispatchEvent(new Event("change", { bubbles: true })); }
    } else if (key === "a") {
      var approve = card.querySelector("form.approve-form button[value=approve]");
      if (approve) approve.click();
    } else if (key === "d") {
      var box = card.querySelector("details.deny-box");
      if (box) { box.open = true; var area = box.querySelector("select, textarea"); if (area) area.focus(); }
    } else if (key === "Enter") {
      var link = card.querySelector("a.action");
      if (link && document.activeElement === card) link.click();
    } else {
      return;
    }
    event.preventDefault();
  });
  document.addEventListener("change", function (event) {
    if (!event.target.classList || !event.target.classList.contains("pick")) return;
    var n = document.querySelectorAll("input.pick:checked").length;
    var label = document.querySelector("#bulk .bulk-count");
    if (label) label.textContent = n ? n + " selected:" : "Select requests to decide them together:";
  });

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
