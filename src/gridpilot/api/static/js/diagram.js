// The network diagram: drawn once from /api/grid, coloured per step, values on hover and click.
import { $, fmt } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const W = 1000, HGT = 500;
let grid = null, lim = null, last = null, pinned = null, onPick = () => {};
const lineEls = [], busEls = [], swEls = [];
let busIdx = {};

function el(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}

export function vColor(v, on) {
  if (!on) return "#555";
  if (v < lim.v_min_pu) return "#e74c3c";
  if (v < lim.v_warn_low_pu) return "#e67e22";
  if (v > lim.v_max_pu) return "#c0392b";
  if (v > lim.v_warn_high_pu) return "#8e44ad";
  return "#27ae60";
}

function lColor(p, live) {
  if (!live) return "#3a4654";
  if (p > lim.loading_max_pct) return "#e74c3c";
  if (p > lim.loading_warn_pct) return "#e67e22";
  if (p > 0.5 * lim.loading_max_pct) return "#f1c40f";
  return "#5dade2";
}

// a tie line's arc: control point off the chord, bowed towards free space (away from the source)
function arc(p, q) {
  const dx = q[0] - p[0], dy = q[1] - p[1], len = Math.hypot(dx, dy) || 1;
  let nx = -dy / len, ny = dx / len;
  if (nx < -0.1 || (Math.abs(nx) <= 0.1 && ny < 0)) { nx = -nx; ny = -ny; }
  const off = Math.min(0.3 * len, 120) + 25;
  const c = [(p[0] + q[0]) / 2 + nx * off, (p[1] + q[1]) / 2 + ny * off];
  const mid = [0.25 * p[0] + 0.5 * c[0] + 0.25 * q[0], 0.25 * p[1] + 0.5 * c[1] + 0.25 * q[1]];
  return { d: `M${p[0]},${p[1]} Q${c[0]},${c[1]} ${q[0]},${q[1]}`, mid };
}

// the point ``frac`` of the way along a polyline
function along(pts, frac) {
  const seg = pts.slice(1).map((c, k) => Math.hypot(c[0] - pts[k][0], c[1] - pts[k][1]));
  let left = frac * seg.reduce((a, b) => a + b, 0);
  for (let k = 0; k < seg.length; k++) {
    if (left <= seg[k] || k === seg.length - 1) {
      const f = seg[k] ? Math.min(left / seg[k], 1) : 0;
      return [pts[k][0] + f * (pts[k + 1][0] - pts[k][0]), pts[k][1] + f * (pts[k + 1][1] - pts[k][1])];
    }
    left -= seg[k];
  }
  return pts[0];
}

function legend() {
  $("diagram-legend").textContent =
    `buses: red below ${lim.v_min_pu} pu (the guard's limit), orange below ${lim.v_warn_low_pu}, green, ` +
    `purple above ${lim.v_warn_high_pu}, red above ${lim.v_max_pu}, grey without supply; lines by loading ` +
    `(orange above ${lim.loading_warn_pct} %, red above ${lim.loading_max_pct} %); squares are switches ` +
    "(filled closed, hollow open, red ring = fault indicator); dashed arcs are tie lines";
}

export function drawGrid(g, limits, pick) {
  grid = g; lim = limits; onPick = pick || onPick;
  legend();
  const svg = $("diagram");
  svg.replaceChildren();
  const pos = {};
  busIdx = {};
  g.buses.forEach((b, i) => { pos[b.id] = [b.x * W, b.y * HGT]; busIdx[b.id] = i; });
  const ties = new Map();  // line id -> switch of a normally open switch on it
  for (const s of g.switches) if (s.et === 0 && s.normally_open) ties.set(s.element, s);
  const gl = el("g", {}), gs = el("g", {}), gb = el("g", {});
  svg.append(gl, gs, gb);
  const mids = {};
  const paths = {};  // line id -> the polyline a switch on it sits on
  g.lines.forEach((l, i) => {
    const p = pos[l.from], q = pos[l.to];
    let e;
    if (ties.has(l.id)) {
      const a = arc(p, q);
      mids[l.id] = a.mid;
      e = el("path", { d: a.d, fill: "none", stroke: "#5dade2", "stroke-width": 3, class: "line tie", "data-line": l.id });
    } else {
      // a tree layout draws a branch as an elbow: down from the bus nearer the source, then across
      const [a, b] = p[0] <= q[0] ? [p, q] : [q, p];
      const pts = g.layout === "tree" && Math.abs(a[1] - b[1]) > 1 && Math.abs(a[0] - b[0]) > 1 ? [a, [a[0], b[1]], b] : [a, b];
      paths[l.id] = { pts, from: a === p ? l.from : l.to };
      e = el("polyline", { points: pts.map((c) => c.join(",")).join(" "), fill: "none", stroke: "#5dade2", "stroke-width": 3, class: "line", "data-line": l.id });
    }
    // a wide transparent copy underneath makes a thin line easy to hover
    const hit = e.cloneNode();
    hit.removeAttribute("data-line");
    hit.setAttribute("class", "hit");
    hit.setAttribute("stroke", "transparent");
    hit.setAttribute("stroke-width", 12);
    hover(hit, "line", i);
    hover(e, "line", i);
    gl.append(hit, e); lineEls[i] = e;
  });
  for (const t of g.transformers) {
    const p = pos[t.from], q = pos[t.to];
    gl.appendChild(el("line", { x1: p[0], y1: p[1], x2: q[0], y2: q[1], stroke: "#aaa", "stroke-width": 5 }));
  }
  g.switches.forEach((s, i) => {
    let x, y;
    if (s.line_index !== null && s.line_index !== undefined) {
      const l = g.lines[s.line_index];
      if (mids[l.id]) { [x, y] = mids[l.id]; } else {
        const { pts, from } = paths[l.id];
        [x, y] = along(from === s.bus ? pts : pts.slice().reverse(), 0.35);
      }
    } else { [x, y] = pos[s.bus]; }
    const e = el("rect", { x: x - 5, y: y - 5, width: 10, height: 10, fill: "#ecf0f1", stroke: "#ecf0f1", "stroke-width": 1.5, class: "switch", "data-switch": s.id });
    hover(e, "switch", i);
    gs.appendChild(e); swEls[i] = e;
  });
  g.buses.forEach((b, i) => {
    const [x, y] = pos[b.id];
    const e = el("circle", { cx: x, cy: y, r: 7, fill: "#27ae60", class: "bus", "data-bus": b.id });
    hover(e, "bus", i);
    gb.appendChild(e); busEls[i] = e;
    const t = el("text", { x: x + 7, y: y - 9, fill: "#aab7c4", "font-size": 11, class: "label" });
    t.textContent = b.id; gb.appendChild(t);
  });
  const at = (bus) => pos[bus];
  for (const d of g.generators) {
    const [x, y] = at(d.bus);
    const t = el("text", { x: x - 6, y: y + 21, fill: d.kind === 1 ? "#48c9b0" : "#f4d03f", "font-size": 13, class: "label" });
    t.textContent = d.kind === 1 ? "W" : "☀"; gb.appendChild(t);
  }
  for (const s of g.storage) {
    const [x, y] = at(s.bus);
    const t = el("text", { x: x + 7, y: y + 21, fill: "#af7ac5", "font-size": 12, class: "label" });
    t.textContent = "▮"; gb.appendChild(t);
  }
}

function hover(e, kind, i) {
  const tip = $("tip");
  e.addEventListener("mousemove", (ev) => {
    tip.textContent = describe(kind, i);
    tip.style.display = "block";
    const w = tip.offsetWidth;  // kept inside the window
    tip.style.left = `${ev.clientX + 14 + w > innerWidth ? Math.max(ev.clientX - 14 - w, 0) : ev.clientX + 14}px`;
    tip.style.top = `${ev.clientY + 10}px`;
  });
  e.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  e.addEventListener("click", (ev) => {
    pinned = { kind, i };
    $("info").textContent = describe(kind, i);
    onPick(kind, grid[kind === "bus" ? "buses" : kind === "line" ? "lines" : "switches"][i], ev);
  });
}

const supplied = (st) => st && st.energised && st.energised.some(Boolean);

export function describe(kind, i) {
  const st = last;
  const when = st && st.headline && st.headline.time ? `updated ${st.headline.time.replace("T", " ")} (simulated time)` : "no data yet";
  if (kind === "bus") {
    const b = grid.buses[i];
    const head = `bus ${b.id} · ${fmt(b.v_nom_kv, 2)} kV · ${b.distance_km === null ? "not reached from a source" : fmt(b.distance_km, 2) + " km from the substation"}`;
    if (!st || !st.v_pu) return `${head}\n${when}`;
    const on = st.energised[i];
    const v = on ? `voltage ${fmt(st.v_pu[i], 4)} pu (balanced power flow: one value for the three phases)` : "no supply";
    const inj = st.bus_load_mw ? `load ${fmt(st.bus_load_mw[i])} MW · generation ${fmt(st.bus_gen_mw[i])} MW (batteries net)` : "";
    return [head, v, inj, when].filter(Boolean).join("\n");
  }
  if (kind === "line") {
    const l = grid.lines[i];
    const tie = grid.switches.some((s) => s.et === 0 && s.element === l.id && s.normally_open);
    const head = `line ${l.id}: bus ${l.from} → bus ${l.to}, ${fmt(l.length_km, 2)} km${tie ? " (tie line, normally open)" : ""}`;
    if (!st || !st.line_loading_pct) return `${head}\n${when}`;
    const p = st.line_p_mw ? st.line_p_mw[i] : null;
    const flow = p === null || p === undefined ? "flow not metered (no flow sensor on this line)" : `flow ${fmt(p)} MW at bus ${l.from} (metered)`;
    return [head, `loading ${fmt(st.line_loading_pct[i], 1)} % (limit ${lim.loading_max_pct} %)`, flow, when].join("\n");
  }
  const s = grid.switches[i];
  const where = s.line_index !== null && s.line_index !== undefined ? `on line ${s.element} at bus ${s.bus}` : `at bus ${s.bus}`;
  if (!st || !st.switch_closed) return `switch ${s.id} ${where}`;
  return [`switch ${s.id} ${where}${s.normally_open ? " (tie, normally open)" : ""}`,
    st.switch_closed[i] ? "closed" : "open", st.fpi && st.fpi[i] ? "fault indicator picked up" : "", when].filter(Boolean).join("\n");
}

export function updateDiagram(st) {
  if (!grid || !st.v_pu) return;
  last = st;
  grid.buses.forEach((b, i) => {
    const e = busEls[i];
    e.setAttribute("fill", vColor(st.v_pu[i], st.energised[i]));
    e.dataset.v = st.v_pu[i]; e.dataset.energised = st.energised[i];
  });
  const lineOpen = {};
  grid.switches.forEach((s, i) => { if (s.et === 0 && st.switch_closed[i] === false) lineOpen[s.element] = true; });
  grid.lines.forEach((l, i) => {
    const e = lineEls[i];
    const live = !lineOpen[l.id] && (st.energised[busIdx[l.from]] || st.energised[busIdx[l.to]]);
    e.setAttribute("stroke", lColor(st.line_loading_pct[i], live));
    e.setAttribute("stroke-dasharray", lineOpen[l.id] ? "6 5" : "");
    e.dataset.loading = st.line_loading_pct[i];
  });
  grid.switches.forEach((s, i) => {
    const e = swEls[i];
    e.setAttribute("fill", st.switch_closed[i] ? "#ecf0f1" : "none");
    e.setAttribute("stroke", st.fpi[i] ? "#e74c3c" : "#ecf0f1");
    e.dataset.closed = st.switch_closed[i];
  });
  if (pinned) $("info").textContent = describe(pinned.kind, pinned.i);
}

export const isSupplied = supplied;
