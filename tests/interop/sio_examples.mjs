// Drive the Socket.IO example chat pages (examples/flask_socketio_chat,
// examples/django_socketio) in headless Chromium: three tabs join rooms and
// talk, ordinary views announce to one room, one tab leaves; one more tab whose
// client script cannot load must say so. The page's CDN script is served from
// the npm copy (CONFIG.client_js): the tests run offline. Prints one JSON line.
//
//   node tests/interop/sio_examples.mjs CONFIG.json
//
// CONFIG: {"url", "chromium", "user_data_dir", "client_js", "cdn_url", "timeout_ms"}

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = config.timeout_ms;
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const report = { error: null, page_errors: [], steps: [] };
const step = (what) => report.steps.push(what);

async function open(context, name, room) {
  const page = await context.newPage();
  page.on('pageerror', (e) => report.page_errors.push(`${name}: ${e && e.stack || e}`));
  await page.goto(config.url, { waitUntil: 'load', timeout });
  await page.waitForSelector('body[data-state="connected"]', { timeout });
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join button');
  await page.waitForSelector(`body[data-state="joined"][data-room="${room}"]`, { timeout });
  return page;
}

const messages = (page) => page.evaluate(
  () => [...document.querySelectorAll('#messages li')].map((li) => `${li.className}|${li.textContent}`),
);

async function waitMessage(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === t),
    text, { timeout },
  );
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

async function post(path, body) {
  const r = await fetch(`${config.url}${path}`, { method: 'POST', body });
  return { status: r.status, body: await r.json() };
}

let context;
try {
  context = await chromium.launchPersistentContext(config.user_data_dir, {
    executablePath: config.chromium, headless: true, args: FLAGS, timeout,
  });
  const script = readFileSync(config.client_js);
  await context.route(config.cdn_url, (route) => route.fulfill({
    status: 200, body: script,
    headers: { 'Content-Type': 'application/javascript', 'Access-Control-Allow-Origin': '*' },
  }));

  const ann = await open(context, 'ann', 'lobby');
  const bob = await open(context, 'bob', 'kitchen');
  const cid = await open(context, 'cid', 'lobby');
  step('joined');
  report.transport = await ann.evaluate(async () => {
    const { engine } = window.chat.socket.io;
    if (engine.transport.name !== 'websocket') {
      await new Promise((resolve) => { engine.once('upgrade', resolve); });
    }
    return engine.transport.name;
  });
  await say(ann, 'hi lobby');
  await waitMessage(ann, 'ann: hi lobby');
  await waitMessage(cid, 'ann: hi lobby');
  await say(bob, 'hi kitchen');
  await waitMessage(bob, 'bob: hi kitchen');
  step('talked');
  report.announce_kitchen = await post('/api/rooms/kitchen/announce', 'kitchen news');
  await waitMessage(bob, '📣 kitchen news');
  report.announce_lobby = await post('/api/rooms/lobby/announce', 'lobby news');
  await waitMessage(ann, '📣 lobby news');
  await waitMessage(cid, '📣 lobby news');
  report.announce_empty = await post('/api/rooms/lobby/announce', '');
  step('announced');
  report.rooms = await (await fetch(`${config.url}/api/rooms`)).json();
  await cid.close();
  await waitMessage(ann, 'cid left');
  step('cid left');
  report.ann = await messages(ann);
  report.bob = await messages(bob);
  report.rooms_after = await (await fetch(`${config.url}/api/rooms`)).json();

  // the same page when its client script cannot load
  await context.unroute(config.cdn_url);
  await context.route(config.cdn_url, (route) => route.abort());
  const offline = await context.newPage();
  await offline.goto(config.url, { waitUntil: 'load', timeout });
  await offline.waitForSelector('body[data-state="error"]', { timeout });
  report.offline_status = await offline.textContent('#status');
  step('offline');
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  if (context) await context.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
