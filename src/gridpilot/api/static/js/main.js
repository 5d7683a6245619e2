// The dashboard: the key, then the grid and limits once, then the live stream.
import { api, forgetKey, KeyRefused, setKey, stream, takeKey } from "./api.js";
import { renderAlarms, renderEvents, renderProposals, picked, setRole, setupControls } from "./controls.js";
import { drawGrid, updateDiagram } from "./diagram.js";
import { $, setText, fmt } from "./dom.js";
import { drawFlex, drawProfile, drawSeries } from "./plots.js";

const hist = [];
let grid = null, limits = null, flexOn = false, live = null, lastState = null;

// plotly.js (4.7 MB) is loaded after the diagram and the first values are on screen
function loadPlotly() {
  if (document.getElementById("plotly-js")) return;
  const s = document.createElement("script");
  s.id = "plotly-js";
  s.src = "/static/plotly.min.js";
  s.onload = () => { if (lastState) render(lastState, true); };
  document.head.append(s);
}

// a refused key: say why, offer the form; no reconnect loop overwrites this
function refused(why) {
  if (live) live.stop();
  forgetKey();
  $("main").hidden = true;
  $("keyform").hidden = false;
  $("keymsg").textContent = why ? `API key refused: ${why}` : "";
  setText("conn", why ? `API key refused: ${why}` : "no API key");
  $("conn").dataset.state = "refused";
}

// a full outage: no bus but the substation's own has supply
const fed = () => (grid ? grid.buses.length - new Set(grid.sources.map((s) => s.bus)).size : Infinity);

function tiles(h) {
  const none = h.dead_buses !== undefined && h.dead_buses >= fed();
  setText("t-time", (h.time || "").replace("T", " "));
  setText("t-mode", h.mode);
  setText("t-load", h.load_mw); setText("t-import", h.source_p_mw); setText("t-ren", h.renewables_mw);
  setText("t-vmin", none ? "no supply" : h.vmin_pu);
  setText("t-load-pct", none ? "no supply" : h.max_loading_pct);
  $("t-vmin").classList.toggle("nosupply", none); $("t-load-pct").classList.toggle("nosupply", none);
  setText("t-dead", h.dead_buses); setText("t-dr", h.dr_level);
}

function render(st, force = false) {
  lastState = st;
  tiles(st.headline || {});
  updateDiagram(st);
  renderAlarms(st.alarms);
  renderEvents(st.events);
  renderProposals(st.proposals);
  for (const r of st.history_tail || []) if (!hist.length || hist[hist.length - 1].t !== r.t) hist.push(r);
  if (hist.length > 720) hist.splice(0, hist.length - 720);
  if (hist.length) {
    const p = hist[hist.length - 1].price_eur_mwh;
    setText("t-price", p === null || p === undefined ? "no trades" : fmt(p, 2));
  }
  if (drawSeries(hist, limits, fed(), force)) drawProfile(grid, st, limits);
  if (flexOn) {
    if (st.flex_plan && st.flex_plan.import_mw) drawFlex(st.flex_plan);
    else setText("flex-note", "(the policy runs; waiting for its first plan, made every 15 simulated minutes)");
  }
}

async function start() {
  if (!takeKey()) { refused(""); return; }
  $("keyform").hidden = true; $("main").hidden = false;
  try {
    const who = await api("/api/whoami");
    setRole(who.body.role, refused);
    setText("role", `key: ${who.body.role}`);
    $("logout").hidden = false;
    const [g, lim, flex, hr, sr] = await Promise.all([
      api("/api/grid"), api("/api/limits"), api("/api/flex"), api("/api/history?limit=720"), api("/api/state")]);
    grid = g.body; limits = lim.body;
    flexOn = Boolean(flex.body && flex.body.policy);
    $("flex-section").hidden = !flexOn;  // the flexibility schedule only where its policy runs
    drawGrid(grid, limits, picked);
    api("/api/feeder").then((r) => { $("feeder-link").hidden = !(r.ok && r.body.available); }).catch(() => {});
    setupControls(grid);
    hist.length = 0;
    if (hr.ok) hr.body.forEach((r) => hist.push(r));
    if (sr.ok) render(sr.body);
    requestAnimationFrame(() => setTimeout(loadPlotly, 0));  // after the first paint of the values
    live = stream({ onMessage: render, onStatus: (s) => setText("conn", s), onRefused: refused });
  } catch (e) {
    if (e instanceof KeyRefused) refused(e.message);
    else { setText("conn", `server unreachable (${e.message}); retrying…`); setTimeout(start, 3000); }
  }
}

$("keyform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const k = $("keyinput").value.trim();
  if (k) { setKey(k); $("keyinput").value = ""; start(); }
});
$("logout").addEventListener("click", () => { forgetKey(); location.reload(); });
start();
