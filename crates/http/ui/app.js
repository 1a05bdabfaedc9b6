// ringstore dashboard: polls /admin/ui/state every 2 s (the session
// cookie carries the admin token) and redraws the open view. No build
// step: plain browser JavaScript and uPlot, both embedded in the binary.
"use strict";

const POLL_MS = 2000;
const OPS = ["kv_get", "kv_put", "kv_delete", "s3_get", "s3_put", "s3_delete"];
const ZONE_COLOURS = ["#457b9d", "#2a9d8f", "#e76f51", "#8d5a97", "#6a994e", "#bc6c25", "#3d405b"];
let state = null;
let previous = {}; // transfer key -> {bytes, at}
let charts = {};
let impactLost = new Set();

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
const bytes = (n) => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
};
const ago = (ms) => {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};
const short = (id) => id.slice(0, 8);

function zoneColour(zone) {
  const zones = [...new Set(state.cluster.nodes.map((n) => n.zone))].sort();
  return ZONE_COLOURS[zones.indexOf(zone) % ZONE_COLOURS.length];
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  const text = await r.text();
  if (!r.ok) throw new Error(`${r.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

function showView() {
  const view = (location.hash || "#overview").slice(1);
  for (const s of document.querySelectorAll("main section")) s.hidden = s.id !== view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "traffic" && state) drawTraffic();
}

function statsOf(id) {
  const g = state.stats.find((s) => s.id === id);
  return g && g.stats;
}

function drawOverview() {
  $("warnings").innerHTML = state.warnings.map((w) => `<li>${esc(w)}</li>`).join("");
  const up = state.cluster.nodes.filter((n) => n.liveness === "up").length;
  const stats = state.stats.map((s) => s.stats).filter(Boolean);
  const sum = (f) => stats.reduce((a, s) => a + f(s), 0);
  const buckets = state.buckets.filter((b) => b.name !== undefined).length;
  const sampled = state.buckets.filter((b) => b.sample);
  const approx = sampled.some((b) => b.sample.read < b.sample.partitions) ? "≈ " : "";
  const objects = sampled.reduce((a, b) => a + b.sample.objects, 0);
  const objectBytes = sampled.reduce((a, b) => a + b.sample.bytes, 0);
  $("totals").innerHTML = [
    ["nodes up", `${up} / ${state.cluster.nodes.length}`],
    ["objects", approx + objects.toLocaleString()],
    ["object bytes", approx + bytes(objectBytes)],
    ["keys stored (replicas, approx.)", sum((s) => s.keys_stored).toLocaleString()],
    ["disk", bytes(sum((s) => s.disk_bytes))],
    ["buckets", buckets],
    ["layout version", state.cluster.layout_version],
  ].map(([k, v]) => `<div class="card">${esc(k)}<b>${esc(v)}</b></div>`).join("");
  $("nodes").tBodies[0].innerHTML = state.cluster.nodes.map((n) => {
    const s = statsOf(n.id);
    const cell = (f) => (s ? f(s) : "—");
    return `<tr data-node="${esc(n.id)}"><td><span style="color:${zoneColour(n.zone)}">■</span> ${esc(n.id)}</td>
      <td>${esc(n.zone)}</td><td>${n.capacity}</td><td>${esc(n.state)}</td>
      <td class="${n.liveness}">${n.liveness}</td><td>${n.partitions}</td>
      <td>${cell((s) => bytes(s.disk_bytes))}</td><td>${cell((s) => bytes(s.rss_bytes))}</td>
      <td>${cell((s) => s.keys_stored.toLocaleString())}</td><td>${cell((s) => ago(s.uptime_ms))}</td></tr>`;
  }).join("");
}

function drawRing() {
  const moving = new Set();
  for (const g of state.stats) for (const t of (g.stats ? g.stats.transfers : [])) moving.add(t.partition);
  const zones = [...new Set(state.cluster.nodes.map((n) => n.zone))].sort();
  $("zones").innerHTML = zones.map((z) => `<span style="background:${zoneColour(z)}">${esc(z)}</span>`).join("") +
    ` <span style="background:#999">dashed: moving</span> <span style="background:#e63946">red: would lose quorum</span>`;
  $("partitions").innerHTML = state.layout.partitions.map((p) => {
    const cls = ["part", moving.has(p.id) ? "moving" : "", impactLost.has(p.id) ? "lost" : ""].join(" ");
    const owners = p.owners.slice(0, 3).map((o) =>
      `<span class="${o.ready ? "" : "notready"}" style="background:${zoneColour(o.zone)}" title="${esc(o.node)}${o.ready ? "" : " (not ready)"}">${short(o.node)}</span>`).join("");
    return `<div class="${cls}" title="partition ${p.id}">#${p.id}${owners}</div>`;
  }).join("");
  const select = $("impact-node");
  const chosen = select.value;
  select.innerHTML = `<option value="">(none)</option>` + state.cluster.nodes.map((n) =>
    `<option value="${esc(n.id)}" ${n.id === chosen ? "selected" : ""}>${esc(n.id)} (${esc(n.zone)})</option>`).join("");
}

async function showImpact() {
  const node = $("impact-node").value;
  impactLost = new Set();
  $("impact-result").textContent = "";
  if (node) {
    const r = await api(`/admin/ui/plan?action=fail&node=${encodeURIComponent(node)}`);
    impactLost = new Set(r.quorum_lost);
    $("impact-result").textContent = r.quorum_lost.length
      ? `${r.quorum_lost.length} partitions would lose their quorum (outlined red)`
      : "no partition would lose its quorum";
  }
  drawRing();
}

function drawTransfers() {
  const now = state.now_ms;
  const rows = [];
  const finished = [];
  for (const g of state.stats) {
    if (!g.stats) continue;
    for (const t of g.stats.transfers) {
      const key = `${t.partition}/${t.to}`;
      const total = t.bytes_done + t.bytes_left;
      const last = previous[key];
      const rate = last && now > last.at ? ((t.bytes_done - last.bytes) * 1000) / (now - last.at) : 0;
      previous[key] = { bytes: t.bytes_done, at: now };
      const left = rate > 0 ? ago((t.bytes_left / rate) * 1000) : "—";
      rows.push(`<tr class="transfer"><td>${t.partition}</td><td>${short(t.from)}</td><td>${short(t.to)}</td>
        <td><progress max="${total || 1}" value="${t.bytes_done}"></progress> ${bytes(t.bytes_done)} / ${bytes(total)}</td>
        <td>${bytes(rate)}/s</td><td>${left}</td></tr>`);
    }
    for (const [t, at] of g.stats.finished) finished.push([t, at]);
  }
  $("active").tBodies[0].innerHTML = rows.join("") || `<tr><td colspan="6" class="muted">none</td></tr>`;
  finished.sort((a, b) => b[1] - a[1]);
  $("finished").tBodies[0].innerHTML = finished.slice(0, 50).map(([t, at]) =>
    `<tr class="finished"><td>${t.partition}</td><td>${short(t.from)}</td><td>${short(t.to)}</td>
      <td>${t.objects_done}</td><td>${bytes(t.bytes_done)}</td><td>${ago(now - at)} ago</td></tr>`).join("") ||
    `<tr><td colspan="6" class="muted">none</td></tr>`;
  $("repair").tBodies[0].innerHTML = state.stats.filter((g) => g.stats).map((g) => {
    const s = g.stats;
    const oldest = s.aae_last.length ? ago(now - Math.min(...s.aae_last.map((x) => x[1]))) + " ago" : "—";
    const hints = s.hints.map(([n, c]) => `${short(n)}: ${c}`).join(", ") || "none";
    return `<tr><td>${short(g.id)}</td><td>${esc(hints)}</td><td>${s.aae_exchanges}</td>
      <td>${s.aae_keys_repaired}</td><td>${oldest}</td><td>${s.read_repairs}</td></tr>`;
  }).join("");
}

// Adds up every node's histograms per slot and op, then reads rates and
// percentiles from the merged histograms.
function trafficSeries() {
  const slotMs = state.slot_ms;
  const newest = Math.floor(state.now_ms / slotMs);
  const slots = [];
  for (let s = newest - 179; s <= newest; s++) slots.push(s);
  const merged = {}; // op -> slot -> Map(bucket -> count)
  for (const g of state.stats) {
    if (!g.stats) continue;
    for (const so of g.stats.traffic) {
      const op = so.op.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
      const bySlot = (merged[op] = merged[op] || {});
      const h = (bySlot[so.slot] = bySlot[so.slot] || new Map());
      for (const [b, c] of so.buckets) h.set(b, (h.get(b) || 0) + c);
    }
  }
  const quantile = (h, q) => {
    if (!h) return null;
    const entries = [...h.entries()].sort((a, b) => a[0] - b[0]);
    const total = entries.reduce((a, e) => a + e[1], 0);
    const rank = Math.max(1, Math.ceil(total * q));
    let seen = 0;
    for (const [b, c] of entries) {
      seen += c;
      if (seen >= rank) {
        const power = Math.floor(b / 4), sub = b % 4;
        return (2 ** power * (1 + (sub + 0.5) / 4)) / 1000;
      }
    }
    return null;
  };
  const x = slots.map((s) => (s * slotMs) / 1000);
  const rate = [x], p50 = [x], p99 = [x];
  for (const op of OPS) {
    const bySlot = merged[op] || {};
    rate.push(slots.map((s) => (bySlot[s] ? [...bySlot[s].values()].reduce((a, c) => a + c, 0) / (slotMs / 1000) : 0)));
    p50.push(slots.map((s) => quantile(bySlot[s], 0.5)));
    p99.push(slots.map((s) => quantile(bySlot[s], 0.99)));
  }
  return { rate, p50, p99 };
}

function drawTraffic() {
  const data = trafficSeries();
  const width = Math.max(400, Math.min(1100, document.body.clientWidth - 60));
  const colours = ["#457b9d", "#e76f51", "#8d5a97", "#2a9d8f", "#f4a261", "#6a994e"];
  for (const name of ["rate", "p50", "p99"]) {
    if (!charts[name]) {
      const opts = {
        width, height: 200,
        series: [{}].concat(OPS.map((op, i) => ({ label: op, stroke: colours[i], width: 1.5, spanGaps: false }))),
        axes: [{}, { size: 60 }],
      };
      charts[name] = new uPlot(opts, data[name], $(`chart-${name}`));
    } else {
      charts[name].setData(data[name]);
    }
  }
}

async function drawBuckets() {
  $("bucket-list").tBodies[0].innerHTML = state.buckets.map((b) => {
    if (b.error) return `<tr><td>${esc(b.api)}</td><td colspan="9" class="down">${esc(b.error)}</td></tr>`;
    if (b.more) return `<tr><td>${esc(b.api)}</td><td colspan="9" class="muted">and ${b.more} more</td></tr>`;
    const p = b.props;
    const q = (v) => esc(typeof v === "object" ? JSON.stringify(v) : v);
    const s = b.sample;
    // Exact when every partition was read; else scaled from a sample
    // (or, with at_least, a lower bound).
    const mark = !s ? "" : s.at_least ? "≥ " : s.read < s.partitions ? "≈ " : "";
    const how = !s ? (b.sample_error ? esc(b.sample_error) : "not sampled")
      : `${s.read} of ${s.partitions} partitions read`;
    const figures = s ? `<td title="${how}">${mark}${s.objects.toLocaleString()}</td><td title="${how}">${mark}${bytes(s.bytes)}</td>`
      : `<td class="muted" colspan="2">${how}</td>`;
    return `<tr><td>${esc(b.api)}</td><td>${esc(b.name)}</td>${figures}<td>${p.n_val}</td><td>${q(p.r)}</td><td>${q(p.w)}</td>
      <td>${q(p.dw)}</td><td>${p.allow_mult}</td><td>${p.last_write_wins}</td></tr>`;
  }).join("") || `<tr><td colspan="10" class="muted">no buckets</td></tr>`;
}

async function loadKeys() {
  try {
    const r = await api("/admin/keys");
    $("keys").tBodies[0].innerHTML = r.keys.map((k) => {
      const rights = Object.entries(k.buckets).map(([b, g]) => `${b}: ${JSON.stringify(g)}`).join("; ");
      return `<tr><td>${esc(k.access_key_id)}</td><td>${esc(k.name)}</td>
        <td>${k.create_buckets ? "may create buckets; " : ""}${esc(rights) || "—"}</td></tr>`;
    }).join("") || `<tr><td colspan="3" class="muted">no keys</td></tr>`;
  } catch (e) {
    $("keys").tBodies[0].innerHTML = `<tr><td colspan="3" class="down">${esc(e.message)}</td></tr>`;
  }
}

function fillActionNodes() {
  const select = $("action-node");
  const chosen = select.value;
  select.innerHTML = state.cluster.nodes.filter((n) => n.state !== "removed").map((n) =>
    `<option value="${esc(n.id)}" ${n.id === chosen ? "selected" : ""}>${esc(n.id)} (${esc(n.zone)})</option>`).join("");
}

let pending = null;
async function preview() {
  const action = $("action").value;
  const node = $("action-node").value;
  const zone = $("action-zone").value;
  const capacity = $("action-capacity").value;
  const other = $("action-other").value.trim();
  pending = null;
  $("confirm").hidden = true;
  $("action-result").textContent = "";
  let q = `action=${action === "replace" ? "leave" : action}&node=${encodeURIComponent(node)}`;
  if (zone) q += `&zone=${encodeURIComponent(zone)}`;
  if (capacity) q += `&capacity=${encodeURIComponent(capacity)}`;
  try {
    const r = await api(`/admin/ui/plan?${q}`);
    const moves = r.moves.map((m) =>
      `<li>partition ${m.partition}: ${m.gains.map(short).join(", ") || "—"} gain${m.loses.length ? `, ${m.loses.map(short).join(", ")} lose` : ""}</li>`).join("");
    const note = action === "replace"
      ? "A replace hands every partition of the old node to the new one (shown: the old node's partitions)."
      : action === "join"
        ? `Confirm brings the node at RPC address <code>${esc(other || "?")}</code> into the cluster through this node; it must be running with this cluster's secret (or start it with <code>--join ${esc(state.cluster.nodes[0].rpc)}</code> instead). Planned moves for a node in zone ${esc(zone || "default")} (set the zone and capacity it was started with):`
        : "Planned partition moves:";
    $("plan").innerHTML = `<p>${note}</p><p>${r.moves.length} partitions move.</p><ul>${moves}</ul>`;
    if (action === "join" && !other) return;
    pending = { action, node, zone, capacity, other };
    $("confirm").hidden = false;
  } catch (e) {
    $("plan").innerHTML = `<p class="down">${esc(e.message)}</p>`;
  }
}

async function confirmAction() {
  if (!pending) return;
  const p = pending;
  const body = p.action === "leave" ? { node: p.node }
    : p.action === "replace" ? { old: p.node, new: p.other }
    : p.action === "join" ? { seed: p.other }
    : Object.assign({ node: p.node }, p.zone ? { zone: p.zone } : {}, p.capacity ? { capacity: Number(p.capacity) } : {});
  const path = { leave: "leave", replace: "replace", update: "update", join: "join" }[p.action];
  try {
    const r = await api(`/admin/cluster/${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    $("action-result").textContent = `done: ${JSON.stringify(r)}`;
  } catch (e) {
    $("action-result").textContent = `failed: ${e.message}`;
  }
  pending = null;
  $("confirm").hidden = true;
}

async function poll() {
  try {
    state = await api("/admin/ui/state");
    $("status").textContent = `node ${short(state.node_id)} · updated ${new Date(state.now_ms).toLocaleTimeString()}`;
    document.body.dataset.updated = String(state.now_ms);
    drawOverview();
    drawRing();
    drawTransfers();
    drawBuckets();
    fillActionNodes();
    if (!$("traffic").hidden) drawTraffic();
  } catch (e) {
    $("status").textContent = `cannot reach the node: ${e.message}`;
  }
  setTimeout(poll, POLL_MS);
}

window.addEventListener("hashchange", showView);
$("impact-node").addEventListener("change", showImpact);
$("preview").addEventListener("click", preview);
$("confirm").addEventListener("click", confirmAction);
showView();
loadKeys();
poll();
