// The coordinator's status page: reads /status every REFRESH_MS and draws it. Text goes in with
// textContent only (partner names and refusal reasons come from configuration and logs).
"use strict";

const REFRESH_MS = 3000;
const CURVES = ["recall@20", "mrr@20", "action_accuracy", "conversion_auc", "loss"];

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", String(cell)));
  return tr;
}

function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

// ε per partner: the coordinator's epsilon_by_partner wherever it puts it, keyed by name or index.
function epsilons(status) {
  return status.epsilon_by_partner || status.campaign.epsilon_by_partner
    || status.service.epsilon_by_partner || {};
}

function drawHeader(status) {
  const service = status.service;
  document.getElementById("address").textContent = service.address || "";
  const link = document.getElementById("superlink");
  link.textContent = service.superlink_up ? "SuperLink up" : "SuperLink down";
  link.className = "pill " + (service.superlink_up ? "ok" : "critical");
  const updated = status.campaign.updated || service.updated;
  document.getElementById("updated").textContent = updated ? "updated " + updated : "";
}

function drawCampaign(campaign) {
  const done = campaign.completed_rounds || 0, planned = campaign.rounds || 0;
  document.getElementById("campaign-name").textContent = campaign.campaign || "none started";
  document.getElementById("campaign-state").textContent = campaign.state || "";
  document.getElementById("round-bar").style.width = planned ? (100 * done / planned) + "%" : "0";
  document.getElementById("round-text").textContent =
    planned ? `round ${done} of ${planned} completed` : "";
}

function drawAlerts(alerts) {
  const list = document.getElementById("alerts");
  list.replaceChildren(...alerts.map((alert) => {
    const item = el("li", undefined, "alert " + alert.grade);
    item.dataset.grade = alert.grade;
    item.append(el("span", alert.grade, "pill " + alert.grade), el("strong", " " + alert.subject),
      el("span", " " + alert.message));
    return item;
  }));
  if (!alerts.length) list.replaceChildren(el("li", "no alerts", "muted"));
}

function drawPartners(status) {
  const service = status.service, campaign = status.campaign;
  const connected = new Set(campaign.connected_nodes || []);
  const records = campaign.records || [];
  const dropped = new Set(records.length ? records[records.length - 1].dropped_partners || [] : []);
  const eps = epsilons(status);
  const partners = Object.entries(service.partners || {}).sort(([a], [b]) => a.localeCompare(b));
  let online = 0, out = 0;
  document.getElementById("partners").replaceChildren(...partners.map(([name, partner]) => {
    let state = "not seen";
    if (dropped.has(partner.index)) { state = "dropped"; out += 1; }
    else if (connected.has(partner.node_id)) { state = "online"; online += 1; }
    const epsilon = eps[name] ?? eps[String(partner.index)];
    const tr = row([name, partner.node_id ?? "–", el("td", state, "state " + state.replace(" ", "-")),
      fixed(epsilon, 2)]);
    tr.dataset.partner = name;
    return tr;
  }));
  const unknown = campaign.unknown_nodes || [];
  document.getElementById("partner-counts").textContent =
    `${online} online, ${out} dropped, ${partners.length - online - out} not seen, ` +
    `${unknown.length} unknown node(s) refused`;
  document.getElementById("unknown").textContent = unknown.length
    ? "unknown nodes never sampled: " + unknown.join(", ") : "";
  const refusals = Object.entries(service.refusals || {});
  document.getElementById("refusals").textContent = refusals.length
    ? "refused connections: " + refusals.map(([why, n]) => `${why} ${n}`).join(", ") : "";
}

function drawRegistry(campaign) {
  const promoted = campaign.promoted || {};
  const decision = promoted.decision || {};
  document.getElementById("gate-metric").textContent = decision.metric || "score";
  const rows = [];
  if (decision.candidate_version !== undefined) {
    rows.push(row(["champion", decision.champion_version ?? "initial weights",
      fixed(decision.champion, 4)]));
    rows.push(row(["challenger", decision.candidate_version, fixed(decision.candidate, 4)]));
  }
  document.getElementById("registry").replaceChildren(...rows);
  document.getElementById("verdict").textContent = promoted.version === undefined
    ? "no model promoted yet"
    : `serving version ${promoted.version}: ${promoted.reason || ""}`;
}

// One small SVG line chart per metric the rounds report, y from the data's own range.
function chart(name, points) {
  const ns = "http://www.w3.org/2000/svg", w = 280, h = 120, pad = 24;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (w - 2 * pad);
  const sy = (y) => h - pad - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * (h - 2 * pad);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "curve");
  svg.dataset.metric = name;
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "));
  svg.append(line);
  for (const [text, x, y, anchor] of [[fixed(y1, 3), 2, pad - 6, "start"],
    [fixed(y0, 3), 2, h - 6, "start"], ["round " + x1, w - 2, h - 6, "end"]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", x); label.setAttribute("y", y); label.setAttribute("text-anchor", anchor);
    label.textContent = text;
    svg.append(label);
  }
  const figure = el("figure");
  figure.append(svg, el("figcaption", name));
  return figure;
}

function drawCurves(campaign) {
  const records = campaign.records || [];
  const figures = CURVES.map((name) => [name, records
    .map((r) => [r.round, name === "loss" ? r.loss : (r.metrics || {})[name]])
    .filter(([, y]) => typeof y === "number")])
    .filter(([, points]) => points.length)
    .map(([name, points]) => chart(name, points));
  document.getElementById("curves").replaceChildren(...figures);
  if (!figures.length) document.getElementById("curves").append(el("p", "no round yet", "muted"));
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const response = await fetch("/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`/status answered ${response.status}`);
    const status = await response.json();
    status.service = status.service || {};
    status.campaign = status.campaign || {};
    drawHeader(status);
    drawCampaign(status.campaign);
    drawAlerts(status.alerts || []);
    drawPartners(status);
    drawRegistry(status.campaign);
    drawCurves(status.campaign);
    error.hidden = true;
    document.body.dataset.ready = "true";
  } catch (failure) {
    error.textContent = "cannot read /status: " + failure.message;
    error.hidden = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
