// Baton dashboard: local times, and the live view fed by server-sent events.
"use strict";
function localTimes(root) {
  root.querySelectorAll("time[data-ms]").forEach(function (t) {
    var d = new Date(Number(t.dataset.ms));
    t.textContent = d.toLocaleString();
    t.setAttribute("datetime", d.toISOString());
  });
}
localTimes(document);

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

var list = document.getElementById("events");
if (list) {
  var workers = document.getElementById("workers");
  var state = document.getElementById("state");
  var url = "/api/events/stream?after=" + encodeURIComponent(list.dataset.after || "0");
  if (list.dataset.conversation) url += "&conversation=" + encodeURIComponent(list.dataset.conversation);
  var source = new EventSource(url);
  source.onopen = function () { state.textContent = "live"; };
  source.onerror = function () { state.textContent = "reconnecting…"; };
  source.addEventListener("entry", function (message) {
    var e = JSON.parse(message.data);
    var item = el("li", "event " + e.kind);
    item.dataset.kind = e.kind;
    var when = el("time", null, ""); when.dataset.ms = e.created_at;
    item.appendChild(when);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(el("span", "kind", e.kind));
    item.appendChild(el("span", "source", e.source + (e.turn ? " (turn " + e.turn + ")" : "") + ": "));
    var body = e.body.length > 240 ? e.body.slice(0, 240) + "…" : e.body;
    item.appendChild(el("span", "body", body));
    localTimes(item);
    list.appendChild(item);
    worker(e);
  });
  // A worker appears at its delegation and changes status with its result.
  function worker(e) {
    if (!e.turn || e.source === "orchestrator" || e.source.indexOf("user") === 0) return;
    var id = e.turn + "/" + e.source;
    var card = workers.querySelector('[data-worker="' + CSS.escape(id) + '"]');
    if (!card) {
      if (e.kind !== "delegation") return;
      card = el("div", "worker");
      card.dataset.worker = id;
      var link = el("a", null, e.source);
      link.href = "/turn/" + e.turn;
      card.appendChild(link);
      card.appendChild(el("span", "status", ""));
      card.appendChild(el("span", "brief", e.body.slice(0, 120)));
      workers.appendChild(card);
    }
    var status = { delegation: "running", result: "done", error: "error" }[e.kind];
    if (status) {
      card.dataset.status = status;
      var s = card.querySelector(".status");
      s.textContent = status;
      s.className = "status " + status;
    }
  }
}
