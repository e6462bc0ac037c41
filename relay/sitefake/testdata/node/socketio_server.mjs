// A quote site built on the real Socket.IO server (npm socket.io 4.8), run
// by relay/sitefake (StartSocketIO). It listens on 127.0.0.1 on a free port
// and prints {"ready":true,"port":N} as its first stdout line. GET / is a
// page that watches quotes with the Socket.IO browser client.
//
// Site protocol, in every namespace but /private the same:
//   client emits  "subscribe", SYMBOL [, ack]   → joins the symbol's room
//   client emits  "unsubscribe", SYMBOL [, ack]
//   server emits  "welcome", {symbols}          on connection
//   server emits  "quote", {symbol, seq, price, ts}
//                 seq counts the symbol's quotes in the namespace from 1:
//                 a client that sees no gap lost nothing
//   unknown symbol: ack({ok:false, error}) when an ack was asked for,
//                 otherwise emits "subscribe_error", {symbol, message}
// /private (every namespace with authAll) refuses a connection without
// auth {token} (CONNECT_ERROR "not authorized"); other namespaces than /,
// /markets and /private are refused by Socket.IO itself ("Invalid
// namespace").
//
// Control: one JSON command per stdin line, {"id":N,"cmd":…}; the answer is
// one stdout line {"id":N,…}. Commands: stats, disconnect {nsp} (Socket.IO
// DISCONNECT to every socket of the namespace), close (ends every Engine.IO
// connection), binary {nsp} (a quote with a binary attachment), emit {nsp,
// event, args}. The process exits when stdin ends.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";

const cfg = Object.assign(
  { pingInterval: 25000, pingTimeout: 20000, intervalMs: 50, symbols: ["BTC-USD", "ETH-USD", "SOL-USD"], token: "secret", authAll: false },
  JSON.parse(process.argv[2] || "{}"),
);
const known = new Set(cfg.symbols);

// The page a browser opens to watch quotes, as a real site's: it loads the
// Socket.IO browser client (served by Socket.IO at /socket.io/socket.io.js)
// and subscribes to ?symbols= (default BTC-USD) in ?nsp= (default /), with
// the default transports (HTTP long-polling, then the upgrade to
// WebSocket) unless ?transport=websocket. window.quotes counts the quotes.
const page = `<!doctype html>
<meta charset="utf-8"><title>sitefake quotes</title>
<pre id="log"></pre>
<script src="/socket.io/socket.io.js"></script>
<script>
const params = new URLSearchParams(location.search);
const symbols = (params.get("symbols") || "BTC-USD").split(",");
const opts = params.get("transport") === "websocket" ? { transports: ["websocket"] } : {};
const socket = io(params.get("nsp") || "/", opts);
window.quotes = 0;
socket.on("connect", () => symbols.forEach((s) => socket.emit("subscribe", s)));
socket.on("quote", (q) => {
  window.quotes++;
  document.getElementById("log").textContent = q.symbol + " " + q.price + " #" + q.seq;
});
</script>
`;

const httpServer = createServer((req, res) => {
  if (req.method === "GET" && new URL(req.url, "http://x").pathname === "/") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page);
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});
const io = new Server(httpServer, {
  pingInterval: cfg.pingInterval,
  pingTimeout: cfg.pingTimeout,
});

const stats = { connections: 0, pongs: 0, subscribes: 0, rejected: 0, disconnects: {} };
const feeds = new Map(); // nsp + " " + symbol → {seq, price, timer}

function startFeed(nsp, symbol) {
  const key = nsp.name + " " + symbol;
  if (feeds.has(key)) return;
  const feed = { seq: 0, price: 100 + (symbol.charCodeAt(0) % 50) * 10 };
  feed.timer = setInterval(() => {
    if (nsp.adapter.rooms.get(symbol)?.size) {
      feed.seq++;
      feed.price = Math.max(1, feed.price * (1 + (Math.random() - 0.5) / 500));
      nsp.to(symbol).emit("quote", { symbol, seq: feed.seq, price: feed.price.toFixed(2), ts: Date.now() });
    }
  }, cfg.intervalMs);
  feeds.set(key, feed);
}

function serve(nsp) {
  nsp.on("connection", (socket) => {
    stats.connections++;
    socket.conn.on("packet", (p) => {
      if (p.type === "pong") stats.pongs++;
    });
    socket.on("disconnect", (reason) => {
      stats.disconnects[reason] = (stats.disconnects[reason] || 0) + 1;
    });
    socket.emit("welcome", { symbols: cfg.symbols });
    socket.on("subscribe", (symbol, ack) => {
      const list = Array.isArray(symbol) ? symbol : [symbol];
      for (const s of list) {
        if (typeof s !== "string" || !known.has(s)) {
          stats.rejected++;
          const message = "unknown symbol " + String(s);
          if (typeof ack === "function") ack({ ok: false, error: message });
          else socket.emit("subscribe_error", { symbol: s, message });
          return;
        }
      }
      for (const s of list) {
        stats.subscribes++;
        socket.join(s);
        startFeed(nsp, s);
      }
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("unsubscribe", (symbol, ack) => {
      socket.leave(symbol);
      if (typeof ack === "function") ack({ ok: true });
    });
  });
}

function requireToken(socket, next) {
  if (socket.handshake.auth && socket.handshake.auth.token === cfg.token) next();
  else next(new Error("not authorized"));
}
for (const name of ["/", "/markets", "/private"]) {
  const nsp = io.of(name);
  if (name === "/private" || cfg.authAll) nsp.use(requireToken);
  serve(nsp);
}

function command(c) {
  const nsp = io.of(c.nsp || "/");
  switch (c.cmd) {
    case "stats":
      return { ...stats, open: io.engine.clientsCount };
    case "disconnect": {
      let count = 0;
      for (const s of nsp.sockets.values()) {
        s.disconnect(false);
        count++;
      }
      return { count };
    }
    case "close": {
      let count = 0;
      for (const c of Object.values(io.engine.clients)) {
        c.close();
        count++;
      }
      return { count };
    }
    case "binary":
      nsp.emit("quote", { symbol: "BIN", seq: 0, blob: Buffer.from([1, 2, 3, 4]) });
      return { ok: true };
    case "emit":
      nsp.emit(c.event, ...(c.args || []));
      return { ok: true };
  }
  return { error: "unknown command " + c.cmd };
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e) }) + "\n");
    return;
  }
  process.stdout.write(JSON.stringify({ id: c.id, ...command(c) }) + "\n");
});
rl.on("close", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));

httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ ready: true, port: httpServer.address().port }) + "\n");
});
