// Alarms, events, proposals and the operator's commands. Controls exist only for roles that
// may use them: operators (switch, DR, batteries, EV, acknowledge, approve), admins (mode).
import { command, KeyRefused } from "./api.js";
import { $, h } from "./dom.js";

let ROLE = null, onRefusedKey = () => {};
export const canOperate = () => ROLE === "operator" || ROLE === "admin";
export const isAdmin = () => ROLE === "admin";

export function setRole(role, refused) { ROLE = role; onRefusedKey = refused; }

// show the outcome of a command: done, or refused with the guard's (or the API's) reasons
function result(what, r) {
  const out = $("ctl-result");
  out.classList.remove("done", "refused");
  const b = r.body || {};
  if (r.ok) {
    out.classList.add("done");
    out.textContent = `${what}: done${b.plan ? ` (plan #${b.plan})` : ""}`;
    return;
  }
  out.classList.add("refused");
  let why = (b.reasons && b.reasons.length) ? b.reasons.join("; ") : null;
  if (!why && b.detail) why = typeof b.detail === "string" ? b.detail : b.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  out.textContent = `${what}: refused${r.status === 409 ? " by the safety guard" : ` (${r.status})`}: ${why || "no reason given"}`;
}

async function send(what, path, body) {
  try { result(what, await command(path, body)); } catch (e) {
    if (e instanceof KeyRefused) onRefusedKey(e.message); else result(what, { ok: false, status: 0, body: { detail: String(e) } });
  }
}

// "18, 25-27" -> [18, 25, 26, 27]
export function parseBuses(text) {
  const out = [];
  for (const part of String(text).split(/[,\s]+/).filter(Boolean)) {
    const m = part.match(/^(\d+)(?:-(\d+))?$/);
    if (!m) throw new Error(`not a bus id or range: ${part}`);
    const a = Number(m[1]), b = m[2] ? Number(m[2]) : a;
    for (let k = Math.min(a, b); k <= Math.max(a, b) && out.length < 2000; k++) out.push(k);
  }
  return out;
}

export function setupControls(grid) {
  if (!canOperate()) { $("ops").hidden = true; return; }
  $("ops").hidden = false;
  $("f-mode").hidden = !isAdmin();
  const sel = $("ctl-switch");
  sel.replaceChildren(...grid.switches.map((s) => h("option", { attrs: { value: s.id },
    text: `switch ${s.id}${s.line_index !== null && s.line_index !== undefined ? ` (line ${s.element})` : ""}${s.normally_open ? " tie" : ""}` })));
  const bat = $("ctl-storage");
  bat.replaceChildren(...grid.storage.map((s) => h("option", { attrs: { value: s.id }, text: `battery ${s.id} (bus ${s.bus})` })));
  $("f-storage").querySelectorAll("label:first-child, #ctl-storage-set, #ctl-storage-mw").forEach((e) => { e.hidden = !grid.storage.length; });
  const sw = (closed) => send(`${closed ? "close" : "open"} switch ${sel.value}`, "/api/commands/switch",
    { switch_id: Number(sel.value), closed, reason: `operator ${closed ? "closes" : "opens"} switch ${sel.value} from the dashboard` });
  $("ctl-switch-open").onclick = () => sw(false);
  $("ctl-switch-close").onclick = () => sw(true);
  $("ctl-dr-start").onclick = () => {
    let buses;
    try { buses = parseBuses($("ctl-dr-buses").value); } catch (e) { result("start DR", { ok: false, status: 400, body: { detail: e.message } }); return; }
    const level = Number($("ctl-dr-level").value);
    send(`DR at ${level}${buses.length ? ` at ${buses.length} bus(es)` : ""}`, "/api/commands/dr",
      { level, ...(buses.length ? { buses } : {}), reason: "operator DR event from the dashboard" });
  };
  $("ctl-dr-stop").onclick = () => send("stop DR", "/api/commands/dr", { level: 0.0, reason: "operator ends the DR event" });
  $("ctl-storage-set").onclick = () => send(`battery ${bat.value} set point`, "/api/commands/storage",
    { storage_id: Number(bat.value), p_mw: Number($("ctl-storage-mw").value) });
  $("ctl-ev-set").onclick = () => send("EV set point", "/api/commands/ev", { factor: Number($("ctl-ev").value) });
  $("ctl-mode-autonomous").onclick = () => send("mode autonomous", "/api/mode", { mode: "autonomous" });
  $("ctl-mode-propose").onclick = () => send("mode propose", "/api/mode", { mode: "propose" });
}

// a diagram pick: a switch selects it in the form, a shift-clicked bus joins the DR buses
export function picked(kind, item, ev) {
  if (!canOperate() || !item) return;
  if (kind === "switch") $("ctl-switch").value = String(item.id);
  if (kind === "bus" && ev && ev.shiftKey) {
    const f = $("ctl-dr-buses");
    f.value = f.value ? `${f.value}, ${item.id}` : String(item.id);
  }
}

export function renderAlarms(alarms) {
  const box = $("alarms");
  box.replaceChildren(...(alarms || []).map((a) => {
    const acked = a.acked_by !== null && a.acked_by !== undefined;
    const e = h("span", { cls: ["alarm", acked ? "acked" : "unacked", `sev-${a.severity}`], attrs: { "data-alarm": a.alarm },
      text: `${a.alarm}: ${a.text}${acked ? ` (acknowledged by ${a.acked_by})` : ""} ` });
    if (!acked && canOperate()) {
      const b = h("button", { cls: "ack", text: "acknowledge" });
      b.onclick = () => send(`acknowledge ${a.alarm}`, `/api/alarms/${encodeURIComponent(a.alarm)}/ack`, {});
      e.append(b);
    }
    return e;
  }));
}

// an event's text without its kind repeated ("market market interval…")
export function eventText(e) {
  const t = String(e.text ?? "");
  return t.toLowerCase().startsWith(String(e.kind).toLowerCase() + " ") ? t.slice(String(e.kind).length + 1) : t;
}

export function renderEvents(evs) {
  $("timeline").replaceChildren(...(evs || []).slice().reverse().map((e) =>
    h("li", { cls: [e.severity, `ev-${e.kind}`] },
      document.createTextNode(`${String(e.time || "").slice(11, 16)} `),
      h("b", { cls: "kind", text: String(e.kind).replace(/_/g, " ") }),
      document.createTextNode(` ${eventText(e)}`))));
}

export function renderProposals(props) {
  const pr = $("proposals");
  if (!(props || []).length) { pr.replaceChildren(h("i", { cls: "legend", text: "none" })); return; }
  const rows = props.map((p) => {
    const d = h("div", { cls: "proposal", attrs: { "data-plan": Number(p.id) } },
      document.createTextNode(`#${Number(p.id)} `), h("b", { text: p.source }),
      document.createTextNode(`: ${String(p.reason || "").slice(0, 140)} `));
    if (canOperate()) {
      for (const what of ["approve", "reject"]) {
        const b = h("button", { cls: "decide", text: what });
        b.onclick = () => send(`${what} #${p.id}`, `/api/proposals/${Number(p.id)}/${what}`, {});
        d.append(b, document.createTextNode(" "));
      }
    }
    return d;
  });
  if (!canOperate()) rows.push(h("i", { cls: "legend", text: "approving or rejecting needs an operator key" }));
  pr.replaceChildren(...rows);
}
