// gridlet console. Everything it shows comes from the admin API with the
// token the operator typed (kept in sessionStorage: this tab only). Event
// contents are untrusted: every value reaches the page as text
// (textContent, never innerHTML), and the Content-Security-Policy allows no
// inline script.
"use strict";

const TOKEN_KEY = "gridlet.adminToken";
const $ = (id) => document.getElementById(id);

// ---- DOM helpers: text only ----------------------------------------------

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }
function pill(text, kind) { return h("span", { class: `pill ${kind}` }, text); }
function when(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }
function table(headers, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
      h("tbody", {}, rows)));
}
function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

// ---- the admin API ---------------------------------------------------------

class Refused extends Error {}

/** Call the admin API; a 401 signs the tab out. */
async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: `Bearer ${token}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    cache: "no-store",
    signal: options.signal,
  });
  if (response.status === 401) {
    signOut("The admin token was refused.");
    throw new Refused("401");
  }
  if (!response.ok) {
    let detail = `${response.status}`;
    try { const p = await response.json(); detail = p.detail || p.title || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return options.raw ? response : response.json();
}

// ---- sign in / out, theme --------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopPage();
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("page").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("token").value = "";
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  const response = await fetch("/admin/overview", {
    headers: { Authorization: `Bearer ${token}` }, cache: "no-store",
  }).catch(() => null);
  if (!response || response.status === 401) {
    $("sign-in-error").textContent = response ? "Wrong token: the host refused it." : "The host did not answer.";
    $("sign-in-error").hidden = false;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  route();
}

const THEMES = ["auto", "light", "dark"];
function applyTheme(theme) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $("theme").textContent = `Theme: ${theme}`;
  localStorage.setItem("gridlet.theme", theme);
}

// ---- pages -----------------------------------------------------------------

let pageStop = [];
function stopPage() { pageStop.forEach((f) => f()); pageStop = []; }
function every(ms, f) { f(); const t = setInterval(f, ms); pageStop.push(() => clearInterval(t)); }

function route() {
  stopPage();
  if (!sessionStorage.getItem(TOKEN_KEY)) { signOut(); return; }
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  const [, page = "overview", arg] = location.hash.split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("current", a.dataset.page === page);
  const root = $("page");
  root.hidden = false;
  root.replaceChildren();
  const pages = { overview, plugins, deliveries, "dead-letters": deadLetters, live };
  (pages[page] || overview)(root, arg).catch((e) => {
    if (!(e instanceof Refused)) root.append(h("p", { class: "error", role: "alert" }, `Cannot load: ${e.message}`));
  });
}

// Overview: counters, a chart of outcomes per minute over the last hour
// (the host keeps the history, so it is there when the page opens), health.
async function overview(root) {
  document.title = "Overview · gridlet";
  const stats = h("div", { class: "grid", id: "overview-stats" });
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("id", "deliveries-chart");
  svg.setAttribute("viewBox", "0 0 600 160");
  svg.setAttribute("preserveAspectRatio", "none");
  const health = h("div", {});
  const peak = h("span", { id: "chart-peak" });
  root.append(h("h1", {}, "Overview"), stats,
    h("div", { class: "card" }, h("h2", {}, "Deliveries per minute"),
      h("div", { class: "legend" }, h("span", {}, h("i", { class: "done" }), "done"),
        h("span", {}, h("i", { class: "retried" }), "retried"), h("span", {}, h("i", { class: "dead" }), "dead-lettered"),
        h("span", { class: "spacer" }), peak),
      svg),
    h("div", { class: "card" }, h("h2", {}, "Health"), health));
  every(2000, async () => {
    const o = await api("/admin/overview");
    const stat = (n, l, id) => h("div", { class: "stat", id }, h("div", { class: "n" }, n ?? "—"), h("div", { class: "l" }, l));
    stats.replaceChildren(
      stat(o.events.received, "events received", "stat-received"),
      stat(o.deliveries.done, "deliveries done", "stat-done"),
      stat(o.deliveries.retried, "attempts retried", "stat-retried"),
      stat(o.deliveries.deadLettered, "dead-lettered", "stat-dead"),
      stat(o.deliveries.pending, "deliveries pending", "stat-pending"),
      stat(o.deliveries.inFlight, "in flight", "stat-in-flight"),
      stat(o.plugins.serving, "plugins serving", "stat-serving"),
      stat(o.plugins.rejected, "plugins rejected", "stat-rejected"));
    const journalOk = o.journal.state === "writable";
    health.replaceChildren(facts([
      ["Journal", pill(o.journal.state, journalOk ? "ok" : "bad")],
      ["Disk", pill(o.journal.disk, o.journal.disk === "ok" ? "ok" : "bad")],
      ["Plugins waiting for config", String(o.plugins.waiting)],
      ["Duplicates acknowledged", String(o.events.duplicates)],
      ["Batches refused (busy)", String(o.events.refusedBatches)],
      ["As of", when(o.time)],
    ]));
    // The host's samples, then the counters as of now (once it is far
    // enough past the last sample for a rate to mean something).
    const points = o.history.samples.map((s) => ({ t: Date.parse(s.time), d: s }));
    const now = Date.parse(o.time);
    const last = points[points.length - 1];
    if (!last || now - last.t >= o.history.stepSeconds * 500) points.push({ t: now, d: o.deliveries });
    peak.textContent = `scale: ${Math.round(drawChart(svg, points))}/min, last hour`;
  });
}

/** Outcomes per minute between successive points ({t: ms, d: counters})
 * over the hour before the last, as three lines; returns the scale's top. */
function drawChart(svg, points) {
  const series = { done: "done", retried: "retried", dead: "deadLettered" };
  const end = points.length ? points[points.length - 1].t : Date.now();
  const hour = 3600000;
  const rates = [];
  for (let i = 1; i < points.length; i++) {
    const dt = (points[i].t - points[i - 1].t) / 60000;
    if (dt <= 0) continue;
    const r = { x: ((points[i].t - (end - hour)) / hour) * 600 };
    for (const [k, f] of Object.entries(series)) r[k] = Math.max(0, (points[i].d[f] - points[i - 1].d[f]) / dt);
    rates.push(r);
  }
  const max = Math.max(1, ...rates.flatMap((r) => Object.keys(series).map((k) => r[k])));
  const ns = "http://www.w3.org/2000/svg";
  const base = document.createElementNS(ns, "line");
  Object.entries({ x1: 0, y1: 159, x2: 600, y2: 159, class: "axis" }).forEach(([k, v]) => base.setAttribute(k, v));
  const lines = Object.keys(series).map((k) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", rates.map((r) => `${r.x.toFixed(1)},${(155 - (r[k] / max) * 145).toFixed(1)}`).join(" "));
    line.setAttribute("class", k);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke-width", "2");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    return line;
  });
  svg.replaceChildren(base, ...lines);
  return max;
}

// Plugins: the list, and one plugin in full with its recent invocations.
async function plugins(root, name) {
  if (name) return plugin(root, name);
  document.title = "Plugins · gridlet";
  const { plugins: list } = await api("/admin/plugins");
  const state = (p) => pill(p.state, p.state === "serving" ? "ok" : p.state === "rejected" ? "bad" : "warn");
  root.append(h("h1", {}, "Plugins"), h("div", { class: "card" }, table(
    ["Plugin", "State", "Version", "Filter", "Delivered", "Retried", "Dead", "Last error"],
    list.map((p) => h("tr", { class: "clickable", "data-plugin": p.name, onclick: () => { location.hash = `#/plugins/${encodeURIComponent(p.name)}`; } },
      h("td", {}, h("a", { href: `#/plugins/${encodeURIComponent(p.name)}` }, p.name)),
      h("td", {}, state(p), p.rejected ? h("div", { class: "muted" }, "newer file rejected") : null),
      h("td", { class: "mono", title: p.hash || "" }, p.hash ? p.hash.slice(0, 12) : "—"),
      h("td", {}, p.filter || "—"),
      h("td", { class: "num" }, p.counters.delivered),
      h("td", { class: "num" }, p.counters.retried),
      h("td", { class: "num" }, p.counters.deadLettered),
      h("td", {}, p.lastError ? p.lastError.message : "—"))))));
}

async function plugin(root, name) {
  document.title = `${name} · gridlet`;
  const p = await api(`/admin/plugins/${encodeURIComponent(name)}`);
  const { invocations } = await api(`/admin/plugins/${encodeURIComponent(name)}/invocations`);
  const l = p.limits || {};
  const g = p.grants || {};
  root.append(h("p", {}, h("a", { href: "#/plugins" }, "← Plugins")), h("h1", {}, p.name),
    h("div", { class: "card" }, facts([
      ["State", pill(p.state, p.state === "serving" ? "ok" : "warn")],
      ["Version", p.hash || "—"],
      ["Source", p.source || "—"],
      ["Manifest", p.manifest || "none"],
      ["Loaded", p.loadedAt ? `${when(p.loadedAt)} (${p.code}, ${p.loadMs?.toFixed(1)} ms)` : "—"],
      ["Filter", p.filter || "—"],
      ["Limits", p.limits ? `${Math.round(l.memoryBytes / 1048576)} MiB, ${l.deadlineMs} ms deadline, ${l.maxConcurrency} at once${l.fuel ? `, fuel ${l.fuel}` : ""}` : "—"],
      ["Retries", p.retry ? `${p.retry.maxDeliveryAttempts} attempts, ${p.retry.eventTimeToLiveInMinutes} min to live` : "—"],
      ["Hosts it may call", (g.allowedHosts || []).join(", ") || "none"],
      ["Config keys granted", (g.configKeys || []).join(", ") || "none"],
      ["Counters", `${p.counters.delivered} delivered, ${p.counters.retried} retried, ${p.counters.deadLettered} dead-lettered`],
      ["Last error", p.lastError ? `${p.lastError.message} (${when(p.lastError.at)})` : "—"],
      ["Rejected file", p.rejected ? `${p.rejected.reason} (${when(p.rejected.at)})` : "—"],
      ["Warnings", p.warnings.length ? p.warnings.join("; ") : "none"],
    ])),
    h("h2", {}, "Recent invocations"),
    h("div", { class: "card" }, invocations.length ? table(
      ["Time", "Event", "Attempt", "Outcome", "Duration", "Lines"],
      invocations.map((i) => h("tr", {},
        h("td", {}, when(i.time)),
        h("td", {}, h("div", { class: "mono" }, i.eventId), h("div", { class: "muted" }, i.eventType)),
        h("td", { class: "num" }, i.attempt),
        h("td", {}, pill(i.outcome, i.outcome === "handled" ? "ok" : "bad"), i.reason ? h("div", {}, i.reason) : null),
        h("td", { class: "num" }, `${i.durationMs.toFixed(1)} ms`),
        h("td", {}, i.lines.length ? h("details", {}, h("summary", {}, plural(i.lines.length, "line")), h("pre", {}, i.lines.join("\n"))) : "—"))))
      : h("p", { class: "muted" }, "No invocations yet.")));
}

// Deliveries not yet done.
async function deliveries(root) {
  document.title = "Deliveries · gridlet";
  const stateSel = h("select", { id: "delivery-state" },
    ["", "pending", "retrying", "in-flight"].map((s) => h("option", { value: s }, s || "any state")));
  const body = h("div", {});
  root.append(h("h1", {}, "Deliveries"),
    h("div", { class: "toolbar" }, h("div", {}, h("label", { for: "delivery-state" }, "State"), stateSel)),
    h("div", { class: "card" }, body));
  const load = async () => {
    const q = stateSel.value ? `?state=${stateSel.value}` : "";
    const { deliveries: list } = await api(`/admin/deliveries${q}`);
    body.replaceChildren(list.length ? table(
      ["Plugin", "Event", "State", "Attempts", "Next attempt", "Last error"],
      list.map((d) => h("tr", {},
        h("td", {}, d.plugin),
        h("td", {}, h("div", { class: "mono" }, d.eventId), h("div", { class: "muted" }, d.eventType)),
        h("td", {}, pill(d.state, d.state === "retrying" ? "warn" : "muted")),
        h("td", { class: "num" }, d.deliveryAttempts),
        h("td", {}, when(d.dueTime)),
        h("td", {}, d.lastError || "—"))))
      : h("p", { class: "muted" }, "Nothing waiting: every accepted delivery is done or dead-lettered."));
  };
  stateSel.addEventListener("change", load);
  every(3000, load);
}

// Dead letters: filter, inspect, replay, purge.
async function deadLetters(root, id) {
  if (id) return deadLetter(root, id);
  document.title = "Dead letters · gridlet";
  const { plugins: list } = await api("/admin/plugins");
  const pluginSel = h("select", { id: "dl-plugin" }, h("option", { value: "" }, "every plugin"),
    list.map((p) => h("option", { value: p.name }, p.name)));
  const since = h("input", { id: "dl-since", type: "datetime-local" });
  const until = h("input", { id: "dl-until", type: "datetime-local" });
  const body = h("div", {});
  const selection = () => {
    const s = {};
    if (pluginSel.value) s.plugin = pluginSel.value;
    if (since.value) s.since = new Date(since.value).getTime();
    if (until.value) s.until = new Date(until.value).getTime();
    return s;
  };
  const checked = () => [...body.querySelectorAll("input[type=checkbox][data-id]:checked")].map((c) => Number(c.dataset.id));
  const act = async (verb, all) => {
    const ids = checked();
    const what = all ? "every dead letter matching the filter" : `${ids.length} selected dead letter${ids.length === 1 ? "" : "s"}`;
    if (!all && !ids.length) return;
    if (!(await confirmAction(`${verb === "replay" ? "Replay" : "Purge"} ${what}?${verb === "purge" ? " Purged dead letters are gone for good." : ""}`))) return;
    const answer = await api(`/admin/dead-letters/${verb}`, { method: "POST", body: all ? { ...selection(), all: true } : { ids } });
    status.textContent = verb === "replay" ? `Replayed ${answer.replayed}${answer.alreadyReplayed ? `, ${answer.alreadyReplayed} replayed before` : ""}.` : `Purged ${answer.purged}.`;
    await load();
  };
  const status = h("p", { id: "dl-status", class: "muted", role: "status" });
  root.append(h("h1", {}, "Dead letters"),
    h("div", { class: "toolbar" },
      h("div", {}, h("label", { for: "dl-plugin" }, "Plugin"), pluginSel),
      h("div", {}, h("label", { for: "dl-since" }, "Dead-lettered from"), since),
      h("div", {}, h("label", { for: "dl-until" }, "until"), until),
      h("button", { type: "button", class: "quiet", id: "dl-replay", onclick: () => act("replay", false) }, "Replay selected"),
      h("button", { type: "button", class: "quiet", id: "dl-purge", onclick: () => act("purge", false) }, "Purge selected"),
      h("button", { type: "button", class: "quiet", id: "dl-replay-all", onclick: () => act("replay", true) }, "Replay all matching"),
      h("button", { type: "button", class: "danger", id: "dl-purge-all", onclick: () => act("purge", true) }, "Purge all matching")),
    status, h("div", { class: "card" }, body));
  const load = async () => {
    const s = selection();
    const q = new URLSearchParams(Object.entries(s).map(([k, v]) => [k, String(v)]));
    const { deadLetters: letters } = await api(`/admin/dead-letters?${q}`);
    const keep = new Set(checked());
    body.replaceChildren(letters.length ? table(
      ["", "Event", "Plugin", "Reason", "Attempts", "Last error", "Dead-lettered", "Replayed"],
      letters.map((d) => h("tr", { "data-dead-letter": d.id, "data-event-id": d.eventId },
        h("td", {}, h("input", { type: "checkbox", "data-id": d.id, "aria-label": `select ${d.eventId}`, checked: keep.has(d.id) })),
        h("td", {}, h("a", { href: `#/dead-letters/${d.id}` }, h("span", { class: "mono" }, d.eventId)), h("div", { class: "muted" }, d.eventType)),
        h("td", {}, d.plugin),
        h("td", {}, pill(d.deadLetterReason, "bad")),
        h("td", { class: "num" }, d.deliveryAttempts),
        h("td", {}, d.lastError),
        h("td", {}, when(d.deadLetteredTime)),
        h("td", {}, d.replayedTime ? when(d.replayedTime) : "—"))))
      : h("p", { class: "muted", id: "dl-empty" }, "No dead letters match."));
  };
  for (const input of [pluginSel, since, until]) input.addEventListener("change", load);
  every(5000, load);
}

async function deadLetter(root, id) {
  document.title = `Dead letter ${id} · gridlet`;
  const d = await api(`/admin/dead-letters/${encodeURIComponent(id)}`);
  const status = h("p", { id: "dl-status", class: "muted", role: "status" });
  const act = async (verb) => {
    if (!(await confirmAction(verb === "replay" ? `Replay event ${d.eventId} to ${d.plugin}?` : `Purge the dead letter of event ${d.eventId}? It is gone for good.`))) return;
    const answer = await api(`/admin/dead-letters/${verb}`, { method: "POST", body: { ids: [d.id], force: verb === "replay" } });
    if (verb === "purge") { location.hash = "#/dead-letters"; return; }
    status.textContent = `Replayed ${answer.replayed}: a new delivery to ${d.plugin}.`;
  };
  root.append(h("p", {}, h("a", { href: "#/dead-letters" }, "← Dead letters")),
    h("h1", {}, `Dead letter: ${d.eventId}`),
    h("div", { class: "toolbar" },
      h("button", { type: "button", id: "dl-replay-one", onclick: () => act("replay") }, "Replay"),
      h("button", { type: "button", class: "danger", id: "dl-purge-one", onclick: () => act("purge") }, "Purge")),
    status,
    h("div", { class: "card" }, facts([
      ["Plugin", d.plugin], ["Reason", pill(d.deadLetterReason, "bad")], ["Attempts", String(d.deliveryAttempts)],
      ["Last error", d.lastError], ["Event type", d.eventType], ["Topic", d.topic],
      ["Published", when(d.publishTime)], ["Dead-lettered", when(d.deadLetteredTime)],
      ["Replayed", d.replayedTime ? when(d.replayedTime) : "—"],
    ])),
    h("h2", {}, "Each attempt's error"),
    h("div", { class: "card" }, d.errors.length
      ? h("ol", { id: "dl-errors" }, d.errors.map((e) => h("li", {}, e)))
      : h("p", { class: "muted" }, "No attempt failed: it was dead-lettered before one was made.")),
    h("h2", {}, "Attempts this host remembers"),
    h("div", { class: "card" }, d.attempts && d.attempts.length ? table(
      ["Time", "Attempt", "Outcome", "Error", "Lines"],
      d.attempts.map((a) => h("tr", {}, h("td", {}, when(a.time)), h("td", { class: "num" }, a.attempt),
        h("td", {}, pill(a.outcome, a.outcome === "handled" ? "ok" : "bad")), h("td", {}, a.reason || "—"),
        h("td", {}, a.lines.length ? h("details", {}, h("summary", {}, plural(a.lines.length, "line")), h("pre", {}, a.lines.join("\n"))) : "—"))))
      : h("p", { class: "muted" }, "None: it restarted since, or the attempts ran on another host (their errors are above).")),
    h("h2", {}, "Event"),
    h("pre", { id: "dl-event" }, JSON.stringify(d.event, null, 2)));
}

// Live events: a tail of accepted events over server-sent events, read
// with fetch so the token goes in a header (EventSource cannot send one).
async function live(root) {
  document.title = "Live events · gridlet";
  let paused = false;
  let held = [];
  const rows = h("tbody", { id: "live-rows" });
  const state = h("span", { class: "muted", id: "live-state" }, "connecting…");
  const pause = h("button", { type: "button", class: "quiet", id: "live-pause" }, "Pause");
  const show = (e) => {
    rows.prepend(h("tr", { class: "live-row", "data-event-id": e.id },
      h("td", {}, when(e.receivedTime)),
      h("td", {}, e.eventType.replace("Microsoft.MachineLearningServices.", "")),
      h("td", { class: "subject" }, e.subject),
      h("td", { class: "mono" }, e.id),
      h("td", {}, e.plugins.join(", ") || "none")));
    while (rows.children.length > 200) rows.lastChild.remove();
  };
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) { held.forEach(show); held = []; }
    state.textContent = paused ? "paused" : "live";
  });
  root.append(h("h1", {}, "Live events"),
    h("div", { class: "toolbar" }, pause, state),
    h("div", { class: "card table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Received", "Type", "Subject", "Id", "Plugins"].map((x) => h("th", {}, x)))), rows)));
  const abort = new AbortController();
  pageStop.push(() => abort.abort());
  const response = await api("/admin/events/live", { raw: true, signal: abort.signal });
  state.textContent = "live";
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ done: true }));
    if (done) { if (!abort.signal.aborted) state.textContent = "disconnected (reload to reconnect)"; return; }
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const kind = /^event: ?(.*)$/m.exec(block)?.[1];
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (kind === "event") {
        const e = JSON.parse(data);
        if (paused) { held.push(e); state.textContent = `paused (${held.length} new)`; } else show(e);
      } else if (kind === "lagged") {
        rows.prepend(h("tr", {}, h("td", { colspan: 5, class: "muted" }, `${data} events missed (the tail fell behind)`)));
      }
    }
  }
}

/** Ask before a replay or purge; resolves true on confirm. */
function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  applyTheme(localStorage.getItem("gridlet.theme") || "auto");
  $("theme").addEventListener("click", () => {
    const now = localStorage.getItem("gridlet.theme") || "auto";
    applyTheme(THEMES[(THEMES.indexOf(now) + 1) % THEMES.length]);
  });
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  route();
});
