// The operator console's page: state pushed over Server-Sent Events (/api/stream), no polling.
// Everything shown is set with textContent: data from the database never becomes markup.
"use strict";

const COLOURS = ["#0969da", "#8250df", "#bf3989", "#1a7f37", "#9a6700", "#cf222e"];
let actionsEnabled = false;
let history = [];
let windowSeconds = 900;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(state) {
  const text = { ok: "ok", warn: "check", bad: "attention" }[state] || state;
  return el("span", { class: `badge ${state}` }, text);
}

function card(id, title, part, facts) {
  const state = (part && part.state) || "bad";
  const node = el("article", { class: `card ${state}`, id, "data-state": state },
    el("h3", {}, title, badge(state)),
    el("div", { class: "summary" }, part ? part.summary || "" : "no data"));
  if (part && part.error) node.append(el("div", { class: "error" }, part.error));
  if (facts && facts.length) {
    const list = el("dl");
    for (const [name, value] of facts) list.append(el("dt", {}, name), el("dd", {}, value));
    node.append(list);
  }
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 120 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

function renderOverview(snapshot) {
  const cards = [];
  const relay = snapshot.relay;
  const relayFacts = relay && !relay.error ? [
    ["backlog", `${relay.backlog} events`],
    ["oldest unpublished", seconds(relay.oldest_unpublished_seconds)],
    ["group", relay.group],
    ["shards", `${relay.owners.length} of ${relay.shards} owned`],
    ["owners", relay.owners.map((o) => `${o.shard}: ${o.instance || "pid " + o.pid}`).join(", ") || "none"],
  ] : [];
  cards.push(card("relay", "Polling relay", relay, relayFacts));
  const quarantine = snapshot.quarantine;
  cards.push(card("quarantine-card", "Quarantine", quarantine,
    quarantine && quarantine.events ? [["events", String(quarantine.events.length)]] : []));
  if (snapshot.cdc) {
    const cdc = snapshot.cdc;
    const facts = cdc.error ? [] : [
      ["connector", cdc.connector ? cdc.connector.state : "not registered"],
      ["tasks", cdc.connector ? cdc.connector.tasks.map((t) => `${t.id}: ${t.state}`).join(", ") : "–"],
      ["slot", cdc.slot ? (cdc.slot.active ? "active" : "INACTIVE") : "none"],
      ["WAL retained", cdc.slot ? `${cdc.slot.retained_bytes} bytes` : "–"],
    ];
    cards.push(card("cdc", `CDC relay ${cdc.connector_name || ""}`, cdc, facts));
  }
  for (const p of snapshot.projectors) {
    const facts = p.error ? [] : [
      ["lag", `${p.total_lag} records`],
      ["dead letters", String(p.dead_letters)],
      ["group", p.group],
    ];
    if (p.rebuild) facts.push(["rebuild", `${p.rebuild.percent} %`]);
    cards.push(card(`projector-${p.projector || "?"}`, `Projector ${p.projector || ""}`, p, facts));
  }
  for (const p of snapshot.processors || []) {
    const facts = p.error ? [] : [
      ["lag", `${p.total_lag} records`],
      ["mode", p.mode],
      ["hanging transactions", String(p.hanging_transactions)],
      ["group", p.group],
    ];
    cards.push(card(`processor-${p.processor || "?"}`, `Processor ${p.processor || ""}`, p, facts));
  }
  for (const k of snapshot.kv || []) {
    const facts = k.error ? [] : [
      ["partitions", String(k.partitions.length)],
      ["cleanup.policy", k.compaction["cleanup.policy"] || "?"],
      ["delete.retention.ms", k.compaction["delete.retention.ms"] || "?"],
    ];
    cards.push(card(`kv-${k.topic || "?"}`, `KV store ${k.topic || ""}`, k, facts));
  }
  for (const g of snapshot.gateways || []) {
    const facts = g.error ? [] : [
      ["connections", String(g.connections)],
      ["pushed", String(g.pushed)],
      ["dropped", String(g.drops)],
      ["health", g.health.status],
    ];
    cards.push(card(`gateway-${g.url || "?"}`, `Gateway ${g.url || ""}`, g, facts));
  }
  document.getElementById("overview").replaceChildren(...cards);
}

function renderQuarantine(part) {
  const body = document.querySelector("#quarantine tbody");
  const events = (part && part.events) || [];
  document.getElementById("quarantine-count").textContent = part && part.error ? "(cannot read)" : `(${events.length})`;
  const rows = events.map((e) => {
    const buttons = actionsEnabled ? [
      el("button", { onclick: () => act("requeue", e.ce_id), "data-action": "requeue" }, "requeue"),
      el("button", { class: "danger", onclick: () => act("discard", e.ce_id), "data-action": "discard" }, "discard"),
    ] : [];
    return el("tr", { "data-ce-id": e.ce_id },
      el("td", {}, el("code", {}, e.ce_id)),
      el("td", {}, `${e.aggregate_type}/${e.aggregate_id}`),
      el("td", {}, `${e.type} → ${e.topic}`),
      el("td", {}, new Date(e.quarantined_at).toLocaleString()),
      el("td", {}, e.reason),
      el("td", {}, ...buttons));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "nothing quarantined")));
  body.replaceChildren(...rows);
}

function renderProjectors(projectors) {
  const blocks = projectors.map((p) => {
    const block = el("div", { class: "projector", "data-projector": p.projector || "" },
      el("h3", {}, `${p.projector || "?"} `, badge(p.state || "bad"), " ", el("span", { class: "muted" }, p.summary || "")));
    if (p.error) { block.append(el("div", { class: "error" }, p.error)); return block; }
    if (p.rebuild) {
      block.append(el("div", { class: "muted" }, `rebuild in progress: ${p.rebuild.done} of ${p.rebuild.total} offsets`),
        el("div", { class: "progress" }, el("div", { style: `width: ${Math.min(p.rebuild.percent, 100)}%` })));
    }
    const table = el("table", {}, el("thead", {}, el("tr", {},
      ...["topic", "partition", "stored offset", "end", "lag"].map((h) => el("th", {}, h)))));
    const body = el("tbody");
    for (const row of p.partitions) {
      body.append(el("tr", { class: row.lag > 0 ? "lagging" : "" },
        el("td", {}, row.topic), el("td", { class: "num" }, row.partition),
        el("td", { class: "num" }, row.next_offset === null ? "–" : row.next_offset),
        el("td", { class: "num" }, row.high), el("td", { class: "num" }, row.lag)));
    }
    table.append(body);
    block.append(table);
    return block;
  });
  if (!blocks.length) blocks.push(el("p", { class: "muted" }, "no projector watched (outbox console --projector NAME)"));
  document.getElementById("projectors").replaceChildren(...blocks);
}

function renderProcessors(processors) {
  const blocks = processors.map((p) => {
    const block = el("div", { class: "projector", "data-processor": p.processor || "" },
      el("h3", {}, `${p.processor || "?"} `, badge(p.state || "bad"), " ", el("span", { class: "muted" }, p.summary || "")));
    if (p.error) { block.append(el("div", { class: "error" }, p.error)); return block; }
    const table = el("table", {}, el("thead", {}, el("tr", {},
      ...["topic", "partition", "position", "last stable", "end", "lag", "open transaction"].map((h) => el("th", {}, h)))));
    const body = el("tbody");
    for (const row of p.partitions) {
      const open = row.open_transaction_seconds === null ? "–"
        : `${seconds(row.open_transaction_seconds)}${row.hanging_transaction ? " (hanging)" : ""}`;
      body.append(el("tr", { class: row.lag > 0 || row.hanging_transaction ? "lagging" : "" },
        el("td", {}, row.topic), el("td", { class: "num" }, row.partition),
        el("td", { class: "num" }, row.position === null ? "–" : row.position),
        el("td", { class: "num" }, row.stable), el("td", { class: "num" }, row.end),
        el("td", { class: "num" }, row.lag), el("td", {}, open)));
    }
    table.append(body);
    block.append(table);
    return block;
  });
  document.getElementById("processors-panel").hidden = !blocks.length;
  document.getElementById("processors").replaceChildren(...blocks);
}

function series() {
  const lines = { backlog: [] };
  for (const s of history) {
    if (s.backlog !== null) lines.backlog.push([s.at, s.backlog]);
    for (const [name, lag] of Object.entries(s.lags)) (lines[`lag ${name}`] ||= []).push([s.at, lag]);
  }
  return lines;
}

function renderChart() {
  const svg = document.getElementById("chart");
  const lines = series();
  const now = history.length ? history[history.length - 1].at : Date.now() / 1000;
  // The x axis runs from the first sample (at least a minute, at most the window) to now.
  const first = history.length ? history[0].at : now;
  const span = Math.min(windowSeconds, Math.max(60, now - first));
  const start = now - span;
  const max = Math.max(1, ...Object.values(lines).flat().map(([, v]) => v));
  const ns = "http://www.w3.org/2000/svg";
  const shapes = [];
  const legend = [];
  Object.entries(lines).forEach(([name, points], i) => {
    const colour = COLOURS[i % COLOURS.length];
    const polyline = document.createElementNS(ns, "polyline");
    polyline.setAttribute("fill", "none");
    polyline.setAttribute("stroke", colour);
    polyline.setAttribute("stroke-width", "2");
    polyline.setAttribute("vector-effect", "non-scaling-stroke");
    polyline.setAttribute("data-series", name);
    polyline.setAttribute("points", points.map(([t, v]) =>
      `${(785 * (t - start) / span).toFixed(1)},${(195 - 185 * v / max).toFixed(1)}`).join(" "));
    shapes.push(polyline);
    if (points.length) {  // the newest value as a dot: visible from the first sample on
      const [t, v] = points[points.length - 1];
      const dot = document.createElementNS(ns, "circle");
      dot.setAttribute("cx", (785 * (t - start) / span).toFixed(1));
      dot.setAttribute("cy", (195 - 185 * v / max).toFixed(1));
      dot.setAttribute("r", "4");
      dot.setAttribute("fill", colour);
      shapes.push(dot);
    }
    const last = points.length ? points[points.length - 1][1] : "–";
    legend.push(el("span", {}, el("i", { style: `background: ${colour}` }), `${name}: ${last}`));
  });
  svg.replaceChildren(...shapes);
  document.getElementById("chart-scale").textContent =
    `top of the chart: ${max}; the last ${Math.round(span / 60 * 10) / 10} min`;
  document.getElementById("legend").replaceChildren(...legend);
}

function render(snapshot) {
  renderOverview(snapshot);
  renderQuarantine(snapshot.quarantine);
  renderProjectors(snapshot.projectors);
  renderProcessors(snapshot.processors || []);
  renderChart();
  document.getElementById("updated").textContent = `updated ${new Date(snapshot.at * 1000).toLocaleTimeString()}`;
  document.body.dataset.snapshotAt = String(snapshot.at);
}

function toast(text) {
  const node = document.getElementById("toast");
  node.textContent = text;
  node.style.display = "block";
  setTimeout(() => { node.style.display = "none"; }, 4000);
}

async function act(action, ceId) {
  let token = sessionStorage.getItem("outbox-console-token");
  if (!token) {
    token = window.prompt(`Token to ${action} quarantined events (OUTBOX_CONSOLE_TOKEN):`);
    if (!token) return;
  }
  const response = await fetch(`/api/quarantine/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ ce_ids: [ceId] }),
  });
  const body = await response.json();
  if (response.ok) {
    sessionStorage.setItem("outbox-console-token", token);
    toast(`${action === "discard" ? "discarded" : "requeued"} ${body.done.length} event(s)`);
  } else {
    if (response.status === 401) sessionStorage.removeItem("outbox-console-token");
    toast(`${action} refused: ${body.error}`);
  }
}

function setConnection(state, text) {
  const node = document.getElementById("connection");
  node.className = `badge ${state === "live" ? "ok" : "warn"}`;
  node.dataset.state = state;
  node.textContent = text;
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("hello", (event) => {
    const hello = JSON.parse(event.data);
    actionsEnabled = hello.actions;
    history = hello.history;
    const w = hello.watching;
    document.getElementById("watching").textContent =
      `database ${w.database} · kafka ${w.kafka}` + (w.cdc ? ` · connector ${w.cdc}` : "") +
      ` · ${w.projectors.length} projector(s) · ${(w.processors || []).length} processor(s)` +
      ` · ${(w.kv || []).length} KV store(s) · ${(w.gateways || []).length} gateway(s)`;
    document.getElementById("actions-note").textContent = actionsEnabled
      ? "Actions are on: requeue or discard asks for the console's token; each action is logged."
      : "Read-only console (start it with --allow-actions and a token to requeue or discard).";
    setConnection("live", "live");
    if (hello.snapshot) render(hello.snapshot);
  });
  source.addEventListener("snapshot", (event) => {
    const snapshot = JSON.parse(event.data);
    history.push({ at: snapshot.at, backlog: snapshot.relay && typeof snapshot.relay.backlog === "number" ? snapshot.relay.backlog : null,
      lags: Object.fromEntries([
        ...snapshot.projectors.filter((p) => typeof p.total_lag === "number").map((p) => [p.projector, p.total_lag]),
        ...(snapshot.processors || []).filter((p) => typeof p.total_lag === "number").map((p) => [p.processor, p.total_lag]),
      ]) });
    history = history.filter((s) => s.at >= snapshot.at - windowSeconds);
    render(snapshot);
  });
  source.onerror = () => setConnection("reconnecting", "reconnecting…");
}

connect();
