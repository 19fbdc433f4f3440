// The landing page, seen on a phone: Japanese first, the demo associations listed, no
// sideways scrolling, no script errors, styled, and the language switch works both ways.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, newPhonePage, PHONE, screenshot, startServer } from '../harness.mjs';
import { expectNoSeriousAxeViolations } from '../axe.mjs';

const JAPANESE = /[\u3040-\u30ff\u3400-\u9fff]/; // kana or kanji
const LATIN_WORD = /[A-Za-z]{3,}/;

describe('landing page on a phone', () => {
  let server;
  let browser;
  let context;
  let page;
  let consoleErrors;

  before(async () => {
    server = await startServer({ demo: true });
    browser = await launchBrowser();
    ({ context, page, consoleErrors } = await newPhonePage(browser, { locale: 'ja-JP' }));
  });

  after(async () => {
    try {
      await context?.close();
    } finally {
      try {
        await browser?.close();
      } finally {
        await server?.stop();
      }
    }
  });

  const htmlLang = () => page.evaluate(() => document.documentElement.lang);
  const h1Text = async () => (await page.locator('h1').first().innerText()).trim();

  /** Clicks a language link in the header and waits for the page in that language. */
  async function switchLanguage(linkName, lang) {
    const link = page.locator('.lang-switch').getByRole('link', { name: linkName, exact: true });
    assert.equal(await link.count(), 1, `one "${linkName}" link in the language switch`);
    await link.click();
    await page.waitForFunction((l) => document.documentElement.lang === l, lang, { timeout: 15_000 });
    await page.waitForLoadState('load');
  }

  test('shows the Japanese landing page with the demo associations', async () => {
    const response = await page.goto(server.url, { waitUntil: 'load' });
    assert.equal(response?.status(), 200, `GET ${server.url}`);
    await screenshot(page, 'landing-ja.png'); // first, so a failure below still leaves a picture
    await expectNoSeriousAxeViolations(page, 'the landing page');

    assert.equal(await htmlLang(), 'ja', '<html lang="ja">');

    const text = await page.locator('body').innerText();
    for (const expected of ['結び', 'みなと川医師会', 'さくら台医師会']) {
      assert.ok(text.includes(expected), `the page shows ${expected}`);
    }

    assert.equal(await page.locator('h1').count(), 1, 'exactly one <h1>');
    assert.match(await h1Text(), JAPANESE, 'the <h1> is in Japanese');

    const widths = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    assert.ok(
      widths.scroll <= PHONE.width,
      `no horizontal overflow at ${PHONE.width} px (scrollWidth ${widths.scroll}, clientWidth ${widths.client})`,
    );

    assert.deepEqual(consoleErrors, [], 'no console errors and no page errors');
  });

  test('loads the stylesheet', async () => {
    const sheets = await page.evaluate(() =>
      [...document.querySelectorAll('link[rel="stylesheet"]')].map((link) => {
        let rules = -1;
        try {
          rules = link.sheet ? link.sheet.cssRules.length : -1;
        } catch {
          rules = -2; // cross-origin: unreadable
        }
        return { href: link.href, rules };
      }),
    );
    assert.ok(sheets.length >= 1, 'the page links a stylesheet');
    for (const { href, rules } of sheets) {
      assert.ok(rules > 0, `stylesheet ${href} loaded with rules (got ${rules})`);
    }

    const props = ['font-size', 'font-family', 'background-color', 'margin-top', 'line-height'];
    const read = (names) => {
      const style = getComputedStyle(document.body);
      return Object.fromEntries(names.map((n) => [n, style.getPropertyValue(n)]));
    };
    const styled = await page.evaluate(read, props);
    // The browser's own defaults, read from an unstyled page of the same context.
    const blank = await context.newPage();
    let defaults;
    try {
      await blank.setContent('<!doctype html><html lang="ja"><body><p>既定</p></body></html>');
      defaults = await blank.evaluate(read, props);
    } finally {
      await blank.close();
    }
    const differing = props.filter((p) => styled[p] !== defaults[p]);
    assert.ok(
      differing.length > 0,
      `the body is styled (computed ${JSON.stringify(styled)} equals the defaults ${JSON.stringify(defaults)})`,
    );
    assert.notEqual(
      styled['background-color'],
      defaults['background-color'],
      'the stylesheet sets a background colour',
    );
    assert.deepEqual(consoleErrors, [], 'no console errors and no page errors');
  });

  test('switches to English and back to Japanese', async () => {
    await switchLanguage('English', 'en');
    await screenshot(page, 'landing-en.png');
    await expectNoSeriousAxeViolations(page, 'the landing page in English');
    assert.equal(await htmlLang(), 'en', '<html lang="en">');
    const h1 = await h1Text();
    assert.match(h1, LATIN_WORD, `the <h1> is in English (got "${h1}")`);
    assert.doesNotMatch(h1, JAPANESE, `the <h1> has no Japanese left (got "${h1}")`);
    const text = await page.locator('main').innerText();
    assert.ok(text.includes('Musubi'), 'the English page names Musubi');
    // The associations are data, not interface text: still listed by their names.
    assert.ok(text.includes('みなと川医師会') && text.includes('さくら台医師会'), 'associations still listed');
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= PHONE.width, `no horizontal overflow in English (scrollWidth ${scrollWidth})`);

    await switchLanguage('日本語', 'ja');
    assert.equal(await htmlLang(), 'ja', '<html lang="ja"> again');
    assert.match(await h1Text(), JAPANESE, 'the <h1> is in Japanese again');
    assert.ok((await page.locator('body').innerText()).includes('結び'), 'the page shows 結び again');

    assert.deepEqual(consoleErrors, [], 'no console errors and no page errors');
  });
});
