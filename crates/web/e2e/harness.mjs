// Helpers for Musubi's browser tests: run the real `musubi` binary, drive Debian's Chromium
// through playwright-core at phone size, and collect what the page complains about.
//
// Environment:
//   MUSUBI_E2E_DATABASE_URL  PostgreSQL URL of a fresh, empty database (required;
//                            `cargo xtask test` creates one and sets it)
//   MUSUBI_BIN               the musubi binary (default: ../../../target/debug/musubi)
//   CHROMIUM                 the Chromium executable (default: /usr/bin/chromium)

import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where screenshots go (git-ignored). */
export const resultsDir = path.join(here, 'test-results');

/** The phone every test looks through: an ordinary smartphone held upright. */
export const PHONE = Object.freeze({ width: 390, height: 844, deviceScaleFactor: 3 });

const READY_PREFIX = 'Musubi is running at ';
const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const KEEP_OUTPUT_CHARS = 64 * 1024;

/** Servers still running, killed if the test process exits without stopping them. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function musubiBin() {
  return process.env.MUSUBI_BIN
    ? path.resolve(process.env.MUSUBI_BIN)
    : path.resolve(here, '../../../target/debug/musubi');
}

/** Keeps the last `KEEP_OUTPUT_CHARS` characters of a stream. */
function tail() {
  let text = '';
  return {
    add(chunk) {
      text += chunk;
      if (text.length > KEEP_OUTPUT_CHARS) text = text.slice(-KEEP_OUTPUT_CHARS);
    },
    get text() {
      return text;
    },
  };
}

/**
 * Starts `musubi demo` (or `musubi serve`) on a free port of 127.0.0.1 (or on `listen`)
 * against MUSUBI_E2E_DATABASE_URL and waits until it announces its URL.
 *
 * @param {{ demo?: boolean, env?: Record<string, string>, listen?: string }} [options]
 * @returns {Promise<{ url: string, stop: () => Promise<{ code: number|null, signal: string|null }>, stderr: () => string }>}
 */
export async function startServer({ demo = true, env = {}, listen = '127.0.0.1:0' } = {}) {
  const databaseUrl = process.env.MUSUBI_E2E_DATABASE_URL;
  if (!databaseUrl) {
    throw new Error(
      'MUSUBI_E2E_DATABASE_URL is not set. Run the browser tests with `cargo xtask test`, ' +
        'or set it by hand to the URL of a fresh, empty PostgreSQL database ' +
        '(e.g. postgres://postgres@127.0.0.1:5432/musubi_e2e_try).',
    );
  }
  const bin = musubiBin();
  // The demo's generated register (hundreds of patients) only slows the start: the tests use
  // the scripted people and groups.
  const args = demo ? ['demo', '--patients', '0', '--listen', listen] : ['serve', '--listen', listen];
  const child = spawn(bin, args, {
    cwd: here,
    env: { ...process.env, DATABASE_URL: databaseUrl, MUSUBI_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);

  const stdout = tail();
  const stderr = tail();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => stderr.add(chunk));

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  // After an exit, its last words may still be in the pipes: 'close' says they are drained.
  const drained = new Promise((resolve) => child.once('close', resolve));

  const url = await new Promise((resolve, reject) => {
    let pending = '';
    let settled = false;
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const fail = (why) => {
      const err = stderr.text.trim() || '(nothing)';
      const out = stdout.text.trim();
      settle(
        reject,
        new Error(
          `musubi ${args.join(' ')} (${bin}) ${why}.\n--- stderr ---\n${err}` +
            (out ? `\n--- stdout ---\n${out}` : ''),
        ),
      );
    };
    const timer = setTimeout(() => {
      fail(`did not announce its URL within ${READY_TIMEOUT_MS / 1000} s`);
      child.kill('SIGKILL');
    }, READY_TIMEOUT_MS);

    child.stdout.setEncoding('utf8');
    // Keep reading after the announcement too, so the server never blocks on a full pipe.
    child.stdout.on('data', (chunk) => {
      stdout.add(chunk);
      if (settled) return;
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        if (line.startsWith(READY_PREFIX)) {
          const found = line.slice(READY_PREFIX.length).trim().split(/\s+/)[0];
          if (/^https?:\/\/\S+$/.test(found)) {
            settle(resolve, found);
            return;
          }
        }
      }
    });
    child.once('error', (e) => {
      const hint =
        e.code === 'ENOENT'
          ? ' (build it first: `cargo build -p musubi`, or set MUSUBI_BIN)'
          : '';
      fail(`could not be started: ${e.message}${hint}`);
    });
    exited.then(async ({ code, signal }) => {
      await Promise.race([drained, new Promise((r) => setTimeout(r, 1000))]);
      fail(`exited before it was ready (${signal ? `signal ${signal}` : `exit code ${code}`})`);
    });
  });

  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGINT');
      let timer;
      const killed = new Promise((resolve) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, STOP_GRACE_MS);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      return exited;
    })();
    return stopping;
  };

  return { url, stop, stderr: () => stderr.text };
}

/** A TCP port of 127.0.0.1 that is free right now (for a server that must know its port). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** The flags Chromium needs here: headless, no sandbox (root), and no calls home. */
export const CHROMIUM_ARGS = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
]);

/** Launches Debian's Chromium (env CHROMIUM, default /usr/bin/chromium). */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  try {
    return await chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS] });
  } catch (e) {
    throw new Error(
      `cannot launch Chromium at ${executablePath} (install it with \`apt-get install chromium\`, ` +
        `or set CHROMIUM): ${e.message}`,
    );
  }
}

/**
 * Opens a page in a new browser context that looks like a smartphone: 390×844 CSS pixels at
 * 3× density, touch, mobile viewport. `consoleErrors` collects console errors and uncaught
 * page errors as they happen.
 *
 * @param {import('playwright-core').Browser} browser
 * @param {{ locale?: string }} [options]
 */
export async function newPhonePage(browser, { locale = 'ja-JP' } = {}) {
  const context = await browser.newContext({
    viewport: { width: PHONE.width, height: PHONE.height },
    screen: { width: PHONE.width, height: PHONE.height },
    deviceScaleFactor: PHONE.deviceScaleFactor,
    isMobile: true,
    hasTouch: true,
    locale,
    ...(locale === 'ja-JP' ? { extraHTTPHeaders: { 'Accept-Language': 'ja,en;q=0.5' } } : {}),
  });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const { url, lineNumber } = msg.location();
    consoleErrors.push(`console.error: ${msg.text()}${url ? ` (${url}:${lineNumber})` : ''}`);
  });
  page.on('pageerror', (err) => {
    consoleErrors.push(`page error: ${err.stack || err.message || String(err)}`);
  });
  return { context, page, consoleErrors };
}

/** Saves a full-page screenshot to test-results/NAME and returns its path. */
export async function screenshot(page, name) {
  await mkdir(resultsDir, { recursive: true });
  const file = path.join(resultsDir, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The path of the page's current URL. */
export const urlPath = (page) => new URL(page.url()).pathname;

/** Clicks something that navigates, and waits for the new page to load. */
export async function clickAndWait(page, locator) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
}

/** A page must fit the phone's width: nothing to scroll sideways. */
export async function expectNoSidewaysScrolling(page, where) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width > PHONE.width) {
    throw new Error(`horizontal overflow on ${where} (scrollWidth ${width} > ${PHONE.width})`);
  }
}
