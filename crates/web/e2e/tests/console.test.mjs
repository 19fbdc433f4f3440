// The association console on a phone, in Japanese: the demo administrator deactivates the
// demo nurse while she has the app open in another browser, and her next request sends her to
// the sign-in page; then lets her back in. The other console pages are looked at (screenshots)
// and must fit the phone's width.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { expectNoSidewaysScrolling, launchBrowser, newPhonePage, screenshot, startServer, urlPath } from '../harness.mjs';
import { expectNoSeriousAxeViolations } from '../axe.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/domain/src/demo.rs
const NURSE = 'aoki@minatogawa.example';
const NURSE_NAME = '青木 さくら';
const ADMIN = 'admin@minatogawa.example';
const CONSOLE = '/a/minatogawa/console';

describe('the association console on a phone', () => {
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

  /** A fresh phone (own cookies): one per person. */
  async function phone(t) {
    const opened = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => opened.context.close());
    return opened;
  }

  const at = (p) => new URL(p.replace(/^\//, ''), server.url).href;

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

  /** The nurse's card on the members page. */
  const nurseCard = (page) => page.locator('.console-member', { hasText: NURSE_NAME });

  /**
   * Opens the card's actions and presses `button`, answering the confirmation with `accept`.
   * Returns the question the page asked.
   */
  async function pressMemberAction(page, button, { accept }) {
    const card = nurseCard(page);
    const details = card.locator('details.console-actions');
    if (!(await details.evaluate((d) => d.open))) {
      await card.getByText(`${NURSE_NAME} さんへの操作`).click();
    }
    let question = '';
    page.once('dialog', async (dialog) => {
      question = dialog.message();
      await (accept ? dialog.accept() : dialog.dismiss());
    });
    if (accept) {
      await navigate(page, () => card.getByRole('button', { name: button }).click());
    } else {
      await card.getByRole('button', { name: button }).click();
    }
    return question;
  }

  /** Makes the test repeatable on a database an earlier, interrupted run left behind. */
  async function nurseIsActive(page) {
    if ((await nurseCard(page).innerText()).includes('利用停止中')) {
      await pressMemberAction(page, '利用を再開する', { accept: true });
    }
  }

  test('an administrator deactivates a member and her open session stops working on the next request', async (t) => {
    const nurse = await phone(t);
    const admin = await phone(t);

    await signIn(admin.page, ADMIN);
    // 「管理」 on the home page leads to the console.
    await navigate(admin.page, () => admin.page.getByRole('link', { name: '管理', exact: true }).click());
    assert.equal(urlPath(admin.page), CONSOLE);
    assert.match(await admin.page.locator('h1').innerText(), /みなと川医師会の管理/);
    await screenshot(admin.page, 'console-home-ja.png');
    await expectNoSeriousAxeViolations(admin.page, CONSOLE);
    await expectNoSidewaysScrolling(admin.page, CONSOLE);
    await navigate(admin.page, () =>
      admin.page.locator('.console-nav').getByRole('link', { name: 'メンバー' }).click(),
    );
    assert.equal(urlPath(admin.page), `${CONSOLE}/members`);
    await nurseIsActive(admin.page);

    // The nurse is at work, with her home page open.
    await signIn(nurse.page, NURSE);
    assert.ok((await nurse.page.locator('main').innerText()).includes('みなと川医師会'));

    const card = nurseCard(admin.page);
    const facts = await card.innerText();
    for (const text of ['あおき さくら', '看護師', '訪問看護ステーションみなと', '一般', '利用中']) {
      assert.ok(facts.includes(text), `her card shows ${text}`);
    }
    await screenshot(admin.page, 'console-members-ja.png');
    await expectNoSeriousAxeViolations(admin.page, `${CONSOLE}/members`);
    await expectNoSidewaysScrolling(admin.page, `${CONSOLE}/members`);

    // Saying "no" to the question changes nothing (and the button still works afterwards).
    const question = await pressMemberAction(admin.page, '利用停止にする', { accept: false });
    assert.match(question, /青木 さくら さんを利用停止にします/);
    assert.equal(urlPath(admin.page), `${CONSOLE}/members`);
    assert.ok((await card.innerText()).includes('利用中'));
    await screenshot(admin.page, 'console-members-actions-ja.png');

    await pressMemberAction(admin.page, '利用停止にする', { accept: true });
    assert.equal(urlPath(admin.page), `${CONSOLE}/members`);
    assert.match(
      await admin.page.getByRole('status').innerText(),
      /青木 さくら さんを利用停止にしました/,
    );
    assert.ok((await nurseCard(admin.page).innerText()).includes('利用停止中'));
    await screenshot(admin.page, 'console-members-deactivated-ja.png');

    // Her next request: the sign-in page, to come back home afterwards.
    await nurse.page.reload({ waitUntil: 'load' });
    assert.equal(urlPath(nurse.page), '/signin');
    assert.equal(new URL(nurse.page.url()).searchParams.get('next'), '/home');

    // Letting her back in; she signs in again and finds her association.
    const again = await pressMemberAction(admin.page, '利用を再開する', { accept: true });
    assert.match(again, /青木 さくら さんの利用を再開します/);
    assert.match(await admin.page.getByRole('status').innerText(), /利用を再開しました/);
    await signIn(nurse.page, NURSE);
    assert.ok((await nurse.page.locator('main').innerText()).includes('みなと川医師会'));

    assert.deepEqual(admin.consoleErrors, [], 'no console errors for the administrator');
    assert.deepEqual(nurse.consoleErrors, [], 'no console errors for the nurse');
  });

  test('a member who opens the console gets the page-not-found page', async (t) => {
    const { page, consoleErrors } = await phone(t);
    await signIn(page, NURSE);
    assert.ok(!(await page.locator('main').innerText()).includes('管理\n'), 'no 「管理」 link');
    assert.equal(await page.getByRole('link', { name: '管理', exact: true }).count(), 0);
    const res = await page.goto(at(`${CONSOLE}/members`), { waitUntil: 'load' });
    assert.equal(res.status(), 404);
    assert.equal(await page.locator('h1').innerText(), 'ページが見つかりません');
    await expectNoSeriousAxeViolations(page, 'the page-not-found page');
    assert.ok(!(await page.locator('main').innerText()).includes('青木'));
    // Chromium reports the 404 on the console: expected here, and only this.
    assert.ok(
      consoleErrors.length > 0 && consoleErrors.every((e) => e.includes('status of 404')),
      `only the 404: ${JSON.stringify(consoleErrors)}`,
    );
  });

  test('the other console pages fit a phone', async (t) => {
    const { page, consoleErrors } = await phone(t);
    await signIn(page, ADMIN);

    await page.goto(at(`${CONSOLE}/invite`), { waitUntil: 'load' });
    await page.getByLabel('所属先（事業所）').selectOption({ label: '訪問看護ステーションみなと' });
    await screenshot(page, 'console-invite-ja.png');
    await expectNoSeriousAxeViolations(page, `${CONSOLE}/invite`);
    await expectNoSidewaysScrolling(page, `${CONSOLE}/invite`);
    // In person: the link and QR code, once.
    await navigate(page, () => page.getByRole('button', { name: '招待する' }).click());
    assert.equal(await page.getByRole('img', { name: '招待のリンクのQRコード' }).count(), 1);
    assert.match(await page.locator('#invitation-link').innerText(), /\/invite\//);
    assert.equal(await page.getByRole('button', { name: '印刷する' }).isVisible(), true);
    await screenshot(page, 'console-invited-ja.png');
    await expectNoSeriousAxeViolations(page, 'the invitation link page');
    await expectNoSidewaysScrolling(page, 'the invitation link page');
    // Withdrawn again, so the list stays as it was.
    await page.goto(at(`${CONSOLE}/invite`), { waitUntil: 'load' });
    page.once('dialog', (d) => d.accept());
    await navigate(page, () => page.getByRole('button', { name: 'この招待を取り消す' }).first().click());
    assert.match(await page.getByRole('status').innerText(), /招待を取り消しました/);

    await page.goto(at(`${CONSOLE}/settings`), { waitUntil: 'load' });
    await page.getByLabel('自動でログアウトするまでの時間').fill('2');
    await navigate(page, () => page.getByRole('button', { name: '設定を保存する' }).click());
    assert.match(await page.locator('#idle-error').innerText(), /5から1440までの数字/);
    await screenshot(page, 'console-settings-error-ja.png');
    await expectNoSeriousAxeViolations(page, `${CONSOLE}/settings`);
    await expectNoSidewaysScrolling(page, `${CONSOLE}/settings`);
    // The form answered 422: Chromium reports it on the console.
    const expected422 = consoleErrors.splice(0);
    assert.ok(
      expected422.every((e) => e.includes('status of 422')),
      `only the 422 of the refused settings: ${JSON.stringify(expected422)}`,
    );

    await page.goto(at(`${CONSOLE}/audit`), { waitUntil: 'load' });
    assert.ok((await page.locator('main').innerText()).includes('ログイン'));
    // Only what administrators did to members (a short page to look at).
    await page.getByLabel('操作の種類').selectOption({ label: 'メンバーの管理' });
    await navigate(page, () => page.getByRole('button', { name: 'この条件で表示する' }).click());
    assert.equal(new URL(page.url()).searchParams.get('action'), 'member');
    const shown = await page.locator('.console-record__action').allInnerTexts();
    // In words; the code is one tap further.
    const codes = await page.locator('.console-record__more .console-code').allTextContents();
    assert.ok(codes.length > 0 && codes.every((c) => /^member\./.test(c)), JSON.stringify(codes));
    assert.ok(shown.every((a) => !/member\./.test(a)), JSON.stringify(shown));
    assert.ok(shown.some((a) => a.startsWith('利用停止')), 'the deactivation is in the log');
    await screenshot(page, 'console-audit-ja.png');
    await expectNoSeriousAxeViolations(page, `${CONSOLE}/audit`);
    await expectNoSidewaysScrolling(page, `${CONSOLE}/audit`);
    const download = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'この条件の記録をCSVで書き出す' }).click(),
    ]).then(([d]) => d);
    assert.match(download.suggestedFilename(), /^audit-minatogawa-\d{4}-\d{2}-\d{2}\.csv$/);

    assert.deepEqual(consoleErrors, [], 'no console errors');
  });
});
