// The studio dashboard: paints the snapshot the page came with, then follows the studio's
// websocket (snapshot on connect, then numbered events, and readings such as a live input's
// level). While disconnected it greys out and reconnects by itself, asking for what it missed
// since the last sequence number.
"use strict";

const body = document.body;
const labels = JSON.parse(document.getElementById("labels").textContent);
const zone = body.dataset.timeZone;
const TIMELINE_HOURS = 7; // the current hour and the 6 after it, so the now-line moves across
const AS_RUN_ROWS = 50;
const ACTIVE_DOWNLOADS = ["queued", "downloading"];
const METER_SECONDS = 5; // a reading older than this is gone (its source or its link)
const liveInputs = new Map(); // channel id → the last reading of its live input, and when it came
let state = JSON.parse(document.getElementById("snapshot").textContent);
let serverOffsetMs = 0;
let lastSeq = null;
let socket = null;
let retryMs = 500;

function adoptSnapshot(snapshot) {
  state = snapshot;
  serverOffsetMs = Date.parse(snapshot.server_time) - Date.now();
  render();
}

function now() { return Date.now() + serverOffsetMs; }

// -- events ------------------------------------------------------------------------------------

const apply = {
  "playout.on_air"(p) {
    const channel = state.channels.find((c) => c.id === p.channel);
    if (channel) { channel.on_air = p.entry; channel.next = p.next; }
    state.as_run = state.as_run.filter((row) => row.id !== p.entry.id && (!p.closed || row.id !== p.closed.id));
    if (p.closed) state.as_run.unshift(p.closed);
    state.as_run.unshift(p.entry);
    state.as_run.sort((a, b) => b.started_at.localeCompare(a.started_at));
    state.as_run.length = Math.min(state.as_run.length, AS_RUN_ROWS);
  },
  "playout.channel"(p) {
    const channel = state.channels.find((c) => c.id === p.id);
    if (channel) Object.assign(channel, p);
  },
  "recorders.schedule"(p) {
    const recorder = state.recorders.find((r) => r.id === p.recorder);
    if (!recorder) return;
    const over = ["completed", "cancelled"].includes(p.status);
    if (recorder.window && recorder.window.id === p.id) recorder.window = over ? null : p;
    else if (!over && (!recorder.window || p.start_at < recorder.window.start_at)) recorder.window = p;
    const bar = state.timeline.bars.find((b) => b.kind === "recording" && b.id === p.id);
    if (bar) bar.status = p.status;
  },
  "station.alert"(p) {
    state.alerts = state.alerts.filter((a) => a.id !== p.id);
    if (!p.acknowledged) state.alerts.unshift(p);
  },
  "station.timeline"(p) { state.timeline = p; },
  "ingest.download"(p) {
    state.downloads = state.downloads.filter((d) => d.id !== p.id);
    if (ACTIVE_DOWNLOADS.includes(p.status)) state.downloads.push(p);
  },
};

function handle(message) {
  if (message.type === "snapshot") {
    lastSeq = message.seq;
    adoptSnapshot(message.snapshot);
  } else if (message.type === "meter" && message.meter.type === "playout.live_input") {
    const reading = message.meter.payload;
    if (reading.presenter === null) liveInputs.delete(reading.channel);
    else liveInputs.set(reading.channel, { ...reading, at: Date.now() });
    render();
  } else if (message.type === "event") {
    lastSeq = Math.max(lastSeq ?? 0, message.seq); // a late-committing event can come after a higher one
    const change = apply[message.event.type];
    if (change) { change(message.event.payload); render(); }
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const since = lastSeq === null ? "" : `?since=${lastSeq}`;
  socket = new WebSocket(`${scheme}://${location.host}/ws/studios/${body.dataset.studio}/${since}`);
  socket.onopen = () => { retryMs = 500; setConnected(true); };
  socket.onmessage = (e) => handle(JSON.parse(e.data));
  socket.onclose = (e) => {
    setConnected(false);
    if (e.code >= 4400 && e.code < 4500) { document.getElementById("connection").textContent = labels.refused; return; }
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
}

function setConnected(live) {
  const badge = document.getElementById("connection");
  badge.textContent = live ? labels.live : labels.reconnecting;
  badge.classList.toggle("live", live);
  body.classList.toggle("stale", !live);
}

// -- painting ----------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit" });
const clockTime = (iso) => (iso ? timeFormat.format(new Date(iso)) : "");

function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(s).padStart(2, "0")}`;
}

function channelCard(channel) {
  const onAir = channel.on_air;
  const card = el("article", { class: "card", "data-channel": channel.id },
    el("h3", {}, el("span", { text: channel.name }),
      el("span", { class: `health ${channel.healthy ? "ok" : "bad"}`,
                   text: `${channel.status}${channel.paused ? " · " + labels.paused : ""} · ${channel.healthy ? labels.healthy : labels.unhealthy}` })),
    el("div", { class: "on-air", text: onAir ? onAir.title : labels.nothing }));
  if (onAir && ["live", "live_lost"].includes(onAir.result)) {
    card.append(el("div", { class: `live ${onAir.result}`, text: onAir.result === "live"
      ? `${labels.liveNow} · ${onAir.presenter} · ${labels.since} ${clockTime(onAir.started_at)}`
      : `${labels.liveLost} · ${onAir.presenter}` }));
  }
  if (channel.recording) {
    const since = (now() - Date.parse(channel.recording.started_at)) / 1000;
    card.append(el("div", { class: "recording",
      text: `● ${labels.recording} ${channel.recording.show} · ${labels.elapsed} ${duration(since)}` }));
  }
  const input = liveInputs.get(channel.id);
  if (input && Date.now() - input.at < METER_SECONDS * 1000) {
    const level = Math.max(-60, input.level_dbfs);
    card.append(el("div", { class: "live-input" },
      el("span", { text: `${input.presenter} ${labels.presenterConnected} · ${labels.input} ${level.toFixed(0)} dBFS` }),
      el("meter", { min: "-60", max: "0", low: "-30", high: "-6", optimum: "-18", value: String(level) })));
  }
  if (onAir) {
    const elapsed = (now() - Date.parse(onAir.started_at)) / 1000;
    const times = el("div", { class: "times" }, el("span", { class: "elapsed", text: `${labels.elapsed} ${duration(elapsed)}` }));
    if (onAir.ends_at) {
      const total = (Date.parse(onAir.ends_at) - Date.parse(onAir.started_at)) / 1000;
      times.append(el("span", { class: "remaining", text: `${labels.remaining} ${duration(total - elapsed)}` }));
      card.append(times, el("progress", { max: String(total), value: String(Math.min(elapsed, total)) }));
    } else {
      card.append(times);
    }
  }
  card.append(el("div", { class: "next", text: `${labels.next}: ${channel.next ? `${clockTime(channel.next.start_at)} ${channel.next.title}` : "—"}` }));
  return card;
}

function recorderCard(recorder) {
  const window = recorder.window;
  let detail = labels.idle;
  if (window && ["starting", "running", "stopping"].includes(window.status)) {
    detail = `${window.name} · ${window.status} · ${labels.elapsed} ${duration((now() - Date.parse(window.start_at)) / 1000)}`;
  } else if (window) {
    detail = `${window.name} · ${window.status} · ${labels.startsIn} ${duration((Date.parse(window.start_at) - now()) / 1000)}`;
  }
  const card = el("article", { class: "card", "data-recorder": recorder.id }, el("h3", { text: recorder.name }), el("div", { text: detail }));
  if (window && window.silent_since) card.append(el("div", { class: "gap", text: `${labels.noAudio} ${clockTime(window.silent_since)}` }));
  return card;
}

function timeline() {
  const hourStart = Math.floor(now() / 3600000) * 3600000;
  const span = TIMELINE_HOURS * 3600000;
  const position = (iso) => Math.max(0, Math.min(100, ((Date.parse(iso) - hourStart) / span) * 100));
  const place = (node, item) => {
    node.style.left = `${position(item.start_at)}%`;
    node.style.width = `${Math.max(0.3, position(item.end_at) - position(item.start_at))}%`;
    return node;
  };
  const lanes = state.timeline.lanes.map((lane) => {
    const track = el("div", { class: "track" });
    for (const gap of state.timeline.gaps.filter((g) => g.lane === lane.id)) track.append(place(el("span", { class: "gap" }), gap));
    for (const bar of state.timeline.bars.filter((b) => b.lane === lane.id)) {
      track.append(place(el("span", { class: `bar ${bar.kind}`, title: `${clockTime(bar.start_at)}–${clockTime(bar.end_at)} ${bar.title}`,
                                      text: bar.title }), bar));
    }
    for (const conflict of state.timeline.conflicts.filter((c) => c.lane === lane.id)) track.append(place(el("span", { class: "conflict" }), conflict));
    return el("div", { class: "lane" }, el("span", { text: lane.title }), track);
  });
  const hourFormat = new Intl.DateTimeFormat(undefined, { timeZone: zone, hour: "2-digit", minute: "2-digit" });
  const ticks = el("div", { class: "track ticks" });
  for (let hour = 0; hour < TIMELINE_HOURS; hour += 1) {
    const tick = el("span", { class: "tick", text: hourFormat.format(new Date(hourStart + hour * 3600000)) });
    tick.style.left = `${(hour / TIMELINE_HOURS) * 100}%`;
    ticks.append(tick);
  }
  const nowLine = el("div", { class: "now-line" });
  nowLine.style.left = `calc(9rem + (100% - 9rem) * ${(now() - hourStart) / span})`;
  return [el("div", { class: "lane" }, el("span"), ticks), ...lanes, nowLine];
}

function alertItem(alert) {
  const button = el("button", { type: "button", text: labels.acknowledge });
  button.onclick = () => fetch(body.dataset.acknowledgeUrl.replace("/0/", `/${alert.id}/`), {
    method: "POST", headers: { "X-CSRFToken": body.dataset.csrf }, credentials: "same-origin",
  });
  return el("li", { class: `alert ${alert.severity}`, "data-alert": alert.id },
    button, el("strong", { text: alert.subject || alert.code }), el("div", { text: alert.message }));
}

function downloadItem(download) {
  const progress = download.bytes_total ? el("progress", { max: String(download.bytes_total), value: String(download.bytes_done) }) : null;
  return el("li", { "data-download": download.id }, el("div", { text: `${download.title} · ${download.status}` }), progress);
}

function asRunRow(row) {
  return el("tr", { class: `result-${row.result}` }, el("td", { text: clockTime(row.started_at) }), el("td", { text: row.channel_name }),
    el("td", { text: row.title }), el("td", { text: row.result }),
    el("td", { text: row.duration_seconds === null ? "…" : duration(row.duration_seconds) }));
}

function fill(selector, nodes, empty) {
  document.querySelector(selector).replaceChildren(...(nodes.length || !empty ? nodes : [el("li", { text: empty })]));
}

function render() {
  document.getElementById("clock").textContent = timeFormat.format(new Date(now()));
  fill("#channels .cards", state.channels.map(channelCard));
  fill("#recorders .cards", state.recorders.map(recorderCard));
  fill("#timeline .lanes", timeline());
  fill("#alerts ul", state.alerts.map(alertItem), labels.noAlerts);
  fill("#downloads ul", state.downloads.map(downloadItem), labels.noDownloads);
  fill("#as-run tbody", state.as_run.map(asRunRow));
}

// Edits to shows and recordings arrive as station.timeline events; as the 6-hour window moves on,
// a fresh snapshot each minute brings what enters it.
async function refreshSnapshot() {
  try {
    const response = await fetch(body.dataset.snapshotUrl, { credentials: "same-origin" });
    if (response.ok) adoptSnapshot(await response.json());
  } catch (error) { /* offline: the socket's reconnect brings a snapshot */ }
}

adoptSnapshot(state);
setInterval(render, 1000);
setInterval(refreshSnapshot, 60000);
connect();
