// The imports page: load the jobs with their versions, subscribe from the projection's positions,
// apply pushed status events newer than what is shown, reconnect and resume (docs/gateway.md).
"use strict";

const user = new URLSearchParams(location.search).get("user") || "alice";
const jobs = new Map();       // job id -> {job_id, file_name, status, imported, total, error, version}
const positions = new Map();  // "topic\u0000partition" -> next offset not seen
window.statusLog = [];        // every status change applied, in order (the page's tests read it)
let session = null;
let socket = null;
let delay = 500;

const STATUS = {
  "import.requested": "requested", "import.progress": "importing",
  "import.completed": "completed", "import.failed": "failed",
};
const key = (topic, partition) => topic + "\u0000" + partition;

function setConnection(state, text) {
  const badge = document.getElementById("connection");
  badge.dataset.state = state;
  badge.textContent = text;
}

function render(job) {
  let item = document.getElementById("job-" + job.job_id);
  if (!item) {
    item = document.createElement("li");
    item.className = "job";
    item.id = "job-" + job.job_id;
    item.innerHTML = '<div class="line"><span class="name"></span><span class="state"></span></div>' +
      '<div class="bar"><div></div></div><div class="error"></div>';
    document.getElementById("jobs").prepend(item);
  }
  const percent = job.total ? Math.floor((100 * job.imported) / job.total) : 0;
  item.dataset.status = job.status;
  item.dataset.percent = String(percent);
  item.querySelector(".name").textContent = job.file_name;
  item.querySelector(".state").textContent = `${job.status} · ${job.imported} / ${job.total} (${percent} %)`;
  item.querySelector(".bar div").style.width = percent + "%";
  item.querySelector(".error").textContent = job.error || "";
  document.getElementById("empty").hidden = jobs.size > 0;
}

function newer(job, version) {
  // one job's events share a partition: a larger offset is newer, anything else is stale
  return !job.version || version.offset > job.version.offset;
}

async function load() {
  const answer = await (await fetch(`/api/jobs?user=${encodeURIComponent(user)}`)).json();
  positions.clear();
  for (const [topic, partition, next] of answer.positions) positions.set(key(topic, partition), next);
  for (const loaded of answer.jobs) {
    const shown = jobs.get(loaded.job_id);
    if (!shown || newer(shown, loaded.version)) {
      jobs.set(loaded.job_id, loaded);
      render(loaded);
    }
  }
  document.getElementById("empty").hidden = jobs.size > 0;
}

function subscribe() {
  const since = [...positions].map(([k, next]) => { const [t, p] = k.split("\u0000"); return [t, Number(p), next]; });
  socket.send(JSON.stringify({ type: "subscribe", channel: "user:" + user, since: since.length ? since : null }));
}

function applyEvent(message) {
  const { topic, partition, offset } = message.version;
  const k = key(topic, partition);
  if (offset + 1 > (positions.get(k) || 0)) positions.set(k, offset + 1);
  const data = message.event.data;
  const shown = jobs.get(data.job_id);
  const version = { partition, offset };
  if (shown && !newer(shown, version)) return;  // already shown (a replay of what the load had)
  const job = {
    job_id: data.job_id, file_name: data.file_name, status: STATUS[message.event.type] || "importing",
    imported: data.imported, total: data.total, error: data.error || null, version,
  };
  jobs.set(job.job_id, job);
  window.statusLog.push({ job: job.job_id, type: message.event.type, imported: job.imported, offset });
  render(job);
}

async function handle(frame) {
  // the page asks for batched frames in connect: a frame is one message or an array of them, in order
  const parsed = JSON.parse(frame.data);
  for (const message of Array.isArray(parsed) ? parsed : [parsed]) await handleMessage(message);
}

async function handleMessage(message) {
  if (message.type === "connected") {
    subscribe();
  } else if (message.type === "event") {
    applyEvent(message);
  } else if (message.type === "subscribed") {
    if (message.reason) {  // the gap cannot be replayed: load the state again, subscribe from it
      await load();
      subscribe();
      return;
    }
    for (const [topic, partition, next] of message.positions || []) {
      if (!positions.has(key(topic, partition))) positions.set(key(topic, partition), next);
    }
    delay = 500;
    setConnection("live", "live");
  } else if (message.type === "error") {
    setConnection("offline", message.message);
  }
}

function connect() {
  setConnection("connecting", "connecting…");
  socket = new WebSocket(session.gateway);
  socket.onopen = () => socket.send(JSON.stringify({ type: "connect", token: session.token, batch: true }));
  socket.onmessage = handle;
  socket.onclose = async (event) => {
    setConnection("offline", `offline (${event.code}), reconnecting…`);
    if (event.code === 4001) { setConnection("offline", "refused: " + event.reason); return; }
    if (event.code === 4002) session = await (await fetch(`/api/session?user=${encodeURIComponent(user)}`)).json();
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 8000);
  };
}

async function upload() {
  const file = document.getElementById("file").files[0];
  const note = document.getElementById("message");
  if (!file) { note.dataset.kind = "error"; note.textContent = "Choose a CSV file first."; return; }
  const answer = await fetch(`/api/imports?user=${encodeURIComponent(user)}`, {
    method: "POST", headers: { "Content-Type": "text/csv", "X-File-Name": file.name }, body: await file.text(),
  });
  const body = await answer.json();
  if (!answer.ok) { note.dataset.kind = "error"; note.textContent = body.error; return; }
  note.dataset.kind = "ok";
  note.textContent = `${body.file_name}: ${body.total} contacts queued.`;
  if (!jobs.has(body.job_id)) {
    const job = { ...body, status: "requested", error: null, version: null };
    jobs.set(job.job_id, job);
    render(job);
  }
}

async function start() {
  document.getElementById("who").textContent = "signed in as " + user;
  document.getElementById("send").addEventListener("click", upload);
  session = await (await fetch(`/api/session?user=${encodeURIComponent(user)}`)).json();
  await load();
  connect();
}

start();
