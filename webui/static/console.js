// Slate console: confirmation prompts and live job progress (server-sent events).
// Plain JavaScript, no libraries; pages work without it (they just don't update live).
"use strict";

document.addEventListener("submit", (ev) => {
  const form = ev.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) ev.preventDefault();
});

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Number(n || 0);
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n.toFixed(0)} B` : `${n.toFixed(1)} ${units[i]}`;
}

function duration(s) {
  if (s === null || s === undefined || s === "") return "–";
  s = Math.floor(Number(s));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

function stateBadge(s) { return el("span", { class: `state ${s}` }, s); }

function bar(job) {
  const p = el("progress", { max: "100", value: String(job.percent) }, `${job.percent} %`);
  return el("div", { class: job.state === "done" ? "bar done" : "bar" }, p, el("em", {}, `${job.percent} %`));
}

function jobLink(job) { return el("a", { href: `/jobs/${job.id}` }, `#${job.id}`); }

function what(job) {
  const cell = [job.action];
  if (job.image) cell.push(" ", el("span", { class: "mono" }, job.image + (job.version ? `@${job.version}` : "")));
  return cell;
}

function liveRow(job) {
  const state = el("td", {}, stateBadge(job.state));
  if (job.not_before && job.state === "pending") state.append(" ", el("span", { class: "small muted" }, `at ${job.not_before}`));
  return el("tr", { "data-job": String(job.id) },
    el("td", {}, jobLink(job)), el("td", {}, job.host_name), el("td", {}, ...what(job)), state,
    el("td", {}, job.phase || "–"), el("td", {}, bar(job)),
    el("td", { class: "num" }, job.rate ? `${bytes(job.rate)}/s` : "–"),
    el("td", { class: "num" }, duration(job.eta)));
}

function endedRow(job) {
  return el("tr", { "data-job": String(job.id) },
    el("td", {}, jobLink(job)), el("td", {}, job.host_name), el("td", {}, ...what(job)),
    el("td", {}, stateBadge(job.state)), el("td", {}, job.finished_at || job.updated_at),
    el("td", { class: "reason" }, job.state === "failed" ? job.reason : ""));
}

function fill(tbodyId, emptyId, rows) {
  const body = document.getElementById(tbodyId);
  if (!body) return;
  body.replaceChildren(...rows);
  const empty = document.getElementById(emptyId);
  if (empty) empty.hidden = rows.length > 0;
}

function liveDashboard() {
  const source = new EventSource("/api/v1/events");
  source.addEventListener("jobs", (ev) => {
    const data = JSON.parse(ev.data);
    fill("active-jobs", "no-active", data.active.map(liveRow));
    fill("ended-jobs", "no-ended", data.ended.map(endedRow));
  });
}

function liveJob(card) {
  const id = card.getAttribute("data-job-id");
  const source = new EventSource(`/api/v1/events?job=${encodeURIComponent(id)}`);
  source.addEventListener("job", (ev) => {
    const { job, log } = JSON.parse(ev.data);
    document.getElementById("job-state").replaceChildren(stateBadge(job.state));
    document.getElementById("job-phase").textContent = job.phase || "–";
    document.getElementById("job-bar").replaceChildren(bar(job));
    let text = job.bytes_total ? `${bytes(job.bytes_done)} of ${bytes(job.bytes_total)}` : "-";
    if (job.bytes_total && job.rate) text += ` at ${bytes(job.rate)}/s, ETA ${duration(job.eta)}`;
    document.getElementById("job-bytes").textContent = text;
    document.getElementById("job-reason").textContent = job.reason || "";
    const pre = document.getElementById("job-log");
    pre.textContent = log.length ? log.map((l) => `${l.at}  ${l.line}\n`).join("") : "(no lines yet)";
    pre.scrollTop = pre.scrollHeight;
    // The Cancel/Retry buttons depend on the state: reload once when the job ends.
    if (!job.active && card.getAttribute("data-active") !== "false") {
      card.setAttribute("data-active", "false");
      source.close();
      if (card.getAttribute("data-was-active") === "true") window.location.reload();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (!window.EventSource) return;
  if (document.querySelector('[data-live="jobs"]')) liveDashboard();
  const room = document.querySelector('[data-live="room"]');
  if (room) liveRoom(room.getAttribute("data-room"));
  const card = document.querySelector('[data-live="job"]');
  if (card) liveJob(card);
});

// The room view asks for the room's status every 2 s (a room is a few dozen rows).
function seatRow(s) {
  const rc = s.roomcast;
  const how = rc ? [`${rc.transport}: ${bytes(rc.mcast_bytes)} multicast, ${bytes(rc.http_bytes)} HTTP`,
    rc.why ? el("span", { class: "small muted" }, ` (${rc.why})`) : "",
    rc.forged ? el("span", { class: "small warn", "data-forged": String(rc.forged) }, ` · ${rc.forged} forged datagrams dropped`) : ""] : ["–"];
  const pct = s.percent === null || s.percent === undefined ? "–" :
    el("div", { class: "bar" }, el("progress", { max: "100", value: String(s.percent) }), el("em", {}, `${s.percent} %`));
  return el("tr", { "data-host": s.host },
    el("td", {}, s.host),
    el("td", {}, s.job ? el("a", { href: `/jobs/${s.job}` }, `#${s.job}`) : "–"),
    el("td", {}, s.state ? stateBadge(s.state) : el("span", { class: "muted" }, "no job")),
    el("td", {}, s.phase || "–"), el("td", {}, pct),
    el("td", { class: "num" }, s.rate ? `${bytes(s.rate)}/s` : "–"),
    el("td", { class: "num" }, duration(s.eta)), el("td", {}, ...how));
}

function liveRoom(name) {
  const tick = async () => {
    try {
      const r = await fetch(`/rooms/${encodeURIComponent(name)}/status`, { credentials: "same-origin" });
      if (!r.ok) return;
      const st = await r.json();
      const t = st.totals;
      document.getElementById("room-totals").replaceChildren(
        `${t.done} done · ${t.running} running · ${t.failed} failed · ${t.waiting} not yet booted · ${t.idle} without a job`);
      document.getElementById("room-seats").replaceChildren(...st.seats.map(seatRow));
      document.getElementById("room-sessions").replaceChildren(...st.sessions.flatMap((s) => [el("p", { class: "card" },
        "Served by roomcast (multicast): ", el("span", { class: "mono" }, `${s.image}@${s.version}`),
        ` on ${s.group}:${s.port} at ${Math.round(s.rate / 1e6)} Mbit/s — ${bytes(s.sent_bytes)} sent` + (s.ended ? " (ended)" : "")),
        s.warning ? el("p", { class: "card warn", "data-warning": "forged" }, s.warning) : ""]));
    } catch (e) { /* the next tick tries again */ }
  };
  setInterval(tick, 2000);
}
