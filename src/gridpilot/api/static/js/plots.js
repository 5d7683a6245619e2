// The charts (plotly.js): every axis says its unit; the guard's limits drawn where they apply.
import { $, setText } from "./dom.js";

const CFG = { displayModeBar: false, responsive: true };
const AX = { gridcolor: "#2b3a4a", zerolinecolor: "#2b3a4a" };
let lastDraw = 0;

function layout(yTitle, { y2 = null, x = "simulated time" } = {}) {
  const l = {
    margin: { l: 58, r: y2 ? 62 : 16, t: 10, b: 38 },
    paper_bgcolor: "#16212e", plot_bgcolor: "#0b121a", font: { color: "#c8d6e5", size: 10 },
    legend: { orientation: "h", y: 1.18 },
    xaxis: { ...AX, title: { text: x } },
    yaxis: { ...AX, title: { text: yTitle }, automargin: true },
  };
  if (y2) l.yaxis2 = { ...AX, title: { text: y2 }, overlaying: "y", side: "right", automargin: true, showgrid: false };
  return l;
}

const hline = (y, text, color = "#e74c3c", yref = "y") => ({
  type: "line", xref: "paper", x0: 0, x1: 1, yref, y0: y, y1: y, line: { color, width: 1, dash: "dash" },
  label: { text, font: { size: 9, color } },
});

// history rows -> the time-series charts; ``nFed`` (buses but the substation's) tells a full outage apart
export function drawSeries(hist, lim, nFed, force = false) {
  if (typeof Plotly === "undefined") return false;
  const now = Date.now();
  if (!force && now - lastDraw < 900) return true;
  lastDraw = now;
  const x = hist.map((r) => r.time);
  const col = (k) => hist.map((r) => r[k]);
  // a full outage has no lowest voltage and no loading: a gap, not 1 pu and 0 %
  const out = hist.map((r) => r.dead_buses !== undefined && r.dead_buses >= nFed);
  const unless = (k) => hist.map((r, i) => (out[i] ? null : r[k]));
  Plotly.react("p-load", [
    { x, y: col("load_mw"), name: "actual load", line: { color: "#5dade2" } },
    { x, y: col("forecast_mw"), name: "forecast (15 min ahead)", line: { color: "#f5b041", dash: "dot" } },
    { x, y: col("source_p_mw"), name: "import", line: { color: "#aab7b8" } },
    { x, y: col("renewables_mw"), name: "renewables", line: { color: "#58d68d" } }], layout("power (MW)"), CFG);
  const lv = layout("lowest voltage (pu)", { y2: "max loading (%)" });
  lv.shapes = [hline(lim.v_min_pu, `V min ${lim.v_min_pu} pu`)];
  Plotly.react("p-v", [
    { x, y: unless("vmin_pu"), name: "lowest voltage (pu)", line: { color: "#27ae60" } },
    { x, y: unless("max_loading_pct"), name: "max loading (%)", yaxis: "y2", line: { color: "#e67e22" } }], lv, CFG);
  Plotly.react("p-dr", [
    { x, y: col("dr_level"), name: "DR level (0–1)", line: { color: "#af7ac5" } },
    { x, y: col("storage_mw"), name: "batteries (MW, + charging)", yaxis: "y2", line: { color: "#48c9b0" } }],
  layout("DR level (0–1)", { y2: "batteries (MW)" }), CFG);
  Plotly.react("p-mkt", [
    { x, y: col("price_eur_mwh"), name: "price (€/MWh)", line: { color: "#f4d03f", shape: "hv" }, connectgaps: false },
    { x, y: col("volume_mwh"), name: "volume (MWh)", yaxis: "y2", line: { color: "#5dade2", shape: "hv" } }],
  layout("price (€/MWh)", { y2: "volume (MWh)" }), CFG);
  return true;
}

// voltage against distance from the substation, now (energised buses), with the guard's limits
export function drawProfile(grid, st, lim) {
  if (typeof Plotly === "undefined" || !st.v_pu) return;
  const xs = [], ys = [], names = [];
  grid.buses.forEach((b, i) => {
    if (st.energised[i] && b.distance_km !== null) { xs.push(b.distance_km); ys.push(st.v_pu[i]); names.push(`bus ${b.id}`); }
  });
  const l = layout("voltage (pu)", { x: "distance from the substation (km)" });
  l.shapes = [hline(lim.v_min_pu, `min ${lim.v_min_pu} pu`), hline(lim.v_max_pu, `max ${lim.v_max_pu} pu`)];
  l.yaxis.range = [Math.min(lim.v_min_pu - 0.02, ...ys), Math.max(lim.v_max_pu + 0.02, ...ys)];
  if (!xs.length) l.annotations = [{ text: "no supply", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 18, color: "#e74c3c" } }];
  Plotly.react("p-profile", [{ x: xs, y: ys, text: names, mode: "markers", type: "scatter", name: "bus voltage",
    marker: { color: "#5dade2", size: 7 }, hovertemplate: "%{text}: %{y:.4f} pu at %{x:.2f} km<extra></extra>" }], l, CFG);
}

export function drawFlex(plan) {
  if (typeof Plotly === "undefined" || !plan || !plan.import_mw) return;
  const t0 = Date.parse(plan.time + "Z"), dt = plan.step_min * 60000;
  const fx = plan.import_mw.map((_, i) => new Date(t0 + i * dt).toISOString().slice(0, 16));
  setText("flex-note", `plan ${plan.id} from ${String(plan.time).slice(11, 16)}: peak ${plan.peak_mw} MW (devices on their own ${plan.peak_base_mw} MW), ${plan.planning_ms} ms`);
  Plotly.react("p-flex", [
    { x: fx, y: plan.import_mw, name: "planned import", line: { color: "#5dade2", shape: "hv" } },
    { x: fx, y: plan.import_base_mw, name: "import, devices on their own", line: { color: "#aab7b8", dash: "dot", shape: "hv" } },
    { x: fx, y: plan.fleet_mw, name: "fleet power (+ consumes)", line: { color: "#48c9b0", shape: "hv" } }], layout("power (MW)"), CFG);
}

export const plotted = () => $("p-load").querySelector(".main-svg") !== null;
