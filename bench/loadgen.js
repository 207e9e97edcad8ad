// Load generator for the benchmarks: speaks Engine.IO v4 directly, over
// WebSocket (the `ws` package) and over HTTP long-polling (keep-alive agent).
//
//   node loadgen.js '<json>'
//
// The JSON names a scenario and its parameters (see the scenarios at the
// end); common.js describes the talk with the harness.
'use strict';

const http = require('http');
const WebSocket = require('ws');
const { cfg, now, sleep, mark, Recorder, countError, connectAll, run } = require('./common');

const HOST = cfg.host || '127.0.0.1';
const PORT = cfg.port;
const PATH = cfg.path || '/engine.io/';
const SEP = '\x1e';

// -- HTTP long-polling client ---------------------------------------------------

const agent = new http.Agent({
  keepAlive: true,
  keepAliveMsecs: 1000,
  maxSockets: Infinity,
  maxFreeSockets: 4096,
  scheduling: 'lifo',
});

function request(method, query, body) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (body !== undefined) {
      headers['Content-Type'] = 'text/plain;charset=UTF-8';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const req = http.request({ agent, host: HOST, port: PORT, method, path: PATH + query, headers }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 120)}`));
        else resolve(text);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

async function pollingHandshake() {
  const body = await request('GET', `?EIO=4&transport=polling&t=${Math.random().toString(36).slice(2)}`);
  const first = body.split(SEP)[0];
  if (first[0] !== '0') throw new Error(`bad handshake: ${body.slice(0, 80)}`);
  return JSON.parse(first.slice(1));
}

class PollingSession {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.outbox = [];
    this.posting = false;
    this.open = false;
    this.pings = 0;
  }
  async connect() {
    const info = await pollingHandshake();
    this.sid = info.sid;
    this.query = `?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}`;
    this.open = true;
    this.getLoop = this.loop();
  }
  async loop() {
    while (this.open) {
      let body;
      try {
        body = await request('GET', this.query);
      } catch (err) {
        if (this.open) countError('poll GET: ' + err.message.slice(0, 40));
        this.open = false;
        return;
      }
      for (const packet of body.split(SEP)) {
        const type = packet[0];
        if (type === '4') this.onMessage(this, packet.slice(1));
        else if (type === '2') { this.pings += 1; this.send('3'); }
        else if (type === '1') { this.open = false; }
      }
    }
  }
  send(packet) {
    this.outbox.push(packet);
    if (!this.posting) this.flush();
  }
  async flush() {
    this.posting = true;
    while (this.outbox.length && (this.open || this.outbox[0] === '1')) {
      const body = this.outbox.join(SEP);
      this.outbox = [];
      try {
        await request('POST', this.query, body);
      } catch (err) {
        if (this.open) countError('poll POST: ' + err.message.slice(0, 40));
        this.open = false;
      }
    }
    this.posting = false;
  }
  async close() {
    if (!this.open) return;
    this.open = false;
    this.outbox = [];
    await request('POST', this.query, '1').catch(() => {});
    await Promise.race([this.getLoop, sleep(3000)]);
  }
}

// -- WebSocket client --------------------------------------------------------------

class WsSession {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.pings = 0;
    this.open = false;
    this.closed = false;
    // false: pings go unanswered (the server's ping timeout comes due)
    this.answering = true;
    // true: the server ending the session is what the scenario waits for, no error
    this.endExpected = false;
  }
  connect(timeoutMs = 20000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${HOST}:${PORT}${PATH}?EIO=4&transport=websocket`, {
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
      });
      this.ws = ws;
      const timer = setTimeout(() => { reject(new Error('open packet timeout')); ws.terminate(); }, timeoutMs);
      ws.on('message', (data, isBinary) => {
        const text = isBinary ? null : data.toString();
        if (text === null) return;
        const type = text[0];
        if (type === '4') this.onMessage(this, text.slice(1));
        else if (type === '2') { this.pings += 1; if (this.answering) ws.send('3'); }
        else if (type === '0') {
          this.sid = JSON.parse(text.slice(1)).sid;
          this.open = true;
          clearTimeout(timer);
          resolve(this);
        } else if (type === '1') { this.open = false; }
      });
      ws.on('error', (err) => {
        clearTimeout(timer);
        if (!this.open) reject(err);
        else countError('ws: ' + err.message.slice(0, 40));
      });
      ws.on('close', () => {
        clearTimeout(timer);
        if (!this.closing && !this.endExpected && this.open) countError('ws closed by server');
        this.open = false;
        this.closed = true;
        this.closedAt = now();
        if (this.onClosed) this.onClosed();
        reject(new Error('closed before open'));
      });
    });
  }
  send(text) { this.ws.send('4' + text); }
  close(timeoutMs = 3000) {
    if (this.closed) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.ws.terminate(); resolve(); }, timeoutMs);
      this.onClosed = () => { clearTimeout(timer); resolve(); };
      this.ws.close(1000);
    });
  }
}

// -- scenarios ---------------------------------------------------------------------------

async function echo() {
  const { transport, sessions: count, size = 100, warmup = 1, duration = 5, open = 0 } = cfg;
  const payload = 'x'.repeat(size);
  // sessions handshaken and left open (no GET, no close) next to the echo ones:
  // what a server carries for clients that went away
  for (let i = 0; i < open; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, open - i) }, () => pollingHandshake()
      .catch((err) => countError('open handshake: ' + String(err.message).slice(0, 40)))));
  }
  const rec = new Recorder();
  let running = true;
  const sentAt = new Map();
  const onMessage = (session, data) => {
    const t = sentAt.get(session);
    if (t !== undefined && data === payload) rec.add(now() - t);
    if (running && session.open) { sentAt.set(session, now()); session.send(transport === 'websocket' ? payload : '4' + payload); }
  };
  const make = () => (transport === 'websocket' ? new WsSession(onMessage) : new PollingSession(onMessage));
  const { sessions, failures } = await connectAll(count, make, 50);
  for (const s of sessions) { sentAt.set(s, now()); s.send(transport === 'websocket' ? payload : '4' + payload); }
  await sleep(warmup * 1000);
  await mark('start');
  rec.reset();
  await sleep(duration * 1000);
  const result = rec.summary();
  await mark('end');
  running = false;
  await Promise.all(sessions.map((s) => s.close()));
  return { ...result, sessions: sessions.length, connect_failures: failures, open_sessions: open };
}

// Polling handshakes, `concurrency` at a time. With `close` (the default) each
// client closes its session at once; without, each handshake leaves a session
// on the server until its ping timeout (as clients that go away do), and
// `total` bounds how many are made. Runs `duration` seconds after `warmup`,
// or until `total` handshakes are done.
async function handshakes() {
  const { concurrency = 20, warmup = 1, duration = 5, close = true, total = Infinity } = cfg;
  const rec = new Recorder();
  let running = true;
  let started = 0;
  let active = concurrency;
  let allDone;
  const finished = new Promise((resolve) => { allDone = resolve; });
  async function worker() {
    while (running && started < total) {
      started += 1;
      const t = now();
      try {
        const info = await pollingHandshake();
        if (close) await request('POST', `?EIO=4&transport=polling&sid=${encodeURIComponent(info.sid)}`, '1');
        rec.add(now() - t);
      } catch (err) {
        countError('handshake: ' + String(err.message).slice(0, 40));
        await sleep(10);
      }
    }
    active -= 1;
    if (active === 0) allDone();
  }
  const workers = Array.from({ length: concurrency }, worker);
  if (warmup) await sleep(warmup * 1000);
  await mark('start');
  rec.reset();
  await Promise.race([sleep(duration * 1000), finished]);
  const result = rec.summary();
  await mark('end');
  running = false;
  await Promise.all(workers);
  return { ...result, concurrency, closed: close, handshakes_made: started };
}

async function idle() {
  const { sessions: count, hold = 12, broadcasts = 3, concurrency = 100, pingInterval } = cfg;
  let received = 0;
  let broadcastTarget = 0;
  let broadcastDone = null;
  const onMessage = (session, data) => {
    if (data === 'b' && !session.gotBroadcast) {
      session.gotBroadcast = true;
      received += 1;
      if (received === broadcastTarget && broadcastDone) broadcastDone();
    }
  };
  const t0 = now();
  const { sessions, failures } = await connectAll(count, () => new WsSession(onMessage), concurrency);
  const connectSeconds = (now() - t0) / 1000;
  await mark('connected', { sessions: sessions.length, connect_failures: failures });
  for (const s of sessions) s.pings = 0;
  const cpu0 = process.cpuUsage();
  const h0 = now();
  await sleep(hold * 1000);
  const holdSeconds = (now() - h0) / 1000;
  const loadgenCpu = (() => { const c = process.cpuUsage(cpu0); return (c.user + c.system) / 1e6 / holdSeconds; })();
  const alive = sessions.filter((s) => s.open).length;
  const pings = sessions.map((s) => s.pings);
  const minPings = pings.length ? Math.min(...pings) : 0;
  const expected = Math.floor(hold / pingInterval);
  const answering = sessions.filter((s) => s.open && s.pings >= expected).length;
  await mark('held', { alive });

  const times = [];
  for (let i = 0; i < broadcasts; i++) {
    const targets = sessions.filter((s) => s.open);
    if (!targets.length) break;
    for (const s of targets) s.gotBroadcast = false;
    received = 0;
    broadcastTarget = targets.length;
    const done = new Promise((resolve) => { broadcastDone = resolve; });
    const t = now();
    targets[0].send('broadcast');
    const finished = await Promise.race([done.then(() => true), sleep(30000).then(() => false)]);
    if (!finished) { countError(`broadcast incomplete: ${received}/${targets.length}`); break; }
    times.push(now() - t);
    await sleep(300);
  }
  const sorted = times.slice().sort((a, b) => a - b);
  await Promise.all(sessions.map((s) => s.close(5000)));
  return {
    sessions: sessions.length,
    connect_failures: failures,
    connect_seconds: connectSeconds,
    hold_seconds: holdSeconds,
    alive,
    answering,
    expected_pings: expected,
    min_pings: minPings,
    broadcast_ms: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null,
    // with a few broadcasts, the slowest one
    broadcast_p99_ms: sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] : null,
    broadcast_all_ms: times,
    loadgen_cpu: loadgenCpu,
  };
}

// -- clients that stop reading -------------------------------------------------------

// A masked WebSocket ping frame with no payload, written to the raw socket: a
// stuck client's probe (below), whatever state ws thinks the connection is in.
const PING_FRAME = Buffer.from([0x89, 0x80, 0, 0, 0, 0]);

// A client that asks for `size` bytes ('big:N', which the echo servers answer
// with N bytes of text) as soon as it is open, then stops reading: its socket
// is paused, so the kernel's buffers fill and the server holds the rest. It
// answers no ping either. A paused socket never reads the end the server
// sends, so every `probeMs` it writes a ping frame: once the server has closed
// its side, the kernel answers that with a reset and the socket ends (cutAt).
class StuckSession extends WsSession {
  constructor(size, probeMs, budgetEnd) {
    super(() => {});
    this.size = size;
    this.probeMs = probeMs;
    this.budgetEnd = budgetEnd;
    this.answering = false;
    this.endExpected = true;
  }
  async connect() {
    if (now() > this.budgetEnd) throw new Error('connect budget spent');
    await super.connect();
    const socket = this.ws._socket;
    socket.once('close', () => { this.cutAt = now(); clearInterval(this.probe); });
    this.send('big:' + this.size);
    socket.pause();
    this.stuckAt = now();
    this.probe = setInterval(() => {
      if (!socket.isPaused()) socket.pause();     // ws resumes a socket it paused itself
      if (!socket.destroyed) socket.write(PING_FRAME, () => {});
    }, this.probeMs);
    return this;
  }
  end() {
    clearInterval(this.probe);
    if (this.ws) this.ws.terminate();
  }
}

// Quantiles of a list of milliseconds (null when empty).
function quantiles(times) {
  const sorted = times.slice().sort((a, b) => a - b);
  const q = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null);
  return { min: q(0), p50: q(0.5), max: sorted.length ? sorted[sorted.length - 1] : null };
}

// One healthy WebSocket client echoes 100 bytes, one message in flight:
// `unloaded` seconds alone, then while `sessions` StuckSessions, each owed
// `size` bytes, are stuck: from when the last one stopped reading until the
// server has cut every one, or `cutDeadline` seconds. A reply still awaited at
// the end of a phase counts as one sample of the time waited so far, so that
// an echo that never comes back shows. Connecting stops after `connectBudget`
// seconds (a server that stalls must not hold the run).
async function stuck() {
  const { sessions: count, size = 1e6, unloaded = 3, cutDeadline = 30, probeMs = 250,
    concurrency = 50, connectBudget = 30 } = cfg;
  const payload = 'x'.repeat(100);
  const rec = new Recorder();
  let sentAt = null;
  const healthy = new WsSession((session, data) => {
    if (data !== payload) return;
    rec.add(now() - sentAt);
    sentAt = null;
    if (session.open) { sentAt = now(); session.send(payload); }
  });
  const phase = () => {
    if (sentAt !== null) rec.add(now() - sentAt);
    const result = rec.summary();
    result.max_ms = rec.samples.length ? rec.samples.reduce((m, x) => Math.max(m, x)) : null;
    rec.reset();
    return result;
  };
  await healthy.connect();
  sentAt = now();
  healthy.send(payload);
  await sleep(500);
  rec.reset();
  await sleep(unloaded * 1000);
  const before = phase();
  await mark('unloaded');

  const budgetEnd = now() + connectBudget * 1000;
  const t0 = now();
  const { sessions, failures } = await connectAll(count,
    () => new StuckSession(size, probeMs, budgetEnd), concurrency);
  const connectSeconds = (now() - t0) / 1000;
  rec.reset();
  await mark('stuck', { stuck: sessions.length });
  const end = now() + cutDeadline * 1000;
  while (now() < end && sessions.some((s) => s.cutAt === undefined)) await sleep(50);
  const loaded = phase();
  const cut = sessions.filter((s) => s.cutAt !== undefined);
  const cutTimes = quantiles(cut.map((s) => s.cutAt - s.stuckAt));
  await mark('cut');
  const healthyOpen = healthy.open;
  for (const s of sessions) s.end();
  await healthy.close();
  const pick = (r, prefix) => Object.fromEntries(['count', 'seconds', 'p50_ms', 'p99_ms', 'max_ms']
    .map((k) => [prefix + k, r[k]]));
  return {
    ...pick(before, 'unloaded_'),
    ...pick(loaded, 'loaded_'),
    owed_bytes: size,
    stuck: sessions.length,
    connect_failures: failures,
    connect_seconds: connectSeconds,
    cut: cut.length,
    not_cut: sessions.length - cut.length,
    cut_p50_ms: cutTimes.p50,
    cut_max_ms: cutTimes.max,
    probe_ms: probeMs,
    healthy_open: healthyOpen,
    loadgen_cpu: loaded.loadgen_cpu,
  };
}

// -- a ping-timeout wave ----------------------------------------------------------------

// `sessions` WebSockets connect (as fast as the server takes them,
// `concurrency` at a time) and answer pings; then all stop answering at once.
// Each session's pings keep the phase of its connect, so the server's ping
// timeouts come due within about the time the connects took. Waits until the
// server has closed every session, or `wait` seconds. Connecting stops after
// `connectBudget` seconds.
async function wave() {
  const { sessions: count, concurrency = 200, wait = 30, connectBudget = 60 } = cfg;
  const t0 = now();
  const budgetEnd = t0 + connectBudget * 1000;
  const spent = { connect: () => Promise.reject(new Error('connect budget spent')) };
  const make = () => (now() > budgetEnd ? spent : new WsSession(() => {}));
  const { sessions, failures } = await connectAll(count, make, concurrency);
  const connectSeconds = (now() - t0) / 1000;
  for (const s of sessions) s.endExpected = true;
  const lostEarly = sessions.filter((s) => s.closed).length;
  await mark('connected', { sessions: sessions.length });
  const stopAt = now();
  for (const s of sessions) s.answering = false;
  const end = stopAt + wait * 1000;
  while (now() < end && sessions.some((s) => !s.closed)) await sleep(20);
  const closed = sessions.filter((s) => s.closed && s.closedAt >= stopAt);
  const times = quantiles(closed.map((s) => s.closedAt - stopAt));
  await mark('closed');
  for (const s of sessions) if (!s.closed) s.ws.terminate();
  return {
    sessions: sessions.length,
    connect_failures: failures,
    connect_seconds: connectSeconds,
    closed_before_wave: lostEarly,
    closed: closed.length,
    not_closed: sessions.filter((s) => !s.closed).length,
    first_close_ms: times.min,
    last_close_ms: times.max,
    close_p50_ms: times.p50,
  };
}

async function warm() {
  // one session of each kind, so that lazy imports happen before measuring
  const ws = new WsSession(() => {});
  await ws.connect();
  await ws.close();
  const p = new PollingSession(() => {});
  await p.connect();
  await p.close();
  return {};
}

run({ echo, handshakes, idle, stuck, wave, warm }, () => agent.destroy());
