// Drive the official Engine.IO client (npm engine.io-client 6) in Node through
// a list of cases, and report what happened as JSON on stdout.
//
//   node tests/interop/node_client.mjs SCENARIO.json
//
// The Python tests write the scenario and make every assertion; this script
// only acts and observes. Scenario:
//
//   {"parallel": true,                      // run the cases at once (default) or in turn
//    "cases": [{
//      "name": "text",                       // any label
//      "url": "http://127.0.0.1:8000",
//      "transports": ["polling", "websocket"],
//      "upgrade": true,                      // client option
//      "send": [{"text": "..."}, {"binary": "<base64>"}, {"text": "ab", "times": 3}],
//      "send_when": "opening" | "open" | "upgraded",
//      "expect": 3,                          // messages to wait for
//      "wait_upgrade": false,                // wait for the `upgrade` event before closing
//      "idle_ms": 0,                         // then stay connected this long,
//      "send_after_idle": [...],             // send these and wait for as many more
//      "fetch": [{"method": "POST", "path": "/x", "body": "..."}],  // after sending,
//                                            // ordinary HTTP requests to the same host
//      "close": "client" | "server",         // server: send "__disconnect" and wait
//      "close_message": "__disconnect",      // what asks the server to close
//      "timeout_ms": 10000
//   }, ...]}
//
// Result: {"node": version, "client": version, "cases": [{"name", "sid", "error",
// "transport_at_open", "transport_final", "upgrade_ms", "received": [...],
// "pings", "close_reason", "close_description", "posts": [...], "fetched": [...],
// "events": [...]}]}.
// A received message is {"kind": "text"|"binary", "length", "sha256", "data"|"b64"}
// ("data"/"b64" only when short), or {"kind": "undefined"}: the client's way of
// delivering an empty text message. Every polling POST the client makes is recorded
// from the HTTP layer as {"sid", "packets", "types", "bytes"}.

import http from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'engine.io-client';

const require = createRequire(import.meta.url);
const CLIENT_VERSION = require('engine.io-client/package.json').version;
const SHORT = 4096;

// ---------------------------------------------------------------------------
// Record polling POST bodies at the HTTP layer (the client's XHR shim calls
// http.request for every request; agent: false, its default, means one fresh
// connection per request, so no keep-alive surprises).

const posts = [];
const pendingFetches = [];
let inFlight = 0;
const originalRequest = http.request;
http.request = function request(options, ...rest) {
  const req = originalRequest.call(this, options, ...rest);
  inFlight += 1;
  let counted = true;
  const done = () => { if (counted) { counted = false; inFlight -= 1; } };
  req.on('close', done);
  req.on('error', done);
  const method = (options && options.method) || 'GET';
  if (method === 'POST') {
    const chunks = [];
    const write = req.write.bind(req);
    const end = req.end.bind(req);
    req.write = (chunk, ...args) => {
      if (chunk) chunks.push(Buffer.from(chunk));
      return write(chunk, ...args);
    };
    req.end = (chunk, ...args) => {
      if (chunk && typeof chunk !== 'function') chunks.push(Buffer.from(chunk));
      const body = Buffer.concat(chunks).toString('utf8');
      const query = new URL(options.path || '/', 'http://x').searchParams;
      const parts = body.split('\x1e');
      posts.push({
        sid: query.get('sid'),
        packets: parts.length,
        types: parts.map((p) => p.charAt(0)),
        bytes: Buffer.byteLength(body),
      });
      return end(chunk, ...args);
    };
  }
  return req;
};

// ---------------------------------------------------------------------------

function buildMessage(spec) {
  const times = spec.times || 1;
  if (spec.binary !== undefined) {
    const one = Buffer.from(spec.binary, 'base64');
    return times === 1 ? one : Buffer.concat(Array(times).fill(one));
  }
  return times === 1 ? spec.text : spec.text.repeat(times);
}

function describe(data) {
  // engine.io-client delivers an empty text message ("4") as undefined
  if (data === undefined) return { kind: 'undefined', length: 0 };
  const sha = createHash('sha256');
  if (typeof data === 'string') {
    sha.update(Buffer.from(data, 'utf8'));
    const out = { kind: 'text', length: data.length, sha256: sha.digest('hex') };
    if (data.length <= SHORT) out.data = data;
    return out;
  }
  const buf = Buffer.isBuffer(data) ? data
    : data instanceof ArrayBuffer ? Buffer.from(data)
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  sha.update(buf);
  const out = { kind: 'binary', length: buf.length, sha256: sha.digest('hex') };
  if (buf.length <= SHORT) out.b64 = buf.toString('base64');
  return out;
}

function runCase(spec) {
  return new Promise((resolve) => {
    const started = Date.now();
    const since = () => Date.now() - started;
    const result = {
      name: spec.name, sid: null, error: null, transport_at_open: null,
      transport_final: null, upgrade_ms: null, received: [], pings: 0,
      close_reason: null, close_description: null, fetched: [], events: [],
    };
    const event = (what) => result.events.push(`${since()}ms ${what}`);
    const expect = spec.expect || 0;
    const sendWhen = spec.send_when || 'open';
    let openedAt = null;
    let upgraded = false;
    let closing = false;      // all expected messages are in: idle, then close
    let closeCalled = false;  // close() called, or the server asked to close
    let finished = false;
    let socket;

    const finish = (error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(idleTimer);
      if (error && !result.error) result.error = error;
      if (socket) {
        result.transport_final = socket.transport ? socket.transport.name : null;
        if (socket.readyState !== 'closed') socket.close();
      }
      resolve(result);
    };
    const timer = setTimeout(() => {
      finish(`timed out after ${spec.timeout_ms || 10000} ms (received ${result.received.length}`
        + ` of ${expect}, upgraded: ${upgraded}, state: ${socket && socket.readyState})`);
    }, spec.timeout_ms || 10000);

    const sendAll = () => {
      for (const m of spec.send || []) socket.send(buildMessage(m));
      event(`sent ${(spec.send || []).length}`);
      pendingFetches.push(fetchAll());
    };

    // Ordinary requests to the app while the session is open, one after the other.
    const fetchAll = async () => {
      for (const f of spec.fetch || []) {
        try {
          const res = await fetch(new URL(f.path, spec.url), {
            method: f.method || 'GET', body: f.body,
            headers: f.body === undefined ? {} : { 'Content-Type': f.content_type || 'text/plain' },
          });
          result.fetched.push({ status: res.status, body: await res.text() });
        } catch (err) {
          result.fetched.push({ status: null, body: String(err) });
        }
      }
    };

    const afterIdle = spec.send_after_idle || [];
    let idleDone = !spec.idle_ms;
    let idleTimer = null;
    const maybeDone = () => {
      if (closing || result.received.length < expect) return;
      if (spec.wait_upgrade && !upgraded) return;
      if (!idleDone) {
        if (result.received.length === expect && !idleTimer) {
          idleTimer = setTimeout(() => {
            idleDone = true;
            event(`idle for ${spec.idle_ms} ms, ${result.pings} pings`);
            for (const m of afterIdle) socket.send(buildMessage(m));
            maybeDone();
          }, spec.idle_ms);
        }
        return;
      }
      if (result.received.length < expect + afterIdle.length) return;
      closing = true;
      const close = () => {
        closeCalled = true;
        result.transport_final = socket.transport.name;
        if (spec.close === 'server') {
          event('asking the server to close');
          socket.send(spec.close_message || '__disconnect');
        } else {
          event('closing');
          socket.close();
        }
      };
      close();
    };

    try {
      socket = new Socket(spec.url, {
        transports: spec.transports,
        upgrade: spec.upgrade !== false,
      });
    } catch (err) {
      finish(`constructor: ${err && err.stack || err}`);
      return;
    }
    if (sendWhen === 'opening') sendAll();

    socket.on('open', () => {
      openedAt = Date.now();
      result.sid = socket.id;
      result.transport_at_open = socket.transport.name;
      event(`open over ${socket.transport.name}`);
      if (sendWhen === 'open') sendAll();
      maybeDone();
    });
    socket.on('upgrade', (transport) => {
      upgraded = true;
      result.upgrade_ms = Date.now() - openedAt;
      event(`upgrade to ${transport.name}`);
      if (sendWhen === 'upgraded') sendAll();
      // The client emits `upgrade` while it still counts as upgrading: a close()
      // called right here would wait for another upgrade that never comes.
      setImmediate(maybeDone);
    });
    socket.on('upgradeError', (err) => event(`upgradeError ${err && err.message}`));
    socket.on('ping', () => { result.pings += 1; });
    socket.on('message', (data) => {
      result.received.push(describe(data));
      maybeDone();
    });
    socket.on('error', (err) => {
      event(`error ${err && err.message}`);
      if (!result.error) result.error = `error event: ${err && (err.message || err)}`;
    });
    socket.on('close', (reason, description) => {
      result.close_reason = reason;
      if (description !== undefined) {
        result.close_description = description instanceof Error ? description.message
          : typeof description === 'object' ? JSON.stringify(description) : String(description);
      }
      event(`close: ${reason}`);
      if (!closeCalled) {
        finish(`closed unexpectedly (${reason}) after ${result.received.length} of ${expect} messages`);
      } else {
        finish(null);
      }
    });
  });
}

const scenario = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const parallel = scenario.parallel !== false;
let cases;
if (parallel) {
  cases = await Promise.all(scenario.cases.map(runCase));
} else {
  cases = [];
  for (const spec of scenario.cases) cases.push(await runCase(spec));
}
await Promise.allSettled(pendingFetches);
for (const c of cases) c.posts = posts.filter((p) => c.sid && p.sid === c.sid);
process.stdout.write(JSON.stringify({ node: process.version, client: CLIENT_VERSION, cases }) + '\n');
// Let the last requests (a polling client's close packet) reach the server,
// then exit without waiting for WebSocket closing handshakes to time out.
const deadline = Date.now() + 5000;
while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
setTimeout(() => process.exit(0), 100);
