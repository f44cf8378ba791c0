// The demo page: an upload form with drag-and-drop and a progress bar, and a chat over a WebSocket
// that shows how each connection ended and reconnects only when the close code says so.
"use strict";

const demo = { closeEvents: [], uploads: [], reconnects: 0 };
window.demo = demo;

const $ = (id) => document.getElementById(id);

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

// ---- uploads --------------------------------------------------------------------------------------

let dropped = [];

function showChosen(files) {
  const list = $("chosen");
  list.replaceChildren(...Array.from(files).map((f) => text("li", `${f.name} (${f.size} bytes)`)));
}

function formatBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} bytes`;
}

function showResult(status, body) {
  const out = $("upload-result");
  out.replaceChildren();
  if (status !== 200) {
    const detail = body && body.detail ? body.detail : `HTTP ${status}`;
    const title = body && body.title ? body.title : "Upload refused";
    out.append(text("p", `${status} ${title}: ${detail}`, "error"));
    out.dataset.status = String(status);
    return;
  }
  out.dataset.status = "200";
  const table = document.createElement("table");
  const head = document.createElement("tr");
  for (const h of ["field", "value"]) head.append(text("th", h));
  table.append(head);
  for (const [name, value] of Object.entries(body.fields)) {
    const row = document.createElement("tr");
    row.append(text("td", name), text("td", value));
    table.append(row);
  }
  out.append(table);
  for (const file of body.files) {
    const t = document.createElement("table");
    t.className = "file";
    for (const [k, v] of [
      ["field", file.field],
      ["safe filename", file.filename],
      ["sent as", file.raw_filename],
      ["type", file.content_type],
      ["size", `${file.size} bytes (${formatBytes(file.size)})`],
      ["sha256", file.sha256],
    ]) {
      const row = document.createElement("tr");
      row.append(text("th", k), text("td", v));
      t.append(row);
    }
    out.append(t);
  }
}

function upload(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("title", $("title").value);
  const files = dropped.length ? dropped : Array.from($("file").files);
  for (const f of files) form.append("file", f, f.name);
  for (const f of $("avatar").files) form.append("avatar", f, f.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/upload");
  xhr.setRequestHeader("Accept", "application/json");
  $("progress").value = 0;
  $("percent").textContent = "0 %";
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    const pct = Math.floor((e.loaded / e.total) * 100);
    $("progress").value = pct;
    $("percent").textContent = `${pct} %`;
  };
  xhr.onload = () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
    if (xhr.status === 200) { $("progress").value = 100; $("percent").textContent = "100 %"; }
    demo.uploads.push({ status: xhr.status, body });
    showResult(xhr.status, body);
  };
  xhr.onerror = () => {
    // The server may answer 413 and close before the browser finished sending.
    demo.uploads.push({ status: 0, body: null });
    showResult(0, { title: "Upload failed", detail: "the connection closed before an answer came" });
  };
  xhr.send(form);
}

function setUpDrop() {
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    dropped = Array.from(e.dataTransfer.files);
    showChosen(dropped);
  });
  $("file").addEventListener("change", () => { dropped = []; showChosen($("file").files); });
  $("upload-form").addEventListener("submit", upload);
}

async function showLimits() {
  try {
    const resp = await fetch("/limits");
    const l = await resp.json();
    $("limits").textContent =
      `Limits: ${formatBytes(l.max_file_size)} a file, ${l.max_files} files, ` +
      `${formatBytes(l.max_body_size)} a request` +
      (l.avatar_types ? `; avatar: ${l.avatar_types.join(", ")}` : "");
  } catch (_) {
    $("limits").textContent = "";
  }
}

// ---- WebSocket chat -------------------------------------------------------------------------------

// What a client should do after each close code (the package's reconnect table).
const STOP = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);
const BACKOFF = new Set([1001, 1006, 1011, 1014]);
const backoff = { base: 500, cap: 30000, attempt: 0 };

function advice(code) {
  if (STOP.has(code)) return { action: "stop", why: "retrying will not help" };
  if (BACKOFF.has(code)) {
    const ceiling = Math.min(backoff.cap, backoff.base * 2 ** backoff.attempt);
    backoff.attempt += 1;
    return { action: "retry", delay: Math.random() * ceiling, why: "exponential backoff, full jitter" };
  }
  if (code === 1012) return { action: "retry", delay: 5000 + Math.random() * 25000, why: "server restarting" };
  if (code === 1013) return { action: "ask", why: "server overloaded: try later" };
  return { action: "stop", why: "application close code" };
}

let socket = null;
let retryTimer = null;

function wsUrl() {
  const params = new URLSearchParams(location.search);
  const path = params.get("ws") || "/ws/chat";
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

function addMessage(value, cls) {
  const list = $("messages");
  list.append(text("li", value, cls));
  list.scrollTop = list.scrollHeight;
}

function connect() {
  clearTimeout(retryTimer);
  $("reconnect").hidden = true;
  $("ws-status").textContent = "connecting…";
  const ws = new WebSocket(wsUrl());
  socket = ws;
  let openedAt = 0;
  ws.onopen = () => {
    openedAt = Date.now();
    $("ws-status").textContent = "connected";
  };
  ws.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch (_) { msg = { text: String(e.data) }; }
    addMessage(msg.from ? `${msg.from}: ${msg.text}` : msg.text, msg.from ? "" : "system");
  };
  ws.onclose = (e) => {
    if (openedAt && Date.now() - openedAt > 10000) backoff.attempt = 0;  // a stable connection
    demo.closeEvents.push({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    const what = advice(e.code);
    $("ws-close").textContent = `closed: code ${e.code}${e.reason ? ` (${e.reason})` : ""}; ${what.why}`;
    $("ws-close").dataset.code = String(e.code);
    if (what.action === "retry") {
      $("ws-status").textContent = `reconnecting in ${(what.delay / 1000).toFixed(1)} s`;
      demo.reconnects += 1;
      retryTimer = setTimeout(connect, what.delay);
    } else if (what.action === "ask") {
      $("ws-status").textContent = "not connected";
      $("reconnect").hidden = false;
    } else {
      $("ws-status").textContent = "closed";
      $("reconnect").hidden = false;
    }
  };
}

function setUpChat() {
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("chat-input");
    if (socket && socket.readyState === WebSocket.OPEN && input.value) {
      socket.send(JSON.stringify({ text: input.value }));
      input.value = "";
    }
  });
  $("reconnect").addEventListener("click", () => { backoff.attempt = 0; connect(); });
  connect();
}

setUpDrop();
showLimits();
setUpChat();
