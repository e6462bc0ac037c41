// The board: a virtualised list of every symbol the relay serves. Only the
// rows in (or near) the viewport exist in the DOM, a fixed pool recycled as
// the list scrolls; a frame rewrites only the cells whose text changed, of
// the rows that are visible. Nothing here reads layout after writing it:
// each frame reads the scroll position first, then writes.

import { fmt } from "./prices.js";

const SVG = "http://www.w3.org/2000/svg";
const OVERSCAN = 6;        // rows rendered above and below the viewport
const ROW_POINTS = 40;     // points of a row's sparkline
const FLASH_MS = 300;      // how long a price change stays highlighted
const RESORT_MS = 1000;    // sorting by change or last update re-sorts at most this often
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function ageText(ms) {
  if (ms < 1000) return "just now";
  if (ms < 60000) return `${Math.floor(ms / 1000)}s ago`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)}m ago`;
  return `${Math.floor(ms / 3600000)}h ago`;
}

// changePct is the change of a symbol's price since this page first saw
// it, in percent (null before two prices).
export function changePct(m) {
  return m.base && m.value != null ? ((m.value - m.base) / m.base) * 100 : null;
}

export function changeText(pct) {
  if (pct == null) return "";
  return (pct > 0 ? "+" : pct < 0 ? "−" : "±") + Math.abs(pct).toFixed(2) + "%";
}

// sparkPoints renders the last n values as polyline points in a w×h box.
export function sparkPoints(vs, n, w, h) {
  const from = Math.max(0, vs.length - n);
  const len = vs.length - from;
  if (len < 2) return "";
  let lo = Infinity, hi = -Infinity;
  for (let i = from; i < vs.length; i++) { if (vs[i] < lo) lo = vs[i]; if (vs[i] > hi) hi = vs[i]; }
  const span = hi - lo || 1, step = w / (len - 1);
  let out = "";
  for (let i = 0; i < len; i++) {
    out += (i ? " " : "") + (i * step).toFixed(1) + "," + (h - 1 - ((vs[from + i] - lo) / span) * (h - 2)).toFixed(1);
  }
  return out;
}

function comparator(sort, desc) {
  const byName = (a, b) => collator.compare(a.symbol, b.symbol);
  const dir = desc ? -1 : 1;
  let key;
  if (sort === "change") key = changePct;
  else if (sort === "updated") key = (m) => m.at || null;
  else return desc ? (a, b) => byName(b, a) : byName;
  // Symbols without a value go last in either direction.
  return (a, b) => {
    const x = key(a), y = key(b);
    if (x == null || y == null) return x == null && y == null ? byName(a, b) : x == null ? 1 : -1;
    return x === y ? byName(a, b) : (x < y ? -dir : dir);
  };
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// textCell is an element whose one text node is rewritten in place: no
// node is created or dropped per update.
function textCell(tag, cls, text) {
  const e = el(tag, cls);
  e.append(document.createTextNode(text || ""));
  return e;
}

function setText(e, text) {
  e.firstChild.data = text;
}

// Board renders page.rows (symbol → model) into #rows. Call invalidate()
// when the set, filter, sort or grouping changed, touch(model) when a
// model changed, and schedule() to get a frame. onRender(dirty) runs at
// the end of each frame with the models that changed since the last one.
export class Board {
  constructor(page, { viewport, rows, empty, count, onRender }) {
    this.page = page;
    this.viewport = viewport;
    this.rowsEl = rows;
    this.emptyEl = empty;
    this.countEl = count;
    this.onRender = onRender;
    this.pool = [];
    this.rowH = 0;         // px per row, from the CSS (0: read it again)
    this.boundH = 0;       // the row height the slots were positioned with
    this.viewDirty = true;
    this.changed = false;  // a model changed since the last sort
    this.agesDue = false;
    this.sortedAt = 0;
    this.frame = 0;
    this.wakeTimer = 0;
    this.height = -1;
    this.stats = { frames: 0, writes: 0, rebinds: 0 };
    this.onFrame = (now) => this.render(now);
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => { this.rowH = 0; this.schedule(); }).observe(viewport);
  }

  invalidate() { this.viewDirty = true; this.schedule(); }

  touch(m) {
    this.page.dirty.add(m);
    this.changed = true;
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(this.onFrame);
  }

  // wake asks for a frame after ms (to end a flash when no quote comes).
  wake(ms) {
    if (this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => { this.wakeTimer = 0; this.schedule(); }, ms);
  }

  buildView() {
    const p = this.page;
    const terms = p.filter.toUpperCase().split(/[\s,]+/).filter(Boolean);
    const list = [];
    for (const m of p.rows.values()) {
      if (!terms.length || terms.some((t) => m.upper.includes(t))) list.push(m);
    }
    const cmp = comparator(p.sort, p.desc);
    let view;
    if (p.group) {
      const groups = new Map();
      for (const m of list) {
        const g = m.upstream || "";
        let ms = groups.get(g);
        if (!ms) groups.set(g, (ms = []));
        ms.push(m);
      }
      view = [];
      for (const g of [...groups.keys()].sort(collator.compare)) {
        const ms = groups.get(g).sort(cmp);
        const live = ms.reduce((n, m) => n + (m.state === "live"), 0);
        const head = { group: g, count: ms.length, live, preset: ms[0].preset, channel: ms[0].channel, collapsed: p.collapsed.has(g) };
        head.key = `${g}\u0000${head.count}\u0000${live}\u0000${head.collapsed}`;
        view.push(head);
        if (!head.collapsed) for (const m of ms) view.push(m);
      }
    } else {
      view = list.sort(cmp);
    }
    p.view = view;
    p.shown = list.length;
    const total = p.rows.size;
    this.countEl.textContent = list.length === total ? `${total} symbols` : `${list.length} of ${total} symbols`;
    this.emptyEl.hidden = list.length > 0 || total === 0;
    this.rowsEl.setAttribute("aria-rowcount", String(view.length));
  }

  render(now) {
    this.frame = 0;
    const p = this.page;
    this.stats.frames++;
    // Reads first: nothing was written to the DOM since the last frame.
    const top = this.viewport.scrollTop;
    const vh = this.viewport.clientHeight;
    if (!this.rowH) {
      const h = parseFloat(getComputedStyle(this.viewport).getPropertyValue("--row-h")) || 48;
      if (h !== this.boundH) for (const s of this.pool) s.index = -1; // every row moves
      this.rowH = this.boundH = h;
    }
    const rowH = this.rowH;

    const liveSort = p.sort !== "name";
    if (this.viewDirty || (liveSort && this.changed && now - this.sortedAt >= RESORT_MS)) {
      this.buildView();
      this.viewDirty = false;
      this.changed = false;
      this.sortedAt = now;
    } else if (liveSort && this.changed) {
      this.wake(RESORT_MS - (now - this.sortedAt)); // re-sort then, even if no quote comes
    }
    const view = p.view;
    const h = view.length * rowH;
    if (h !== this.height) { this.height = h; this.rowsEl.style.height = h + "px"; }

    const need = Math.min(view.length, Math.ceil(vh / rowH) + 2 * OVERSCAN + 1);
    if (need > this.pool.length) {
      while (this.pool.length < need) this.pool.push(this.makeSlot());
      for (const s of this.pool) s.index = -1; // the modulo mapping changed
    }
    const n = this.pool.length;
    const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
    const last = Math.min(view.length, first + n);
    const wall = Date.now();
    let flashing = false;
    for (let i = first; i < last; i++) {
      const slot = this.pool[i % n];
      const item = view[i];
      if (slot.item !== item || slot.index !== i) {
        this.bind(slot, item, i, rowH);
        if (item.symbol !== undefined) this.fill(slot, item, wall);
      } else if (item.symbol !== undefined && (p.dirty.has(item) || this.agesDue || slot.c.flash)) {
        this.fill(slot, item, wall);
      }
      if (slot.c.flash) flashing = true;
    }
    for (const slot of this.pool) {
      if (slot.item && (slot.index < first || slot.index >= last)) {
        slot.item = null;
        slot.index = -1;
        slot.node.hidden = true;
      }
    }
    if (flashing) this.wake(FLASH_MS);
    this.agesDue = false;
    const dirty = p.dirty;
    p.dirty = new Set();
    if (this.onRender) this.onRender(dirty);
  }

  makeSlot() {
    const node = el("div", "row");
    node.setAttribute("role", "row");
    node.tabIndex = -1;
    node.hidden = true;
    const sym = textCell("span", "sym");
    const price = textCell("span", "num price", "—");
    const ba = el("span", "num ba");
    const bid = textCell("span", "bid");
    const ask = textCell("span", "ask");
    ba.append(bid, el("br"), ask);
    const chg = textCell("span", "num chg");
    const sparkCell = el("span", "spark-cell");
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 32");
    svg.setAttribute("preserveAspectRatio", "none");
    const line = document.createElementNS(SVG, "polyline");
    svg.append(line);
    sparkCell.append(svg);
    const when = el("span", "num when");
    const time = textCell("b", null, "—");
    const age = textCell("span", "age");
    when.append(time, el("br"), age);
    const state = textCell("span", "state");
    const glabel = textCell("span", "glabel");
    node.append(sym, price, ba, chg, sparkCell, when, state, glabel);
    this.rowsEl.append(node);
    return { node, els: { sym, price, bid, ask, chg, svg, line, time, age, state, glabel }, item: null, index: -1, c: {} };
  }

  // bind points a slot at another item: a symbol's row or a group's head.
  bind(slot, item, i, rowH) {
    const { node, els } = slot;
    slot.item = item;
    slot.index = i;
    slot.c = {};
    node.hidden = false;
    node.style.transform = `translateY(${i * rowH}px)`;
    node.setAttribute("aria-rowindex", String(i + 1));
    this.stats.rebinds++;
    if (item.symbol === undefined) {
      node.className = "row grp";
      node.removeAttribute("data-symbol");
      node.dataset.group = item.group;
      node.setAttribute("aria-expanded", String(!item.collapsed));
      let label = `${item.collapsed ? "▸" : "▾"} ${item.group || "(no upstream)"}`;
      if (item.preset) label += ` · ${item.preset}${item.channel ? " " + item.channel : ""}`;
      setText(els.glabel, `${label} — ${item.count} symbol${item.count === 1 ? "" : "s"}, ${item.live} live`);
      return;
    }
    node.className = "row";
    node.removeAttribute("data-group");
    node.removeAttribute("aria-expanded");
    node.dataset.symbol = item.symbol;
    setText(els.sym, item.symbol);
    els.sym.title = item.upstream ? `upstream ${item.upstream}` : "";
    setText(els.glabel, "");
  }

  // fill writes a symbol's cells where their text differs from what the
  // slot shows.
  fill(slot, m, wall) {
    const { node, els, c } = slot;
    const p = this.page;
    const set = (key, e, text) => {
      if (c[key] !== text) { c[key] = text; setText(e, text); this.stats.writes++; }
    };
    // Without a last price (a best bid/offer channel) the mid stands in.
    const price = m.last ? m.last.text : m.value != null && m.bid && m.ask ? "≈ " + fmt(m.value) : "—";
    set("price", els.price, price);
    set("bid", els.bid, m.bid ? m.bid.text : "");
    set("ask", els.ask, m.ask ? m.ask.text : "");
    const pct = changePct(m);
    set("chg", els.chg, changeText(pct));
    const chgCls = "num chg" + (pct > 0 ? " up" : pct < 0 ? " down" : "");
    if (c.chgCls !== chgCls) { c.chgCls = chgCls; els.chg.className = chgCls; }
    if (c.seq !== m.seq || c.npoints !== m.points.length) {
      c.seq = m.seq;
      c.npoints = m.points.length;
      const pts = sparkPoints(m.points, ROW_POINTS, 120, 32);
      if (c.pts !== pts) { c.pts = pts; els.line.setAttribute("points", pts); this.stats.writes++; }
      const vs = m.points;
      const up = vs.length > 1 && vs[vs.length - 1] >= vs[Math.max(0, vs.length - ROW_POINTS)];
      const cls = vs.length > 1 ? (up ? "spark up" : "spark down") : "spark";
      if (c.sparkCls !== cls) { c.sparkCls = cls; els.svg.setAttribute("class", cls); }
    }
    if (m.at) {
      if (c.at !== m.at) { c.at = m.at; setText(els.time, timeFmt.format(m.at)); this.stats.writes++; }
      set("age", els.age, ageText(wall - m.at));
    }
    if (c.state !== m.state) {
      c.state = m.state;
      setText(els.state, m.state);
      els.state.dataset.state = m.state;
      node.classList.toggle("gone", m.state === "removed");
    }
    if (c.reason !== m.reason) { c.reason = m.reason; els.state.title = m.reason || ""; }
    const sel = p.selected === m.symbol;
    if (c.sel !== sel) { c.sel = sel; node.classList.toggle("selected", sel); node.setAttribute("aria-selected", String(sel)); }
    // Flash a price change: on with the quote, off FLASH_MS later.
    if (m.flashAt > (c.flashAt || 0) && m.dir) {
      c.flashAt = m.flashAt;
      const f = m.dir > 0 ? "flash-up" : "flash-down";
      if (c.flash !== f) { if (c.flash) els.price.classList.remove(c.flash); els.price.classList.add(f); c.flash = f; }
    } else if (c.flash && wall - c.flashAt >= FLASH_MS) {
      els.price.classList.remove(c.flash);
      c.flash = "";
    }
  }

  // indexOf returns the view index of a symbol (-1 when not listed).
  indexOf(symbol) {
    return this.page.view.findIndex((it) => it.symbol === symbol);
  }

  // reveal scrolls the viewport so that view index i is visible.
  reveal(i) {
    const rowH = this.rowH || 48;
    const top = this.viewport.scrollTop, vh = this.viewport.clientHeight;
    if (i * rowH < top) this.viewport.scrollTop = i * rowH;
    else if ((i + 1) * rowH > top + vh) this.viewport.scrollTop = (i + 1) * rowH - vh;
  }
}
