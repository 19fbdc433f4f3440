// Direct messages on phones, in Japanese, between two associations: 青木 (みなと川) finds 中村
// (さくら台) on 「新しいメッセージ」 and writes to her; 中村 finds it on her list of messages and
// reads it, and 青木's open page shows 中村's footprint (既読) without being reloaded; 中村
// answers, and her page shows 青木's footprint on the answer the same way. The list of
// messages fits a small phone at 200 % text without scrolling sideways. Each page visited is
// checked with axe.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  expectNoSidewaysScrolling,
  launchBrowser,
  newPhonePage,
  screenshot,
  startServer,
  urlPath,
} from '../harness.mjs';
import { expectNoSeriousAxeViolations } from '../axe.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/demo/src/lib.rs
const NURSE = 'aoki@minatogawa.example';
const NURSE_NAME = '青木 さくら';
const OTHER_NURSE = 'nakamura@sakuradai.example';
const OTHER_NURSE_NAME = '中村 愛';
/** How long a footprint may take to show live (0.7 s on screen, the report, the event). */
const LIVE_TIMEOUT_MS = 15_000;

describe('direct messages between two associations on a phone', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ demo: true });
    browser = await launchBrowser();
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await server?.stop();
    }
  });

  const at = (p) => new URL(p.replace(/^\//, ''), server.url).href;

  /** A fresh phone (own cookies): one per person. */
  async function phone(t) {
    const opened = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => opened.context.close());
    return opened;
  }

  async function navigate(page, action) {
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), action()]);
  }

  async function signIn(page, email) {
    await page.goto(at('/signin'), { waitUntil: 'load' });
    await page.getByLabel('メールアドレス').fill(email);
    await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
    await navigate(page, () =>
      page.locator('form[action="/signin"]').getByRole('button', { name: 'ログイン', exact: true }).click(),
    );
    assert.equal(urlPath(page), '/home', `${email} is signed in`);
  }

  /** Marks the page, to tell later that it was not reloaded. */
  const mark = (page) => page.evaluate(() => { window.__notReloaded = true; });
  const stillMarked = (page) => page.evaluate(() => window.__notReloaded === true);

  /** Waits until `name` is among the readers of comment `seq`, as its author sees them. */
  async function waitForFootprint(page, seq, name) {
    await page.waitForFunction(
      ({ seq, name }) =>
        [...document.querySelectorAll(`#c-${seq} .readers__list .readers__name`)].some(
          (n) => n.textContent.trim() === name,
        ),
      { seq, name },
      { timeout: LIVE_TIMEOUT_MS },
    );
  }

  test('each sees the other’s footprint appear live', async (t) => {
    const aoki = await phone(t);
    const nakamura = await phone(t);
    const stamp = Date.now().toString(36);
    const first = `中村さん、来週の退院前カンファレンスの時間を教えてください（e2e ${stamp}）。`;
    const answer = `木曜の14時からです。よろしくお願いします（e2e ${stamp}）。`;

    // 青木 opens メッセージ from the menu and starts a new one.
    await signIn(aoki.page, NURSE);
    await aoki.page.locator('summary.site-menu__button').click();
    await navigate(aoki.page, () =>
      aoki.page.locator('.site-menu__list--always').getByRole('link', { name: 'メッセージ', exact: true }).click(),
    );
    assert.equal(urlPath(aoki.page), '/messages');
    assert.equal(await aoki.page.locator('h1').innerText(), 'メッセージ');
    await expectNoSeriousAxeViolations(aoki.page, '/messages');
    await expectNoSidewaysScrolling(aoki.page, '/messages');
    await navigate(aoki.page, () => aoki.page.getByRole('link', { name: '新しいメッセージ' }).click());
    assert.equal(urlPath(aoki.page), '/a/minatogawa/messages/new');

    // She finds 中村 of さくら台 by her reading, ticks her and writes.
    await aoki.page.getByLabel('送る相手を探す').fill('なかむら');
    await navigate(aoki.page, () => aoki.page.getByRole('button', { name: '探す', exact: true }).click());
    const person = aoki.page.locator('.people-picker label', { hasText: OTHER_NURSE_NAME });
    assert.match(await person.innerText(), /さくら台医師会/);
    await person.locator('input[type=checkbox]').check();
    await aoki.page.getByLabel('メッセージ', { exact: true }).fill(first);
    await screenshot(aoki.page, 'messages-new-ja.png');
    await expectNoSeriousAxeViolations(aoki.page, '/a/minatogawa/messages/new');
    await expectNoSidewaysScrolling(aoki.page, '/a/minatogawa/messages/new');
    await navigate(aoki.page, () => aoki.page.getByRole('button', { name: '送信する' }).click());
    assert.match(urlPath(aoki.page), /^\/a\/minatogawa\/t\/[0-9a-f-]{36}$/);
    const conversation = urlPath(aoki.page);
    assert.equal(await aoki.page.locator('h1').innerText(), `メッセージ：${OTHER_NURSE_NAME}`);
    assert.equal(await aoki.page.locator('.back-link a').getAttribute('href'), '/messages');
    assert.equal(await aoki.page.locator('#reply-urgent').count(), 0, 'no 至急 in a message');
    await expectNoSeriousAxeViolations(aoki.page, conversation);
    await expectNoSidewaysScrolling(aoki.page, conversation);
    await mark(aoki.page);

    // 中村 finds it on her list of messages, unread, and opens it.
    await signIn(nakamura.page, OTHER_NURSE);
    await nakamura.page.goto(at('/messages'), { waitUntil: 'load' });
    const item = nakamura.page.locator(`a.conversation-link[href="${conversation}"]`);
    assert.match(await item.innerText(), new RegExp(NURSE_NAME));
    assert.match(await item.innerText(), /未読 1/);
    assert.match(await item.innerText(), /みなと川医師会/);
    await screenshot(nakamura.page, 'messages-list-ja.png');
    await expectNoSeriousAxeViolations(nakamura.page, '/messages (with a conversation)');
    await expectNoSidewaysScrolling(nakamura.page, '/messages');
    await navigate(nakamura.page, () => item.click());
    assert.equal(urlPath(nakamura.page), conversation);
    assert.equal(await nakamura.page.locator('h1').innerText(), `メッセージ：${NURSE_NAME}`);

    // Her reading shows on 青木's page, which was not reloaded.
    await waitForFootprint(aoki.page, 1, OTHER_NURSE_NAME);
    assert.match(await aoki.page.locator('#c-1 .readers__label').innerText(), /^既読 1 人$/);
    assert.ok(await stillMarked(aoki.page), '青木’s page was not reloaded');
    await screenshot(aoki.page, 'messages-footprint-aoki-ja.png');

    // 中村 answers; her page (loaded after sending) shows 青木's footprint live too.
    await nakamura.page.getByLabel('返信', { exact: true }).fill(answer);
    await navigate(nakamura.page, () => nakamura.page.getByRole('button', { name: '送信', exact: true }).click());
    assert.equal(urlPath(nakamura.page), conversation);
    await nakamura.page.locator('#c-2').waitFor();
    await mark(nakamura.page);
    await aoki.page.locator('#c-2', { hasText: answer }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    await aoki.page.locator('#c-2').scrollIntoViewIfNeeded();
    await waitForFootprint(nakamura.page, 2, NURSE_NAME);
    assert.ok(await stillMarked(nakamura.page), '中村’s page was not reloaded');
    assert.ok(await stillMarked(aoki.page), '青木’s page was still not reloaded');
    await screenshot(nakamura.page, 'messages-footprint-nakamura-ja.png');
    await expectNoSeriousAxeViolations(nakamura.page, `${conversation} (answered)`);

    assert.deepEqual(aoki.consoleErrors, [], 'no errors on 青木’s pages');
    assert.deepEqual(nakamura.consoleErrors, [], 'no errors on 中村’s pages');
  });

  test('the list of messages does not scroll sideways at 200 % text', async (t) => {
    const width = 320;
    const height = 640;
    const context = await browser.newContext({
      viewport: { width, height },
      screen: { width, height },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      locale: 'ja-JP',
      extraHTTPHeaders: { 'Accept-Language': 'ja,en;q=0.5' },
    });
    t.after(() => context.close());
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    // The browser's own text size (as in large-text.test.mjs), not a zoom.
    await cdp.send('Page.setFontSizes', { fontSizes: { standard: 32, fixed: 26 } });
    await signIn(page, NURSE);
    for (const path of ['/messages', '/a/minatogawa/messages/new?q=なかむら']) {
      await page.goto(at(path), { waitUntil: 'load' });
      const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(scrollWidth <= width, `${path}: scrollWidth ${scrollWidth} > ${width}`);
    }
    await screenshot(page, 'messages-large-text-ja.png');
  });
});
