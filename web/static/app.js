// wsrelay live quote board: one EventSource for every symbol of the relay
// (GET /v1/stream without symbols=, so any number of symbols is one
// request the server accepts), REST for the symbol list and the selected
// symbol's history. Quotes only update the models; the board draws once
// per animation frame, and only the rows that are visible. No
// dependencies, no build step.

import { pickPrice, pickQuote, compileFields } from "./prices.js";
import { Board, sparkPoints } from "./board.js";

export { pickPrice, pickQuote } from "./prices.js";

const $ = (id) => document.getElementById(id);
const POINTS = 240;            // prices kept per symbol (the panel's chart; rows show the last 40)
const SYMBOLS_EVERY = 15000;   // how often /v1/symbols is read again (new symbols, states)

const params = new URLSearchParams(location.search);
const page = {
  known: [],             // every symbol the relay serves, sorted, from /v1/symbols
  states: new Map(),     // symbol -> upstream state
  rows: new Map(),       // symbol -> model (every symbol, listed or filtered out)
  view: [],              // what the list shows: models, and group heads when grouped
  shown: 0,              // symbols that pass the filter
  filter: params.get("filter") || "",
  sort: ["name", "change", "updated"].includes(params.get("sort")) ? params.get("sort") : "name",
  desc: params.get("dir") === "desc",
  group: params.get("group") === "1",
  collapsed: new Set(),
  es: null,
  url: "",
  lastId: "",
  opens: 0,              // successful opens of the current stream
  connects: 0,           // streams this page opened itself (EventSource's own retries not counted)
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
  dirty: new Set(),      // models changed since the last frame
  symbolsAt: 0,
  openedAt: 0,
  panelFor: null,
  board: null,
};
// For people poking at the page and for the browser test.
window.__wsrelay = page;

function setConn(state) {
  if (page.conn === state) return;
  page.conn = state;
  $("conn").dataset.state = state;
  $("conn-text").textContent = state;
}

// --- models ---------------------------------------------------------------

function model(symbol) {
  return {
    symbol, upper: symbol.toUpperCase(), upstream: "", preset: "", channel: "", fields: null, fieldsKey: "",
    state: "connecting", reason: "", statusAt: 0,
    seq: 0, q: null, at: 0, last: null, bid: null, ask: null, value: null,
    base: null, dir: 0, flashAt: 0, points: [], seedFrom: 0, seeded: false,
    streamed: false,   // a quote came on the open stream
    seenAt: 0,         // when (page clock) the last quote came
    listedAt: 0,       // when /v1/symbols first listed it (again)
  };
}

function addModel(symbol) {
  const m = model(symbol);
  page.rows.set(symbol, m);
  page.board.invalidate();
  return m;
}

function pushPoint(m, v) {
  m.points.push(v);
  if (m.points.length > 2 * POINTS) m.points.splice(0, m.points.length - POINTS);
}

function onQuote(q) {
  page.quotes++;
  let m = page.rows.get(q.symbol);
  if (!m) {
    // The stream knows a symbol the list does not have yet (EventSource
    // reconnected by itself after it was added): read the list again.
    m = addModel(q.symbol);
    soonSymbols();
  }
  m.streamed = true;
  m.seenAt = Date.now();
  if (m.seq) {
    if (q.seq <= m.seq) { page.dups++; return; }
    if (q.seq !== m.seq + 1) page.gaps++;
  }
  m.seq = q.seq;
  m.q = q;
  m.at = Date.parse(q.received_at);
  const p = pickQuote(q.data, m.fields);
  m.last = p.last;
  m.bid = p.bid;
  m.ask = p.ask;
  if (p.value != null) {
    if (m.base == null) m.base = p.value;
    if (m.value != null && p.value !== m.value) {
      m.dir = Math.sign(p.value - m.value);
      m.flashAt = Date.now();
    }
    m.value = p.value;
    if (!m.seedFrom) m.seedFrom = q.seq;
    pushPoint(m, p.value);
  }
  if (q.stale) m.state = "stale";
  else if (m.state === "stale" || m.state === "connecting" || m.state === "removed") m.state = "live";
  page.states.set(m.symbol, m.state);
  page.board.touch(m);
}

function onStatus(s) {
  let m = page.rows.get(s.symbol);
  if (!m) {
    if (s.state === "removed") return;
    m = addModel(s.symbol);
    soonSymbols();
  }
  m.state = s.state;
  m.reason = s.reason || "";
  m.statusAt = Date.now();
  page.states.set(m.symbol, m.state);
  if (s.state === "removed") {
    // A symbol added again under the same name starts a new sequence. The
    // row stays, marked removed, until the next read of the symbol list.
    m.seq = 0;
    m.streamed = false;
  }
  page.board.touch(m);
  if (page.group) page.board.invalidate(); // the group's live count
}

// --- the selected symbol --------------------------------------------------

function selectSymbol(symbol, reveal) {
  const prev = page.rows.get(page.selected);
  page.selected = symbol;
  if (prev) page.board.touch(prev);
  const m = page.rows.get(symbol);
  if (!m) return;
  page.board.touch(m);
  page.panelFor = null;
  if (reveal) {
    const i = page.board.indexOf(symbol);
    if (i >= 0) page.board.reveal(i);
  }
  // Once the selection settles (arrow keys held down make many).
  clearTimeout(seedTimer);
  seedTimer = setTimeout(() => { if (page.selected === symbol) seedHistory(m); }, 250);
}

let seedTimer = 0;

// seedHistory fills the selected symbol's chart with what the relay kept
// (one request per symbol, on first selection).
async function seedHistory(m) {
  if (m.seeded || m.state === "removed" || !page.rows.has(m.symbol)) return;
  m.seeded = true;
  try {
    const r = await fetch(`/v1/quotes/${encodeURIComponent(m.symbol)}/history?limit=${POINTS}`);
    if (!r.ok) return;
    const { quotes } = await r.json();
    const seed = [];
    for (const q of quotes) {
      const p = pickQuote(q.data, m.fields);
      if (p.value != null && (!m.seedFrom || q.seq < m.seedFrom)) seed.push(p.value);
    }
    if (seed.length) {
      m.points = seed.concat(m.points).slice(-POINTS);
      page.board.touch(m);
    }
  } catch (e) {
    // the stream fills the chart anyway
  }
}

function renderPanel(m) {
  const base = location.origin;
  const s = encodeURIComponent(m.symbol);
  $("panel-title").textContent = m.symbol;
  let sub = m.state + (m.reason && m.state !== "live" ? ` (${m.reason})` : "");
  if (m.upstream) sub += ` · upstream ${m.upstream}`;
  if (m.preset) sub += ` · preset ${m.preset}${m.channel ? ", channel " + m.channel : ""}`;
  $("panel-sub").textContent = sub;
  $("p-last").textContent = m.last ? m.last.text : "—";
  $("p-bid").textContent = m.bid ? m.bid.text : "—";
  $("p-ask").textContent = m.ask ? m.ask.text : "—";
  $("chart-line").setAttribute("points", sparkPoints(m.points, POINTS, 340, 80));
  $("raw").textContent = m.q ? JSON.stringify(m.q, null, 2) : "no quote yet";
  const after = m.q ? m.q.id : "<id>";
  $("curl").textContent =
    `# latest quote\ncurl -s ${base}/v1/quotes/${s}\n\n` +
    `# every quote after an id (lossless polling)\ncurl -s "${base}/v1/quotes/${s}/history?after=${after}&limit=100"\n\n` +
    `# live stream\ncurl -N ${base}/v1/quotes/${s}/stream`;
  $("es").textContent =
    `const es = new EventSource("${base}/v1/stream?symbols=${s}");\n` +
    `es.addEventListener("quote", (e) => {\n  const q = JSON.parse(e.data);\n  console.log(q.symbol, q.seq, q.data);\n});`;
}

// afterFrame runs at the end of each board frame: the panel follows its
// symbol at most once a frame.
function afterFrame(dirty) {
  const m = page.rows.get(page.selected);
  if (m && (dirty.has(m) || page.panelFor !== m)) {
    page.panelFor = m;
    renderPanel(m);
  }
  if (!page.selected && page.view.length) {
    const first = page.view.find((it) => it.symbol !== undefined);
    if (first) selectSymbol(first.symbol);
  }
}

// --- symbols --------------------------------------------------------------

// loadSymbols reads /v1/symbols: upstream, preset, fields and state of
// each symbol. It reports whether the open stream may lack a symbol: the
// server fixes a stream's symbols when it opens, so one listed since then
// that has not come on the stream needs a new stream (resumed, lossless).
async function loadSymbols() {
  const started = Date.now();
  const r = await fetch("/v1/symbols");
  if (!r.ok) throw new Error(`/v1/symbols answered ${r.status}`);
  const { symbols } = await r.json();
  let changed = false;
  const seen = new Set();
  for (const s of symbols) {
    seen.add(s.symbol);
    let m = page.rows.get(s.symbol);
    if (!m) { m = addModel(s.symbol); m.listedAt = started; }
    else if (m.state === "removed" && !m.streamed && m.statusAt < started) m.listedAt = started; // added again
    if (m.upstream !== s.upstream || m.preset !== (s.preset || "") || m.channel !== (s.channel || "")) {
      m.upstream = s.upstream || "";
      m.preset = s.preset || "";
      m.channel = s.channel || "";
      changed = true;
    }
    const fk = s.fields ? JSON.stringify(s.fields) : "";
    if (fk !== m.fieldsKey) { m.fieldsKey = fk; m.fields = compileFields(s.fields); }
    // A status event newer than this answer wins over it.
    if (m.statusAt < started) {
      if (m.state !== s.state) { m.state = s.state; changed = true; }
      m.reason = s.last_error || "";
    }
    page.states.set(s.symbol, m.state);
    page.board.touch(m);
  }
  for (const [sym, m] of page.rows) {
    // Not listed: removed (the status may have been missed while the
    // stream was down). One whose quotes still come stays.
    if (!seen.has(sym) && m.statusAt < started && (m.state === "removed" || m.seenAt < started - 5000)) {
      page.rows.delete(sym);
      page.states.delete(sym);
      if (page.selected === sym) page.selected = null;
      changed = true;
    }
  }
  const known = [...page.rows.keys()].sort();
  if (changed || known.join() !== page.known.join()) {
    page.known = known;
    page.board.invalidate();
    $("symbol-list").replaceChildren(...known.map((s) => Object.assign(document.createElement("option"), { value: s })));
  }
  page.symbolsAt = Date.now();
  let missing = false;
  for (const m of page.rows.values()) if (!m.streamed && m.listedAt > page.openedAt) missing = true;
  return missing;
}

let soonTimer = 0;
// soonSymbols reads the symbol list again shortly: once per burst, and at
// most every 5 s.
function soonSymbols() {
  if (soonTimer) return;
  const wait = Math.max(500, page.symbolsAt + 5000 - Date.now());
  soonTimer = setTimeout(async () => {
    soonTimer = 0;
    try {
      if (await loadSymbols()) connect(true);
    } catch (e) { /* the next periodic read retries */ }
  }, wait);
}

// --- view controls --------------------------------------------------------

function saveView() {
  const u = new URL(location.href);
  const set = (k, v) => (v ? u.searchParams.set(k, v) : u.searchParams.delete(k));
  set("filter", page.filter);
  set("sort", page.sort === "name" ? "" : page.sort);
  set("dir", page.desc ? "desc" : "");
  set("group", page.group ? "1" : "");
  history.replaceState(null, "", u);
}

let saveTimer = 0;
function applyFilter(text) {
  const f = text.trim();
  if (f === page.filter) return;
  page.filter = f;
  page.board.invalidate();
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveView, 250);
}

function setSort(sort, desc) {
  page.sort = sort;
  page.desc = desc;
  $("sort").value = sort;
  $("dir").textContent = desc ? "↓" : "↑";
  for (const b of document.querySelectorAll(".board-head [data-sort]")) {
    b.setAttribute("aria-sort", b.dataset.sort === sort ? (desc ? "descending" : "ascending") : "none");
  }
  page.board.invalidate();
  saveView();
}

function setGroup(on) {
  page.group = on;
  $("group").checked = on;
  page.board.invalidate();
  saveView();
}

function wireControls() {
  const input = $("filter");
  input.value = page.filter;
  input.addEventListener("input", () => applyFilter(input.value));
  input.addEventListener("search", () => applyFilter(input.value));
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") applyFilter(input.value); });
  $("sort").addEventListener("change", (e) => setSort(e.target.value, e.target.value !== "name"));
  $("dir").addEventListener("click", () => setSort(page.sort, !page.desc));
  $("group").addEventListener("change", (e) => setGroup(e.target.checked));
  for (const b of document.querySelectorAll(".board-head [data-sort]")) {
    b.addEventListener("click", () => {
      const s = b.dataset.sort;
      setSort(s, s === page.sort ? !page.desc : s !== "name");
    });
  }
  const rows = $("rows");
  rows.addEventListener("click", (e) => {
    const row = e.target.closest(".row");
    if (!row) return;
    if (row.dataset.symbol) selectSymbol(row.dataset.symbol);
    else if (row.dataset.group != null) {
      const g = row.dataset.group;
      if (page.collapsed.has(g)) page.collapsed.delete(g); else page.collapsed.add(g);
      page.board.invalidate();
    }
  });
  // ↑ ↓ move the selection through the listed symbols.
  $("viewport").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const syms = page.view.filter((it) => it.symbol !== undefined);
    if (!syms.length) return;
    let i = syms.findIndex((m) => m.symbol === page.selected);
    i = e.key === "ArrowDown" ? Math.min(syms.length - 1, i + 1) : Math.max(0, i - 1);
    selectSymbol(syms[i].symbol, true);
    e.preventDefault();
  });
  setSort(page.sort, page.desc);
  $("group").checked = page.group;
}

// --- the stream -----------------------------------------------------------

function connect(resume) {
  clearTimeout(page.retryTimer);
  if (page.es) page.es.close();
  page.es = null;
  let url = "/v1/stream";
  if (resume && page.lastId) url += `?last_event_id=${encodeURIComponent(page.lastId)}`;
  if (!resume || !page.lastId) {
    for (const m of page.rows.values()) m.seq = 0; // a snapshot starts a new sequence
  }
  page.url = url;
  page.connects++;
  const es = new EventSource(url);
  page.es = es;
  let opened = 0;
  es.onopen = () => {
    setConn(opened++ === 0 && !resume ? "connected" : "resumed");
    page.opens++;
    page.openedAt = Date.now(); // the server has just fixed this stream's symbols
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
    for (const m of page.rows.values()) m.seq = 0; // a snapshot follows
  });
}

function tick() {
  let last = 0;
  setInterval(() => {
    page.eps = page.events - last;
    last = page.events;
    $("eps").textContent = page.eps;
    page.board.agesDue = true;
    page.board.schedule();
  }, 1000);
}

async function main() {
  page.board = new Board(page, {
    viewport: $("viewport"), rows: $("rows"), empty: $("empty"), count: $("count"), onRender: afterFrame,
  });
  wireControls();
  for (;;) {
    try {
      await loadSymbols();
      break;
    } catch (e) {
      setConn("offline");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  connect(false);
  tick();
  // Laptops sleep and networks drop: come back without a reload.
  window.addEventListener("online", () => {
    if (!page.es || page.es.readyState === EventSource.CLOSED) connect(true);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && (!page.es || page.es.readyState === EventSource.CLOSED)) connect(true);
  });
  // New symbols (added by an admin) show up without a reload: the stream
  // is reopened where it stopped, now with them.
  setInterval(async () => {
    try {
      if (await loadSymbols()) connect(true);
    } catch (e) { /* the stream's own state shows trouble */ }
  }, SYMBOLS_EVERY);
}

main();
