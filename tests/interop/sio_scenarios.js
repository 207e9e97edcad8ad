// Socket.IO scenarios for socket.io-client 4, the same in Node (sio_client.mjs)
// and in headless Chromium (sio_browser.mjs): a plain script that defines
// globalThis.runSioScenarios(io, config) and resolves to a JSON-able report of
// what the client saw. The Python test (tests/interop/test_socketio.py) makes
// the assertions; the server is tests/apps/sio_app.py or flask_sio_app.py.
//
// config: {url, modes: ['default' | 'websocket' | 'polling', ...], burst, big,
//          user_prefix, timeout_ms}
// hooks: {defaultTransports, releaseUpgrade}: in the default mode the first
// client's WebSocket upgrade waits until releaseUpgrade() (the runners gate it),
// so that the server's 300 emits start on polling and end on WebSocket.

(function () {
  'use strict';

  const TRANSPORTS = { default: undefined, websocket: ['websocket'], polling: ['polling'] };

  function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  function bytesEqual(a, b) {
    const x = new Uint8Array(a);
    const y = new Uint8Array(b);
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i += 1) if (x[i] !== y[i]) return false;
    return true;
  }

  function toBytes(data) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return null;
  }

  // every event the server pushes, collected per event name
  function collect(socket) {
    const got = {};
    const waiters = [];
    socket.onAny((event, ...args) => {
      (got[event] = got[event] || []).push(args.length === 1 ? args[0] : args);
      for (const w of waiters.slice()) w();
    });
    return {
      got,
      take(event) { const items = got[event] || []; got[event] = []; return items; },
      until(event, predicate, ms) {
        return withTimeout(new Promise((resolve) => {
          const check = () => {
            const items = got[event] || [];
            const found = items.find(predicate);
            if (found !== undefined) {
              waiters.splice(waiters.indexOf(check), 1);
              resolve(found);
            }
          };
          waiters.push(check);
          check();
        }), ms, `event ${event}`);
      },
    };
  }

  function ack(socket, ms, event, ...args) {
    return withTimeout(new Promise((resolve) => socket.emit(event, ...args, (...r) => resolve(r))),
      ms, `ack of ${event}`);
  }

  function connected(socket, ms, what) {
    return withTimeout(new Promise((resolve, reject) => {
      if (socket.connected) { resolve(); return; }
      socket.once('connect', resolve);
      socket.once('connect_error', (err) => reject(new Error(`${what}: connect_error ${err.message}`)));
    }), ms, `connect ${what}`);
  }

  async function refused(io, config, mode) {
    const socket = io(config.url, {
      transports: TRANSPORTS[mode], forceNew: true, reconnection: false,
      auth: { token: 'wrong', user: 'nobody' },
    });
    try {
      return await withTimeout(new Promise((resolve) => {
        socket.once('connect', () => resolve({ connected: true }));
        socket.once('connect_error', (err) => resolve({ message: err.message, data: err.data || null }));
      }), config.timeout_ms, 'refusal');
    } finally {
      socket.close();
    }
  }

  async function serverDisconnects(config, user, count) {
    const deadline = Date.now() + config.timeout_ms;
    for (;;) {
      const found = await (await fetch(`${config.url}/disconnects?user=${encodeURIComponent(user)}`)).json();
      if (found.length >= count || Date.now() > deadline) {
        return found.sort((x, y) => (x.namespace < y.namespace ? -1 : 1));
      }
      await new Promise((resolve) => { setTimeout(resolve, 50); });
    }
  }

  async function runMode(io, config, mode, hooks) {
    const ms = config.timeout_ms;
    const user = `${config.user_prefix}-${mode}-${Math.random().toString(16).slice(2, 10)}`;
    const other = `${user}-other`;
    const options = (name) => ({
      transports: TRANSPORTS[mode], forceNew: true, reconnection: false,
      auth: { token: 'secret', user: name },
    });
    const report = { mode, user, other, error: null, steps: [] };
    const step = (what) => report.steps.push(what);
    const sockets = [];
    try {
      report.refused = await refused(io, config, mode);
      step('refused');

      const gated = mode === 'default';
      const a = io(config.url, gated
        ? { ...options(user), transports: hooks.defaultTransports } : options(user));
      sockets.push(a);
      const events = collect(a);
      let upgraded = null;
      a.io.on('open', () => {
        a.io.engine.on('upgrade', (t) => { upgraded = t.name; });
      });
      const seqTransports = [];
      a.on('seq', () => seqTransports.push(a.io.engine.transport.name));
      await connected(a, ms, 'a');
      step('a connected');
      report.transport_at_connect = a.io.engine.transport.name;

      // 300 server emits; in the default mode 5 ms apart, and the upgrade let go
      // after the 30th arrived: they start on polling and end on WebSocket
      const [burst] = await ack(a, ms, 'burst', config.burst, gated ? 5 : 0);
      report.burst_ack = burst;
      if (gated) {
        await events.until('seq', (v) => v >= 29, ms);
        hooks.releaseUpgrade();
      }
      await events.until('seq_done', () => true, ms);
      const seq = events.take('seq');
      report.seq_in_order = seq.length === config.burst && seq.every((v, i) => v === i);
      report.seq_count = seq.length;
      report.seq_first_transport = seqTransports[0];
      report.seq_last_transport = seqTransports[seqTransports.length - 1];
      step('burst');

      if (mode === 'default') {
        await withTimeout(new Promise((resolve) => {
          const check = () => (a.io.engine.transport.name === 'websocket' ? resolve() : setTimeout(check, 20));
          check();
        }), ms, 'upgrade');
      }
      report.upgraded = upgraded;
      report.transport = a.io.engine.transport.name;

      const b = io(config.url, options(other));
      sockets.push(b);
      const bEvents = collect(b);
      await connected(b, ms, 'b');
      const chat = a.io.socket('/chat', { auth: { token: 'secret', user } });
      sockets.push(chat);
      await connected(chat, ms, 'chat');
      step('all connected');

      report.echo_text = await ack(a, ms, 'echo', 'héllo ✓', 42);
      const blob = new Uint8Array(1024).map((_, i) => i % 256);
      const [binBack, label] = await ack(a, ms, 'echo', blob, 'label');
      report.echo_binary = { equal: toBytes(binBack) !== null && bytesEqual(toBytes(binBack), blob), label };
      report.whoami = await ack(a, ms, 'whoami');
      // the server's own emit with an ack, answered here
      a.on('question', (q, answer) => answer(`${q}!`));
      report.ask = await ack(a, ms, 'ask', 'why');
      report.chat_echo = await ack(chat, ms, 'echo', 'x');
      report.chat_whoami = await ack(chat, ms, 'whoami');
      step('acks');

      const room = `room-${user}`;
      report.join = await ack(a, ms, 'join', room);
      report.to_room = await ack(b, ms, 'to_room', room, 'for members');
      report.room_member_got = await events.until('room_msg', (m) => m === 'for members', ms);
      // b's ack came after anything the room emit could have queued for b
      report.room_other_got = bEvents.take('room_msg');
      const view = await withTimeout(fetch(`${config.url}/emit?room=${encodeURIComponent(room)}`, {
        method: 'POST', body: 'from a plain view', headers: { 'Content-Type': 'text/plain' },
      }).then((r) => r.text()), ms, 'POST /emit');
      report.view_answer = view;
      report.view_member_got = await events.until('room_msg', (m) => m === 'from a plain view', ms);
      step('rooms');

      report.to_all = await ack(a, ms, 'to_all', `all ${user}`);
      report.all_a = await events.until('all_msg', (m) => m === `all ${user}`, ms);
      report.all_b = await bEvents.until('all_msg', (m) => m === `all ${user}`, ms);
      report.bg = await ack(a, ms, 'bg', { k: [1, 2] });
      report.bg_got = await events.until('bg_msg', () => true, ms);
      step('broadcast and background');

      const big = 'y'.repeat(config.big);
      const [bigBack] = await ack(a, ms, 'echo', big);
      report.big_text_equal = bigBack === big;
      const bigBin = new Uint8Array(config.big).fill(7);
      const [bigBinBack] = await ack(a, ms, 'echo', bigBin);
      report.big_binary_equal = toBytes(bigBinBack) !== null && bytesEqual(toBytes(bigBinBack), bigBin);
      step('big');

      const kicked = io(config.url, options(`${user}-kicked`));
      sockets.push(kicked);
      await connected(kicked, ms, 'kicked');
      report.kicked_user = `${user}-kicked`;
      report.kick_reason = await withTimeout(new Promise((resolve) => {
        kicked.once('disconnect', (reason) => resolve(reason));
        kicked.emit('kick');
      }), ms, 'kick');
      step('kick');

      for (const s of sockets) s.disconnect();
      // wait until the server ran the disconnect handlers (what they read is
      // in the report): a client process that exits at once could drop its
      // last polling request
      report.disconnects = {
        user: await serverDisconnects(config, user, 2),
        other: await serverDisconnects(config, other, 1),
        kicked: await serverDisconnects(config, `${user}-kicked`, 1),
      };
      step('closed');
    } catch (err) {
      report.error = String(err && err.stack || err);
    } finally {
      for (const s of sockets) s.close();
    }
    return report;
  }

  globalThis.runSioScenarios = async function runSioScenarios(io, config, hooks) {
    const cases = [];
    for (const mode of config.modes) cases.push(await runMode(io, config, mode, hooks));
    return { cases };
  };

  // A WebSocket constructor for pages: the connection opens only once
  // release() was called (engine.io-client reads globalThis.WebSocket when its
  // script loads: install this first).
  globalThis.gateWebSocket = function gateWebSocket(win) {
    const Real = win.WebSocket;
    let release;
    const gate = new Promise((resolve) => { release = resolve; });
    class GatedWebSocket {
      constructor(url, protocols) {
        this.url = url;
        this.readyState = 0;
        this.binaryType = 'blob';
        this.onopen = null; this.onclose = null; this.onmessage = null; this.onerror = null;
        this._closed = false;
        gate.then(() => {
          if (this._closed) return;
          const ws = new Real(url, protocols);
          ws.binaryType = this.binaryType;
          this._ws = ws;
          ws.onopen = (e) => { this.readyState = 1; if (this.onopen) this.onopen(e); };
          ws.onclose = (e) => { this.readyState = 3; if (this.onclose) this.onclose(e); };
          ws.onmessage = (e) => { if (this.onmessage) this.onmessage(e); };
          ws.onerror = (e) => { if (this.onerror) this.onerror(e); };
        });
      }

      send(data) { this._ws.send(data); }

      close(code, reason) {
        this._closed = true;
        this.readyState = 3;
        if (this._ws) this._ws.close(code, reason);
      }
    }
    Object.assign(GatedWebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
    win.WebSocket = GatedWebSocket;
    return release;
  };
}());
