// DOM helpers: text is always set with textContent, never parsed as HTML.
export const $ = (id) => document.getElementById(id);

export function setText(id, v) {
  const e = $(id);
  if (e) e.textContent = (v === null || v === undefined || v === "") ? "–" : String(v);
}

// an element with attributes, classes and text (children appended as given)
export function h(tag, { cls = [], attrs = {}, text = null } = {}, ...children) {
  const e = document.createElement(tag);
  for (const c of [].concat(cls)) if (c) e.classList.add(token(c));
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== null && text !== undefined) e.textContent = String(text);
  for (const c of children) if (c) e.append(c);
  return e;
}

// a server string made safe as a CSS class token
export function token(s) {
  return String(s ?? "").toLowerCase().replace(/[^a-z0-9_-]/g, "_").slice(0, 40) || "_";
}

export const fmt = (v, digits = 3) => (v === null || v === undefined || !Number.isFinite(Number(v)))
  ? "–" : Number(v).toFixed(digits);
