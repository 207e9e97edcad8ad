// socket.io-client 4 in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): open CONFIG.url + '/page' (a blank page of the test app),
// gate the page's WebSocket (see sio_scenarios.js), load the official browser
// build of socket.io-client and run tests/interop/sio_scenarios.js there.
// Prints {"cases", "console", "page_errors", "error"} as one JSON line.
//
//   node tests/interop/sio_browser.mjs CONFIG.json
//
// CONFIG adds to sio_scenarios.js's: {"chromium", "user_data_dir", "client_js"}.

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
let context;
try {
  context = await chromium.launchPersistentContext(config.user_data_dir, {
    executablePath: config.chromium, headless: true, args: FLAGS, timeout,
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => report.page_errors.push(String(e && e.stack || e)));
  await page.goto(`${config.url}/page`, { waitUntil: 'load', timeout });
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
