// The feeder view: the three-phase feeder on a canvas coloured by per-phase voltage, the
// per-phase voltage profile against distance, and the hosting-capacity map.
import { api, forgetKey, KeyRefused, setKey, takeKey } from "./api.js";
import { $, fmt, setText } from "./dom.js";
import { FeederCanvas, ramp } from "./feedercanvas.js";

const PH = ["A", "B", "C"];
// ANSI C84.1 Range A service voltage, 0.95-1.05 pu (shaded), beside the operating limits (dashed)
const ANSI_A = { type: "rect", xref: "paper", x0: 0, x1: 1, y0: 0.95, y1: 1.05, fillcolor: "rgba(46, 204, 113, 0.07)",
  line: { width: 0 }, layer: "below", label: { text: "ANSI C84.1 Range A", textposition: "top left", font: { size: 9, color: "#7dcea0" } } };
const PH_COLOR = ["#e5e9f0", "#e74c3c", "#3498db"];
let geo = null, snap = null, lim = null, view = null, hcView = null, hc = null, phase = "min";
const timing = (window.feederTiming = { start_ms: performance.now() });

const vAt = (i) => {
  if (!snap) return null;
  if (phase !== "min") return snap.v_pu[+phase][i];
  let m = null;
  for (let p = 0; p < 3; p++) { const v = snap.v_pu[p][i]; if (v !== null && v > 0.05 && (m === null || v < m)) m = v; }
  return m;
};

function vRamp() {
  const lo = lim.v_min_pu, hi = lim.v_max_pu, mid = (lo + hi) / 2;
  return ramp([[lo - 0.02, [192, 57, 43]], [lo, [231, 126, 34]], [lo + 0.25 * (hi - lo), [241, 196, 15]],
    [mid, [46, 204, 113]], [hi - 0.25 * (hi - lo), [52, 152, 219]], [hi, [142, 68, 173]], [hi + 0.02, [255, 0, 255]]]);
}

function bar(barId, ticksId, r, unit, digits) {
  $(barId).style.background = r.css;
  const t = $(ticksId); t.replaceChildren();
  for (const v of [r.lo, (r.lo + r.hi) / 2, r.hi]) {
    const s = document.createElement("span"); s.textContent = `${fmt(v, digits)} ${unit}`; t.append(s);
  }
}

function busText(i) {
  const b = geo.buses, lines = [`bus ${b.name[i]}  (${fmt(b.kv_ln[i], 3)} kV L-N, ${fmt(b.distance[i], 3)} ${geo.distance_unit} from the substation)`];
  for (let p = 0; p < 3; p++) {
    if (!(b.phases[i] & (1 << p))) continue;
    const v = snap ? snap.v_pu[p][i] : null, a = snap ? snap.angle_deg[p][i] : null;
    lines.push(v !== null && v <= 0.05 ? `${PH[p]}: de-energised` : `${PH[p]}: ${fmt(v, 4)} pu  ∠ ${fmt(a, 2)}°`);
  }
  return lines.join("\n");
}

function branchText(k) {
  const br = geo.branches, b = geo.buses;
  const lines = [`${br.kind[k]} ${br.name[k]}: ${b.name[br.from[k]]} → ${b.name[br.to[k]]}` +
    (br.kind[k] === "transformer" ? "" : `, ${fmt(br.length_km[k], 3)} km`) + (snap && !snap.closed[k] ? " (open)" : "")];
  for (let p = 0; p < 3; p++) {
    if (!(br.phases[k] & (1 << p)) || !snap) continue;
    if (snap.i_a[p][k] === null) { lines.push(`${PH[p]}: no flow measured here`); continue; }
    lines.push(`${PH[p]}: ${fmt(snap.i_a[p][k], 1)} A, ${fmt(snap.p_kw[p][k], 1)} kW, ${fmt(snap.q_kvar[p][k], 1)} kvar` +
      (snap.loading_pct[p][k] === null ? "" : `, ${fmt(snap.loading_pct[p][k], 1)} % of rating`));
  }
  return lines.join("\n");
}

function tip(text, x, y) {
  const t = $("tip");
  if (!text) { t.style.display = "none"; return; }
  t.textContent = text; t.style.display = "block"; t.style.left = `${x + 14}px`; t.style.top = `${y + 10}px`;
}

function devices(ctx, cv) {
  const d = geo.devices, sx = cv.sx, sy = cv.sy;
  ctx.lineWidth = 1.5;
  for (const r of d.regulators || []) {
    const x = sx[r.bus], y = sy[r.bus];
    ctx.fillStyle = "#f5b041"; ctx.beginPath(); ctx.moveTo(x, y - 7); ctx.lineTo(x - 6, y + 5); ctx.lineTo(x + 6, y + 5); ctx.closePath(); ctx.fill();
  }
  for (const c of d.capacitors || []) { ctx.fillStyle = "#48c9b0"; ctx.fillRect(sx[c.bus] - 5, sy[c.bus] - 5, 10, 10); }
  for (const s of d.switches || []) {
    const x = sx[s.bus], y = sy[s.bus];
    ctx.strokeStyle = s.closed ? "#ecf0f1" : "#7f8c8d"; ctx.beginPath();
    ctx.moveTo(x - 4, y - 4); ctx.lineTo(x + 4, y + 4); ctx.moveTo(x + 4, y - 4); ctx.lineTo(x - 4, y + 4); ctx.stroke();
  }
}

function drawFeeder() {
  const r = vRamp();
  bar("v-bar", "v-ticks", r, "pu", 3);
  const br = geo.branches;
  const live = (v) => (v === null || v <= 0.05 ? null : r(v));  // de-energised: grey
  const opts = {
    color: (i) => live(vAt(i)) || "#555",
    lineColor: (k) => (snap && !snap.closed[k] ? "#3a4654" : live(vAt(br.kind[k] === "transformer" ? br.to[k] : br.from[k])) || "#3a4654"),
    overlay: devices,
    onHover: (h, x, y) => { tip(h ? (h.kind === "bus" ? busText(h.i) : branchText(h.i)) : "", x, y); if (h) setText("info", h.kind === "bus" ? busText(h.i) : branchText(h.i)); },
    onPick: (h) => setText("picked", h.kind === "bus" ? busText(h.i) : branchText(h.i)),
  };
  if (!view) view = new FeederCanvas($("feeder-canvas"), geo, opts);
  else view.o = opts;
  return view.draw();
}

function tiles() {
  const s = snap.summary || {};
  setText("f-source", snap.source === "loop" ? "the running loop" : "one power flow (no loop)");
  let lo = null, hi = null;
  for (const p of [1, 2, 3]) {
    const a = s[`vmin_pu_phase${p}`], b = s[`vmax_pu_phase${p}`];
    if (a !== undefined && (lo === null || a < lo[0])) lo = [a, PH[p - 1]];
    if (b !== undefined && (hi === null || b > hi[0])) hi = [b, PH[p - 1]];
  }
  setText("f-vmin", lo ? `${fmt(lo[0], 4)} (${lo[1]})` : null);
  setText("f-vmax", hi ? `${fmt(hi[0], 4)} (${hi[1]})` : null);
  setText("f-losses", fmt(snap.losses_kw, 1));
}

// the classic OpenDSS profile: one trace per phase, branches as segments (null-separated)
async function drawProfile() {
  if (typeof Plotly === "undefined") return;
  const r = await api("/api/feeder/profile");
  if (!r.ok) return;
  const big = geo.buses.name.length > 2000;  // lines only: one SVG path per phase
  const traces = r.body.phases.map((ph, p) => {
    const x = [], y = [], text = [];
    for (let s = 0; s < ph.seg_from.length; s++) {
      const a = ph.seg_from[s], b = ph.seg_to[s];
      x.push(ph.distance[a], ph.distance[b], null); y.push(ph.v_pu[a], ph.v_pu[b], null);
      text.push(geo.buses.name[ph.bus[a]], geo.buses.name[ph.bus[b]], "");
    }
    return { x, y, text, name: `phase ${ph.phase}`, type: "scatter", mode: big ? "lines" : "lines+markers",
      line: { color: PH_COLOR[p], width: 1 }, marker: { size: big ? 2 : 4, color: PH_COLOR[p] },
      hovertemplate: `bus %{text} phase ${ph.phase}: %{y:.4f} pu at %{x:.3f} ${r.body.distance_unit}<extra></extra>` };
  });
  const band = (y, t) => ({ type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { color: "#e74c3c", width: 1, dash: "dash" }, label: { text: t, font: { size: 9, color: "#e74c3c" } } });
  const layout = {
    margin: { l: 58, r: 16, t: 10, b: 40 }, paper_bgcolor: "#16212e", plot_bgcolor: "#0b121a", font: { color: "#c8d6e5", size: 10 },
    legend: { orientation: "h", y: 1.1 }, xaxis: { gridcolor: "#2b3a4a", title: { text: `distance from the substation (${r.body.distance_unit})` } },
    yaxis: { gridcolor: "#2b3a4a", title: { text: "voltage (pu of the bus's L-N base)" } },
    shapes: [ANSI_A, band(lim.v_min_pu, `limit ${lim.v_min_pu} pu`), band(lim.v_max_pu, `limit ${lim.v_max_pu} pu`)],
  };
  await Plotly.react("p-profile3", traces, layout, { displayModeBar: false, responsive: true });
  timing.profile_ms = performance.now();
}

function hcText(i) {
  const lines = [`bus ${geo.buses.name[i]}: ${hc.der.toUpperCase()} hosting capacity`];
  for (let p = 0; p < 3; p++) if (hc.hc_kw[p][i] !== null) lines.push(`${PH[p]}: ${fmt(hc.hc_kw[p][i], 0)} kW`);
  if (hc.limit[i] >= 0) lines.push(`bound by: ${hc.limit_names[hc.limit[i]]}`);
  return lines.join("\n");
}

async function loadHosting() {
  const der = $("der").value;
  const r = await api(`/api/feeder/hosting?der=${der}`);
  if (!r.ok) { setText("hc-status", `(${r.detail})`); return; }
  if (r.body.status !== "ready") {
    setText("hc-status", r.body.status === "computing" ? "(computing on the server…)" : `(failed: ${r.body.error})`);
    if (r.body.status === "computing") setTimeout(loadHosting, 3000);
    return;
  }
  hc = r.body;
  setText("hc-status", `(${hc.origin}${hc.elapsed_s ? `, ${fmt(hc.elapsed_s, 1)} s` : ""})`);
  const vals = hc.min_kw.filter((v) => v !== null).sort((a, b) => a - b);
  // the scale ends at the 95th percentile (a few buses at the substation would flatten it)
  const hi = Math.max(10, vals.length ? vals[Math.floor(0.95 * (vals.length - 1))] : 10);
  const col = ramp([[0, [68, 1, 84]], [hi * 0.25, [59, 82, 139]], [hi * 0.5, [33, 145, 140]], [hi * 0.75, [94, 201, 98]], [hi, [253, 231, 37]]]);
  bar("hc-bar", "hc-ticks", col, "kW", 0);
  $("hc-ticks").lastChild.textContent = `≥ ${fmt(hi, 0)} kW`;
  const opts = {
    color: (i) => col(hc.min_kw[i]), lineColor: () => "#2b3a4a",
    onHover: (h, x, y) => { const t = h && h.kind === "bus" && hc.min_kw[h.i] !== null ? hcText(h.i) : ""; tip(t, x, y); if (t) setText("hc-info", t); },
  };
  if (!hcView) hcView = new FeederCanvas($("hc-canvas"), geo, opts);
  else hcView.o = opts;
  hcView.draw();
  timing.hosting_ms = performance.now();
}

function loadPlotly() {
  const s = document.createElement("script");
  s.src = "/static/plotly.min.js";
  s.onload = () => drawProfile();
  document.head.append(s);
}

async function refresh() {
  const r = await api("/api/feeder/snapshot");
  if (!r.ok) return;
  snap = r.body; tiles(); view.draw();
  if (typeof Plotly !== "undefined") drawProfile();
}

async function start() {
  if (!takeKey()) { $("keyform").hidden = false; $("main").hidden = true; return; }
  try {
    await api("/api/whoami");
    const t0 = performance.now();
    const [g, s, l] = await Promise.all([api("/api/feeder/geometry"), api("/api/feeder/snapshot"), api("/api/limits")]);
    if (!g.ok) { setText("conn", `no feeder view: ${g.detail}`); return; }
    geo = g.body; snap = s.ok ? s.body : null; lim = l.body;
    timing.fetch_ms = performance.now() - t0;
    setText("f-name", geo.name); setText("f-buses", geo.buses.name.length);
    if (snap) tiles();
    timing.draw_ms = drawFeeder();
    timing.first_draw_ms = performance.now();
    setText("f-draw", fmt(timing.first_draw_ms, 0));
    setText("conn", `${geo.layout === "coordinates" ? "bus coordinates" : "tree layout (no bus coordinates)"}; ${snap && snap.source === "loop" ? "live" : "snapshot"}`);
    requestAnimationFrame(() => setTimeout(loadPlotly, 0));
    loadHosting();
    $("phase").addEventListener("change", () => { phase = $("phase").value; drawFeeder(); });
    $("der").addEventListener("change", () => loadHosting());
    if (snap && snap.source === "loop") setInterval(refresh, 5000);
    window.feederView = { view, hcView: () => hcView, geo };
  } catch (e) {
    if (e instanceof KeyRefused) { forgetKey(); $("keyform").hidden = false; $("main").hidden = true; $("keymsg").textContent = `API key refused: ${e.message}`; }
    else setText("conn", `server unreachable (${e.message})`);
  }
}

$("keyform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const k = $("keyinput").value.trim();
  if (k) { setKey(k); $("keyinput").value = ""; $("keyform").hidden = true; $("main").hidden = false; start(); }
});
start();
