// Drives the official SignalR JavaScript client (@microsoft/signalr) against
// a hub (relay/sitefake's Go fake), to prove the fake with a client we did
// not write. One JSON argument:
//   {url, symbol, unknown, quotes, holdMs, keepAliveMs, serverTimeoutMs}
// It prints one JSON line per step:
//   {"event":"start_error","message"}      start() failed (negotiate, handshake)
//   {"event":"started","connectionId"}
//   {"event":"subscribed"}                 invoke("Subscribe", symbol) resolved
//   {"event":"quotes","count","first","last","gaps"}  after `quotes` quotes
//   {"event":"invoke_error","message"}     invoke("Subscribe", unknown) rejected
//   {"event":"method_error","message"}     invoke("NoSuchMethod") rejected
//   {"event":"held","quotes","state"}      after Unsubscribe and holdMs of quiet
//   {"event":"waiting"}                    then waits for the server to close
//   {"event":"closed","error"}             onclose (error null when clean)
// A line "stop" on stdin stops the connection; stdin's end exits.
import { createInterface } from "node:readline";
import * as signalR from "@microsoft/signalr";

const cfg = JSON.parse(process.argv[2] || "{}");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let builder = new signalR.HubConnectionBuilder()
  .withUrl(cfg.url, { transport: signalR.HttpTransportType.WebSockets })
  .configureLogging(signalR.LogLevel.None);
if (cfg.keepAliveMs) builder = builder.withKeepAliveInterval(cfg.keepAliveMs);
if (cfg.serverTimeoutMs) builder = builder.withServerTimeout(cfg.serverTimeoutMs);
const conn = builder.build();

let closedResolve;
const closed = new Promise((r) => (closedResolve = r));
conn.onclose((err) => {
  out({ event: "closed", error: err ? err.message : null });
  closedResolve();
});

const seqs = [];
let quoteWaiter = null;
conn.on("quote", (q) => {
  if (q && q.symbol === cfg.symbol) seqs.push(q.seq);
  if (quoteWaiter && seqs.length >= quoteWaiter.n) quoteWaiter.resolve();
});

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim() === "stop") conn.stop();
});
rl.on("close", () => process.exit(0));

async function main() {
  try {
    await conn.start();
  } catch (e) {
    out({ event: "start_error", message: e.message });
    return;
  }
  out({ event: "started", connectionId: conn.connectionId });
  if (cfg.symbol) {
    await conn.invoke("Subscribe", cfg.symbol);
    out({ event: "subscribed" });
    const n = cfg.quotes || 10;
    await new Promise((resolve) => {
      quoteWaiter = { n, resolve };
      if (seqs.length >= n) resolve();
    });
    let gaps = 0;
    for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i - 1] + 1) gaps++;
    out({ event: "quotes", count: seqs.length, first: seqs[0], last: seqs[seqs.length - 1], gaps });
  }
  if (cfg.unknown) {
    try {
      await conn.invoke("Subscribe", cfg.unknown);
      out({ event: "invoke_ok" });
    } catch (e) {
      out({ event: "invoke_error", message: e.message });
    }
    try {
      await conn.invoke("NoSuchMethod");
      out({ event: "method_ok" });
    } catch (e) {
      out({ event: "method_error", message: e.message });
    }
  }
  if (cfg.holdMs) {
    // Quiet: only pings go either way now.
    if (cfg.symbol) await conn.invoke("Unsubscribe", cfg.symbol);
    await sleep(cfg.holdMs);
    out({ event: "held", quotes: seqs.length, state: conn.state });
  }
  out({ event: "waiting" });
  await closed;
}

main().catch((e) => out({ event: "fatal", message: String(e && e.stack) }));
