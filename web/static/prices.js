// Reading prices out of a quote's upstream data. The relay publishes each
// venue's JSON unchanged, so the page either follows the JSON pointers that
// /v1/symbols gives for a preset's upstream (fields: {last, bid, ask}) or,
// without them, guesses with pickPrice.

// parsePointer splits an RFC 6901 JSON pointer into its reference tokens
// ("" is the whole document). A malformed pointer gives null.
export function parsePointer(p) {
  if (typeof p !== "string") return null;
  if (p === "") return [];
  if (p[0] !== "/") return null;
  return p.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

// resolve follows parsed pointer tokens into a decoded JSON value; it
// returns undefined when the pointer does not exist there.
export function resolve(doc, tokens) {
  let v = doc;
  for (const t of tokens) {
    if (Array.isArray(v)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t)) return undefined;
      v = v[+t];
    } else if (v !== null && typeof v === "object" && Object.prototype.hasOwnProperty.call(v, t)) {
      v = v[t];
    } else {
      return undefined;
    }
  }
  return v;
}

// fmt formats a number that arrived as a JSON number (a string keeps its
// own text).
export function fmt(n) {
  const digits = Math.abs(n) >= 1000 ? 2 : Math.abs(n) >= 1 ? 4 : 8;
  return n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: digits });
}

// toNum turns a price as the venue wrote it (a string or a number) into
// {value, text}; a list stands for its first element (an order book level
// [price, size]); anything else is null.
export function toNum(v) {
  for (let i = 0; i < 2 && Array.isArray(v); i++) v = v[0];
  if (typeof v !== "number" && typeof v !== "string") return null;
  const n = typeof v === "number" ? v : parseFloat(v);
  if (!Number.isFinite(n)) return null;
  return { value: n, text: typeof v === "string" ? v.trim() : fmt(n) };
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

// compileFields turns /v1/symbols' fields ({"last":"/c","bid":"/b",...})
// into parsed pointers; null when there are none usable.
export function compileFields(fields) {
  if (!fields || typeof fields !== "object") return null;
  const out = {};
  let any = false;
  for (const k of ["last", "bid", "ask"]) {
    const toks = parsePointer(fields[k]);
    if (toks && fields[k] !== "") { out[k] = toks; any = true; } else out[k] = null;
  }
  return any ? out : null;
}

// pickQuote reads last, bid and ask ({value, text} or null each). With
// compiled fields it follows them; without, last comes from pickPrice.
// value is the price the board charts and compares: the last price, or the
// mid of bid and ask for a best-bid/offer channel that has no last.
export function pickQuote(data, fields) {
  let last = null, bid = null, ask = null;
  if (fields) {
    if (fields.last) last = toNum(resolve(data, fields.last));
    if (fields.bid) bid = toNum(resolve(data, fields.bid));
    if (fields.ask) ask = toNum(resolve(data, fields.ask));
    if (!last && !bid && !ask) last = pickPrice(data); // a frame of another shape
  } else {
    last = pickPrice(data);
  }
  let value = last ? last.value : null;
  if (value == null && bid && ask) value = (bid.value + ask.value) / 2;
  else if (value == null && (bid || ask)) value = (bid || ask).value;
  return { last, bid, ask, value };
}
