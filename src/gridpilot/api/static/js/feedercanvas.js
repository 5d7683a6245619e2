// A feeder drawn on a canvas from column arrays (/api/feeder/geometry): thousands of buses and
// branches in one pass (strokes batched per colour), pan (drag) and zoom (wheel), nearest bus or
// branch under the pointer for hover and click. No DOM element per bus.
const BINS = 24;

export class FeederCanvas {
  // canvas: the <canvas>; geo: the geometry payload; opts.color(i) -> css colour of bus i (or
  // null: not drawn), opts.lineColor(k) likewise for branch k; opts.onHover/onPick({kind, i, x, y})
  constructor(canvas, geo, opts) {
    this.c = canvas; this.g = geo; this.o = opts;
    this.ctx = canvas.getContext("2d");
    this.n = geo.buses.name.length;
    this.sx = new Float32Array(this.n); this.sy = new Float32Array(this.n);
    this.view = { k: 1, tx: 0, ty: 0 };
    this.fit();
    this.events();
  }

  // the world box mapped into the canvas (y up, as bus coordinates are)
  fit() {
    const { x, y } = this.g.buses;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < this.n; i++) {
      if (x[i] === null || y[i] === null) continue;
      x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]); y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]);
    }
    this.box = { x0, y0, w: Math.max(x1 - x0, 1e-9), h: Math.max(y1 - y0, 1e-9) };
    this.view = { k: 1, tx: 0, ty: 0 };
  }

  size() {
    const r = this.c.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (this.c.width !== w || this.c.height !== h) { this.c.width = w; this.c.height = h; }
    this.dpr = dpr; this.cssW = r.width; this.cssH = r.height;
  }

  // screen (CSS px) positions of every bus under the current view
  project() {
    const { x, y } = this.g.buses, b = this.box, pad = 14;
    const s = Math.min((this.cssW - 2 * pad) / b.w, (this.cssH - 2 * pad) / b.h);
    const ox = pad + (this.cssW - 2 * pad - s * b.w) / 2, oy = pad + (this.cssH - 2 * pad - s * b.h) / 2;
    const { k, tx, ty } = this.view;
    for (let i = 0; i < this.n; i++) {
      const px = x[i] === null ? NaN : ox + (x[i] - b.x0) * s;
      const py = y[i] === null ? NaN : this.cssH - (oy + (y[i] - b.y0) * s);
      this.sx[i] = px * k + tx; this.sy[i] = py * k + ty;
    }
  }

  draw() {
    const t0 = performance.now();
    this.size(); this.project();
    const ctx = this.ctx, br = this.g.branches, o = this.o;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = "#0b121a"; ctx.fillRect(0, 0, this.cssW, this.cssH);
    // branches, one path per colour
    const byColor = new Map();
    for (let k = 0; k < br.from.length; k++) {
      const col = o.lineColor(k);
      if (!col) continue;
      let a = byColor.get(col);
      if (!a) { a = []; byColor.set(col, a); }
      a.push(k);
    }
    ctx.lineWidth = Math.min(3, 1 + 0.3 * Math.log2(this.view.k + 1));
    for (const [col, ks] of byColor) {
      ctx.strokeStyle = col; ctx.beginPath();
      for (const k of ks) {
        const f = br.from[k], t = br.to[k];
        ctx.moveTo(this.sx[f], this.sy[f]); ctx.lineTo(this.sx[t], this.sy[t]);
      }
      ctx.stroke();
    }
    // buses, one fill per colour
    const r = this.n > 1000 ? Math.min(4, 1.2 * Math.sqrt(this.view.k)) : 3.5;
    const byBus = new Map();
    for (let i = 0; i < this.n; i++) {
      const col = o.color(i);
      if (!col) continue;
      let a = byBus.get(col);
      if (!a) { a = []; byBus.set(col, a); }
      a.push(i);
    }
    for (const [col, is] of byBus) {
      ctx.fillStyle = col;
      for (const i of is) ctx.fillRect(this.sx[i] - r, this.sy[i] - r, 2 * r, 2 * r);
    }
    if (o.overlay) o.overlay(ctx, this);
    if (this.hi) this.ring(this.hi);
    this.lastDrawMs = performance.now() - t0;
    return this.lastDrawMs;
  }

  ring(h) {
    const ctx = this.ctx;
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2; ctx.beginPath();
    if (h.kind === "bus") ctx.arc(this.sx[h.i], this.sy[h.i], 7, 0, 2 * Math.PI);
    else {
      const f = this.g.branches.from[h.i], t = this.g.branches.to[h.i];
      ctx.moveTo(this.sx[f], this.sy[f]); ctx.lineTo(this.sx[t], this.sy[t]);
    }
    ctx.stroke();
  }

  // the bus within 8 px of (px, py), else the branch within 5 px, else null
  nearest(px, py) {
    let best = -1, bd = 64;
    for (let i = 0; i < this.n; i++) {
      const dx = this.sx[i] - px, dy = this.sy[i] - py, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    if (best >= 0) return { kind: "bus", i: best };
    const br = this.g.branches;
    let bk = -1; bd = 25;
    for (let k = 0; k < br.from.length; k++) {
      const ax = this.sx[br.from[k]], ay = this.sy[br.from[k]], bx = this.sx[br.to[k]], by = this.sy[br.to[k]];
      const vx = bx - ax, vy = by - ay, l2 = vx * vx + vy * vy || 1e-9;
      const u = Math.max(0, Math.min(1, ((px - ax) * vx + (py - ay) * vy) / l2));
      const dx = ax + u * vx - px, dy = ay + u * vy - py, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; bk = k; }
    }
    return bk >= 0 ? { kind: "branch", i: bk } : null;
  }

  // CSS-pixel position of bus i in the page (for tests and tooltips)
  pageXY(i) {
    const r = this.c.getBoundingClientRect();
    return { x: r.left + this.sx[i], y: r.top + this.sy[i] };
  }

  events() {
    const c = this.c;
    let drag = null, frame = 0;
    const redraw = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; this.draw(); }); };
    const local = (ev) => { const r = c.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; };
    c.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const [px, py] = local(ev), f = Math.exp(-ev.deltaY * 0.0015);
      const k = Math.min(400, Math.max(0.5, this.view.k * f)), g = k / this.view.k;
      this.view = { k, tx: px - (px - this.view.tx) * g, ty: py - (py - this.view.ty) * g };
      redraw();
    }, { passive: false });
    c.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, moved: false }; });
    window.addEventListener("mouseup", (ev) => {
      if (drag && !drag.moved) {
        const [px, py] = local(ev), h = this.nearest(px, py);
        if (h) { this.hi = h; this.o.onPick?.({ ...h, x: ev.clientX, y: ev.clientY }); redraw(); }
      }
      drag = null;
    });
    c.addEventListener("mousemove", (ev) => {
      if (drag) {
        const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
        if (drag.moved) { this.view.tx += dx; this.view.ty += dy; drag.x = ev.clientX; drag.y = ev.clientY; redraw(); }
        return;
      }
      const [px, py] = local(ev);
      this.o.onHover?.(this.nearest(px, py), ev.clientX, ev.clientY);
    });
    c.addEventListener("mouseleave", () => this.o.onHover?.(null));
    c.addEventListener("dblclick", () => { this.fit(); redraw(); });
    window.addEventListener("resize", redraw);
  }
}

// a colour ramp: stops [[value, [r, g, b]], ...] -> one of BINS css colours (fewer paths to stroke)
export function ramp(stops) {
  const lo = stops[0][0], hi = stops[stops.length - 1][0];
  const cols = [];
  for (let b = 0; b < BINS; b++) {
    const v = lo + (hi - lo) * (b / (BINS - 1));
    let j = 1;
    while (j < stops.length - 1 && v > stops[j][0]) j++;
    const [v0, c0] = stops[j - 1], [v1, c1] = stops[j], f = v1 > v0 ? Math.min(1, Math.max(0, (v - v0) / (v1 - v0))) : 0;
    cols.push(`rgb(${c0.map((x, q) => Math.round(x + f * (c1[q] - x))).join(",")})`);
  }
  const at = (v) => (v === null || v === undefined || !Number.isFinite(v)) ? null
    : cols[Math.max(0, Math.min(BINS - 1, Math.round(((v - lo) / (hi - lo)) * (BINS - 1))))];
  at.css = `linear-gradient(to right, ${cols.join(",")})`;
  at.lo = lo; at.hi = hi;
  return at;
}
