// socket.io-client 4 in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): open CONFIG.url + '/page' (a blank page of the test app),
// gate the page's WebSocket (see sio_scenarios.js), load the official browser
// build of socket.io-client and run tests/interop/sio_scenarios.js there.
// Prints {"cases", "console", "page_errors", "error"} as one JSON line.
//
//   node tests/interop/sio_browser.mjs CONFIG.json
//
// CONFIG adds to sio_scenarios.js's: {"chromium", "user_data_dir", "client_js"}.
// With {"restart": true, "user"} it behaves as sio_client.mjs's restart mode
// instead: prints {"event": "connected", "sid"}, then, once the page's client
// reconnected by itself, {"event": "reconnected", "sid", "echo", "reasons"}.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = config.timeout_ms;
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const report = { cases: [], console: [], page_errors: [], error: null };
const print = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

async function restart(page) {
  await page.addScriptTag({ path: config.client_js });
  await page.evaluate((cfg) => {
    window.seen = { connects: [], reasons: [] };
    const socket = window.io(cfg.url, {
      auth: { token: 'secret', user: cfg.user },
      reconnectionDelay: 100, reconnectionDelayMax: 500, timeout: 5000,
    });
    window.socket = socket;
    socket.on('connect', () => window.seen.connects.push(socket.id));
    socket.on('disconnect', (reason) => window.seen.reasons.push(reason));
  }, config);
  await page.waitForFunction(() => window.seen.connects.length >= 1, null, { timeout });
  print({ event: 'connected', sid: await page.evaluate(() => window.seen.connects[0]) });
  await page.waitForFunction(() => window.seen.connects.length >= 2, null, { timeout });
  const echo = await page.evaluate(() => new Promise((resolve) => {
    window.socket.emit('echo', 'after restart', (...args) => resolve(args));
  }));
  const seen = await page.evaluate(() => window.seen);
  print({ event: 'reconnected', sid: seen.connects[1], echo, reasons: seen.reasons });
  await page.evaluate(() => window.socket.close());
}
let context;
try {
  context = await chromium.launchPersistentContext(config.user_data_dir, {
    executablePath: config.chromium, headless: true, args: FLAGS, timeout,
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => report.page_errors.push(String(e && e.stack || e)));
  await page.goto(`${config.url}/page`, { waitUntil: 'load', timeout });
  if (config.restart) {
    await restart(page);
    process.exit(0);
  }
  await page.addScriptTag({ path: join(here, 'sio_scenarios.js') });
  await page.evaluate(() => { window.releaseUpgrade = window.gateWebSocket(window); });
  await page.addScriptTag({ path: config.client_js });
  const result = await page.evaluate(
    (cfg) => window.runSioScenarios(window.io, cfg, {
      defaultTransports: undefined, releaseUpgrade: window.releaseUpgrade,
    }),
    config,
  );
  report.cases = result.cases;
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  if (context) await context.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
