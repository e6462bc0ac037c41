// wsrelay live quote board: one multiplexed EventSource, REST for the
// symbol list and the sparkline seeds. No dependencies, no build step.

const $ = (id) => document.getElementById(id);
const SPARK_POINTS = 120;
const SVG = "http://www.w3.org/2000/svg";

const page = {
  known: [],             // every symbol the relay serves, from /v1/symbols
  states: new Map(),     // symbol -> upstream state
  rows: new Map(),       // watched symbol -> row model
  filter: new URLSearchParams(location.search).get("filter") || "",
  es: null,
  url: "",
  lastId: "",
  opens: 0,
  conn: "connecting",
  events: 0,
  eps: 0,
  quotes: 0,
  gaps: 0,               // seq jumps on a resumed stream (should stay 0)
  dups: 0,               // quotes seen twice (should stay 0)
  resets: 0,
  selected: null,
  retry: 1000,
  retryTimer: 0,
  dirty: new Set(),
  frame: 0,
};
// For people poking at the page and for the browser test.
window.__wsrelay = page;

function setConn(state) {
  page.conn = state;
  const el = $("conn");
  el.dataset.state = state;
  $("conn-text").textContent = state;
}

// --- quotes ---------------------------------------------------------------

function toNum(v) {
  const n = typeof v === "number" ? v : parseFloat(v);
  if (!Number.isFinite(n)) return null;
  return { value: n, text: typeof v === "string" ? v : fmt(n) };
}

function fmt(n) {
  const digits = Math.abs(n) >= 1000 ? 2 : Math.abs(n) >= 1 ? 4 : 8;
  return n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: digits });
}

// pickPrice finds a price in a quote's upstream data, whatever its shape:
// {data:[{last_price}]}, {data:{close}}, {price}, [ {c} ] …
export function pickPrice(data) {
  let o = data;
  for (let i = 0; i < 3 && o && typeof o === "object"; i++) {
    if (Array.isArray(o)) { o = o[0]; continue; }
    let found = null;
    for (const k of ["last_price", "lastPrice", "last", "close", "price", "c", "p", "bid"]) {
      if (k in o && (found = toNum(o[k]))) return found;
    }
    if ("data" in o) { o = o.data; continue; }
    if ("tick" in o) { o = o.tick; continue; }
    break;
  }
  return typeof o === "number" || typeof o === "string" ? toNum(o) : null;
}

function onQuote(q) {
  page.quotes++;
  const row = page.rows.get(q.symbol);
  if (!row) return;
  if (row.seq) {
    if (q.seq <= row.seq) { page.dups++; return; }
    if (q.seq !== row.seq + 1) page.gaps++;
  }
  row.seq = q.seq;
  row.q = q;
  row.at = Date.parse(q.received_at);
  const p = pickPrice(q.data);
  if (p) {
    if (row.base == null) row.base = p.value;
    row.dir = row.price == null ? 0 : Math.sign(p.value - row.price.value);
    row.price = p;
    row.points.push({ seq: q.seq, v: p.value });
    if (row.points.length > SPARK_POINTS) row.points.splice(0, row.points.length - SPARK_POINTS);
  }
  if (q.stale) row.state = "stale";
  else if (row.state === "stale" || row.state === "connecting") row.state = "live";
  markDirty(row);
}

function onStatus(s) {
  if (s.state === "removed") {
    page.known = page.known.filter((k) => k !== s.symbol);
    page.states.delete(s.symbol);
    syncRows();
    return;
  }
  page.states.set(s.symbol, s.state);
  const row = page.rows.get(s.symbol);
  if (row) {
    row.state = s.state;
    row.reason = s.reason;
    markDirty(row);
  }
}

// --- rendering ------------------------------------------------------------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function makeRow(symbol) {
  const node = el("div", "row");
  node.dataset.symbol = symbol;
  node.setAttribute("role", "row");
  node.tabIndex = 0;
  const sym = el("span", "sym", symbol);
  const price = el("span", "num price", "—");
  const chg = el("span", "num chg", "");
  const sparkCell = el("span", "spark-cell");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 32");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(SVG, "polyline");
  svg.append(line);
  sparkCell.append(svg);
  const when = el("span", "num when");
  const time = el("b", null, "—");
  const age = el("span", "age", "");
  when.append(time, el("br"), age);
  const state = el("span", "state", page.states.get(symbol) || "connecting");
  state.dataset.state = state.textContent;
  node.append(sym, price, chg, sparkCell, when, state);
  const select = () => selectSymbol(symbol);
  node.addEventListener("click", select);
  node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") select(); });
  return {
    symbol, node, els: { price, chg, svg, line, time, age, state },
    seq: 0, q: null, at: 0, price: null, base: null, dir: 0, points: [],
    state: page.states.get(symbol) || "connecting", reason: "",
  };
}

function markDirty(row) {
  page.dirty.add(row);
  if (!page.frame) page.frame = requestAnimationFrame(render);
}

function render() {
  page.frame = 0;
  for (const row of page.dirty) renderRow(row);
  page.dirty.clear();
}

function renderRow(row) {
  const { price, chg, svg, line, time, state } = row.els;
  if (row.price) {
    price.textContent = row.price.text;
    if (row.dir) {
      price.classList.remove("flash-up", "flash-down");
      void price.offsetWidth; // restart the flash
      price.classList.add(row.dir > 0 ? "flash-up" : "flash-down");
      clearTimeout(row.flashTimer);
      row.flashTimer = setTimeout(() => price.classList.remove("flash-up", "flash-down"), 450);
      row.dir = 0;
    }
    const pct = row.base ? ((row.price.value - row.base) / row.base) * 100 : 0;
    chg.textContent = (pct > 0 ? "+" : pct < 0 ? "−" : "±") + Math.abs(pct).toFixed(2) + "%";
    chg.className = "num chg " + (pct > 0 ? "up" : pct < 0 ? "down" : "");
  }
  if (row.points.length > 1) {
    const vs = row.points.map((p) => p.v);
    const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
    const step = 120 / (vs.length - 1);
    line.setAttribute("points", vs.map((v, i) => `${(i * step).toFixed(1)},${(30 - ((v - lo) / span) * 28).toFixed(1)}`).join(" "));
    svg.setAttribute("class", "spark " + (vs[vs.length - 1] >= vs[0] ? "up" : "down"));
  }
  if (row.at) time.textContent = new Date(row.at).toLocaleTimeString();
  state.textContent = row.state;
  state.dataset.state = row.state;
  state.title = row.reason || "";
  if (page.selected === row.symbol) renderPanel(row);
}

function ageText(ms) {
  if (ms < 1000) return "just now";
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)}s ago`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)}m ago`;
  return `${Math.floor(ms / 3600000)}h ago`;
}

function tickAges() {
  const now = Date.now();
  for (const row of page.rows.values()) if (row.at) row.els.age.textContent = ageText(now - row.at);
}

function selectSymbol(symbol) {
  page.selected = symbol;
  for (const row of page.rows.values()) row.node.classList.toggle("selected", row.symbol === symbol);
  const row = page.rows.get(symbol);
  if (row) renderPanel(row);
}

function renderPanel(row) {
  const base = location.origin;
  const s = encodeURIComponent(row.symbol);
  $("panel-title").textContent = row.symbol;
  $("raw").textContent = row.q ? JSON.stringify(row.q, null, 2) : "no quote yet";
  const after = row.q ? row.q.id : "<id>";
  $("curl").textContent =
    `# latest quote\ncurl -s ${base}/v1/quotes/${s}\n\n` +
    `# every quote after an id (lossless polling)\ncurl -s "${base}/v1/quotes/${s}/history?after=${after}&limit=100"\n\n` +
    `# live stream\ncurl -N ${base}/v1/quotes/${s}/stream`;
  $("es").textContent =
    `const es = new EventSource("${base}/v1/stream?symbols=${s}");\n` +
    `es.addEventListener("quote", (e) => {\n  const q = JSON.parse(e.data);\n  console.log(q.symbol, q.seq, q.data);\n});`;
}

// --- symbols and filter ---------------------------------------------------

function watched() {
  const terms = page.filter.toUpperCase().split(/[\s,]+/).filter(Boolean);
  if (!terms.length) return page.known.slice();
  return page.known.filter((s) => terms.some((t) => s.toUpperCase().includes(t)));
}

// syncRows makes the rows match the watched symbols; it reports whether
// the set changed (and so the stream must be reopened).
function syncRows() {
  const want = watched();
  const before = [...page.rows.keys()].join(",");
  for (const [sym, row] of page.rows) {
    if (!want.includes(sym)) { row.node.remove(); page.rows.delete(sym); }
  }
  const rowsEl = $("rows");
  for (const sym of want) {
    if (!page.rows.has(sym)) {
      const row = makeRow(sym);
      page.rows.set(sym, row);
      seedSparkline(row);
    }
    rowsEl.append(page.rows.get(sym).node); // keeps the order sorted
  }
  $("empty").hidden = want.length > 0 || page.known.length === 0;
  const list = $("symbol-list");
  list.replaceChildren(...page.known.map((s) => Object.assign(document.createElement("option"), { value: s })));
  if (page.selected && !page.rows.has(page.selected)) page.selected = null;
  if (!page.selected && want.length) selectSymbol(want[0]);
  return want.join(",") !== before;
}

async function seedSparkline(row) {
  try {
    const r = await fetch(`/v1/quotes/${encodeURIComponent(row.symbol)}/history?limit=${SPARK_POINTS}`);
    if (!r.ok) return;
    const { quotes } = await r.json();
    const first = row.points.length ? row.points[0].seq : Infinity;
    const seed = [];
    for (const q of quotes) {
      const p = pickPrice(q.data);
      if (p && q.seq < first) seed.push({ seq: q.seq, v: p.value });
    }
    row.points = seed.concat(row.points).slice(-SPARK_POINTS);
    if (row.base == null && seed.length) row.base = seed[seed.length - 1].v;
    markDirty(row);
  } catch (e) {
    // the stream fills the sparkline anyway
  }
}

async function loadSymbols() {
  const r = await fetch("/v1/symbols");
  if (!r.ok) throw new Error(`/v1/symbols answered ${r.status}`);
  const { symbols } = await r.json();
  page.known = symbols.map((s) => s.symbol);
  for (const s of symbols) page.states.set(s.symbol, s.state);
}

function applyFilter(text) {
  page.filter = text.trim();
  const u = new URL(location.href);
  if (page.filter) u.searchParams.set("filter", page.filter);
  else u.searchParams.delete("filter");
  history.replaceState(null, "", u);
  if (syncRows()) connect(false);
}

// --- the stream -----------------------------------------------------------

function connect(resume) {
  clearTimeout(page.retryTimer);
  if (page.es) page.es.close();
  page.es = null;
  const syms = [...page.rows.keys()];
  if (!syms.length) { setConn("connected"); return; }
  let url = `/v1/stream?symbols=${syms.map(encodeURIComponent).join(",")}`;
  if (resume && page.lastId) url += `&last_event_id=${encodeURIComponent(page.lastId)}`;
  if (!resume) {
    page.opens = 0;
    for (const row of page.rows.values()) row.seq = 0; // the snapshot starts a new sequence
  }
  page.url = url;
  const es = new EventSource(url);
  page.es = es;
  es.onopen = () => {
    setConn(page.opens++ === 0 && !resume ? "connected" : "resumed");
    page.retry = 1000;
  };
  es.onerror = () => {
    if (es !== page.es) return;
    if (es.readyState === EventSource.CLOSED) {
      // The server refused (e.g. 503 at its client limit): retry ourselves.
      setConn(navigator.onLine === false ? "offline" : "reconnecting");
      page.retryTimer = setTimeout(() => connect(true), page.retry);
      page.retry = Math.min(page.retry * 2, 15000);
    } else {
      setConn("reconnecting");
    }
  };
  es.addEventListener("quote", (e) => {
    page.events++;
    page.lastId = e.lastEventId || page.lastId;
    onQuote(JSON.parse(e.data));
  });
  es.addEventListener("status", (e) => {
    page.events++;
    onStatus(JSON.parse(e.data));
  });
  es.addEventListener("reset", () => {
    page.events++;
    page.resets++;
    setConn("reset");
    for (const row of page.rows.values()) row.seq = 0; // a snapshot follows
  });
}

function startRate() {
  let last = 0;
  setInterval(() => {
    page.eps = page.events - last;
    last = page.events;
    $("eps").textContent = page.eps;
  }, 1000);
}

async function main() {
  const input = $("filter");
  input.value = page.filter;
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") applyFilter(input.value); });
  input.addEventListener("change", () => applyFilter(input.value));
  input.addEventListener("search", () => applyFilter(input.value));
  for (;;) {
    try {
      await loadSymbols();
      break;
    } catch (e) {
      setConn("offline");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  syncRows();
  connect(false);
  setInterval(tickAges, 250);
  startRate();
  // Laptops sleep and networks drop: come back without a reload.
  window.addEventListener("online", () => {
    if (!page.es || page.es.readyState === EventSource.CLOSED) connect(true);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && (!page.es || page.es.readyState === EventSource.CLOSED)) connect(true);
  });
  // New symbols (added by an admin) show up without a reload.
  setInterval(async () => {
    try {
      await loadSymbols();
      if (syncRows()) connect(false);
    } catch (e) { /* the stream's own state shows trouble */ }
  }, 15000);
}

main();
