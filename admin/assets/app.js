// baton's live view: /api/status on load and after every change, /api/events (SSE) for the
// timeline. Nothing is fetched from anywhere else.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// Incarnations are wall-clock microseconds at start by default: show them as a time.
function started(inc) {
  if (inc > 1e15 && inc < 1e17) return new Date(inc / 1000).toLocaleString();
  return "-";
}

function clock(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

// One status request at a time. A change announced while one is in flight asks for another
// after it: the answer in flight may predate the change, and nothing else would show it
// before the slow safety net below.
let refreshing = null;
let again = false;
async function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      do {
        again = false;
        const r = await fetch("api/status", { cache: "no-store" });
        const s = await r.json();
        if (!r.ok) throw new Error(s.error || r.statusText);
        render(s);
      } while (again);
    } catch (e) {
      $("ready").textContent = "status unavailable: " + e.message;
      $("ready").className = "badge down";
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function render(s) {
  $("node-name").textContent = "— node " + s.node;
  document.title = "baton: " + s.node;
  $("ready").textContent = s.ready ? "ready" : "not ready: " + s.ready_reason;
  $("ready").className = "badge " + (s.ready ? "up" : "down");
  $("actions-off").hidden = s.actions;
  for (const b of ["shutdown", "kill"]) $(b).disabled = !s.actions;
  const tbody = $("nodes").tBodies[0];
  tbody.replaceChildren(...s.members.map((m) => el("tr", { "data-node": m.name },
    el("td", {}, m.name + (m.this_node ? " (this node)" : "")),
    el("td", { class: m.alive ? "alive" : "dead" }, m.alive ? "alive" : "down"),
    el("td", {}, m.addr || "-"),
    el("td", { title: String(m.incarnation) }, started(m.incarnation)),
    el("td", {}, m.groups.join(", ") || "-"))));
  $("groups").replaceChildren(...s.groups.map((g) => {
    const box = el("div", { class: "group", "data-group": g.name },
      el("div", {}, el("b", {}, g.name), " — term " + g.term + " — ",
        g.leader ? el("span", { class: "leader" }, "leader " + g.leader) : el("span", { class: "leader none" }, "no leader")));
    if (g.no_leader) box.append(el("div", { class: "why" }, g.no_leader.reason.split("; ").join("\n")));
    if (g.ranking.length) {
      box.append(el("div", { class: "muted" }, "members in ranking order:"),
        el("ol", {}, ...g.ranking.map((m) => el("li", {}, m + (g.leader_member === m ? "  ← leader" : "")))));
    }
    box.append(groupActions(g, s.actions));
    return box;
  }));
}

// Step down / transfer for one group: the leader, wherever it runs, hands off (the request
// is routed to it). The transfer targets are the group's live candidates but the leader.
function groupActions(g, enabled) {
  const node = (m) => m.split("#")[0];
  const targets = g.ranking.map(node).filter((n) => n !== g.leader);
  const pick = el("select", { class: "transfer-to", "aria-label": "transfer " + g.name + " to" },
    ...targets.map((n) => el("option", { value: n }, n)));
  const down = el("button", { type: "button", class: "step-down", title: "the leader hands off to the next in its ranking" }, "step down");
  const move = el("button", { type: "button", class: "transfer", title: "the leader hands off to the chosen member" }, "transfer to");
  down.disabled = !enabled || !g.leader || targets.length === 0;
  move.disabled = down.disabled;
  pick.disabled = down.disabled;
  down.addEventListener("click", () => act("step-down", { group: g.name }));
  move.addEventListener("click", () => act("transfer", { group: g.name, to: pick.value }));
  return el("div", { class: "group-actions" }, down, " ", move, " ", pick);
}

function addTimeline(c) {
  const text = c.leader
    ? `${c.group}: leader ${c.leader} (term ${c.term})` + (c.previous ? `, was ${c.previous}` : "")
    : `${c.group}: no leader (term ${c.term})` + (c.previous ? `, was ${c.previous}` : "");
  const li = el("li", { "data-reason": c.reason }, el("time", {}, clock(c.time_ms)), " ", text, " — ",
    el("span", { class: "reason" }, c.reason),
    c.leaderless_ms != null ? ` after ${c.leaderless_ms.toFixed(0)} ms without a leader` : "");
  $("timeline").prepend(li);
  while ($("timeline").children.length > 200) $("timeline").lastChild.remove();
}

function addNote(text, ms) {
  $("timeline").prepend(el("li", { class: "muted" }, el("time", {}, clock(ms)), " ", text));
}

async function loadTimeline() {
  try {
    const r = await fetch("api/timeline", { cache: "no-store" });
    $("timeline").replaceChildren();
    for (const c of await r.json()) addTimeline(c);
  } catch (e) { /* the stream still fills it */ }
}

function connect() {
  const es = new EventSource("api/events");
  es.addEventListener("hello", () => {
    $("conn").textContent = "live";
    $("conn").className = "badge up";
    loadTimeline();
    refresh();
  });
  es.addEventListener("leadership", (e) => { addTimeline(JSON.parse(e.data)); refresh(); });
  es.addEventListener("peer", (e) => { const p = JSON.parse(e.data); addNote(p.detail, p.time_ms); refresh(); });
  es.addEventListener("no_leader", (e) => { refresh(); });
  es.addEventListener("notice", (e) => { const n = JSON.parse(e.data); addNote(n.detail, n.time_ms); });
  es.onerror = () => {
    $("conn").textContent = "disconnected (retrying)";
    $("conn").className = "badge down";
  };
}

async function act(action, body) {
  const token = $("token").value.trim();
  $("action-result").textContent = "…";
  try {
    const headers = token ? { "Authorization": "Bearer " + token } : {};
    if (body) headers["Content-Type"] = "application/json";
    const r = await fetch("api/actions/" + action, {
      method: "POST",
      headers,
      body: body ? JSON.stringify(body) : undefined,
      credentials: "omit",
    });
    const res = await r.json().catch(() => ({}));
    const done = res.to ? `${action} ${res.group}: ${res.from} → ${res.to}` : `${action}: accepted`;
    $("action-result").textContent = r.ok ? done : `${action}: ${r.status} ${res.error || ""}`;
  } catch (e) {
    $("action-result").textContent = `${action}: ${e.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("shutdown").addEventListener("click", () => act("shutdown"));
  $("kill").addEventListener("click", () => { if (confirm("Kill this node now?")) act("kill"); });
  refresh();
  connect();
  // A slow safety net for what no event announces (a peer's new groups).
  setInterval(refresh, 5000);
});
