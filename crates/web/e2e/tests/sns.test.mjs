// The heart of the SNS on two phones, in Japanese: the visiting nurse sets up a patient group
// and invites the clinic doctor, who joins from his home page. With his home page open, she
// posts a visit report; it appears there as unread without a reload. He opens it, and on her
// topic page his footprint, with its time, appears without a reload. Every page fits the
// phone's width; screenshots of each step are kept.

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

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/domain/src/demo.rs
const NURSE = 'aoki@minatogawa.example';
const DOCTOR = 'kawamura@minatogawa.example';
const DOCTOR_NAME = '川村 健一';
/** Long enough for a live update to travel (event → WebSocket → fragment fetch → swap). */
const LIVE_TIMEOUT_MS = 15_000;

describe('groups, topics and footprints on two phones', () => {
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

  /** Waits until live.js has its subscription open. */
  async function liveConnected(page) {
    await page.locator('html[data-live="connected"]').waitFor({ state: 'attached', timeout: LIVE_TIMEOUT_MS });
  }

  /** Marks the current document, so that a reload (a new document) is noticed. */
  async function markDocument(page) {
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
  }

  async function assertNotReloaded(page, where) {
    assert.equal(await page.evaluate(() => window.__sameDocument === true), true, `${where} was not reloaded`);
  }

  async function look(page, name, where) {
    await screenshot(page, name);
    await expectNoSidewaysScrolling(page, where);
    await expectNoSeriousAxeViolations(page, where);
  }

  test('a visit report reaches the doctor live, and his footprint reaches the nurse live', async (t) => {
    const nurse = await phone(t);
    const doctor = await phone(t);
    const stamp = Date.now().toString(36);
    const groupName = `港 花子さん（e2e ${stamp}）`;
    const title = `訪問看護の報告 ${stamp}`;

    // The nurse creates a patient group in みなと川医師会.
    await signIn(nurse.page, NURSE);
    await look(nurse.page, 'sns-home-nurse-ja.png', '/home');
    await navigate(nurse.page, () =>
      nurse.page.locator('.app-nav').getByRole('link', { name: 'グループ', exact: true }).click(),
    );
    assert.equal(urlPath(nurse.page), '/groups');
    await look(nurse.page, 'sns-groups-ja.png', '/groups');
    await navigate(nurse.page, () =>
      nurse.page.getByRole('link', { name: 'みなと川医師会でグループを作る' }).click(),
    );
    assert.equal(urlPath(nurse.page), '/a/minatogawa/groups/new');
    await look(nurse.page, 'sns-new-group-ja.png', '/a/minatogawa/groups/new');
    // Sending it empty: a message in Japanese, and the choices made are kept.
    await nurse.page.getByLabel('既読の表示').selectOption('footprints');
    await navigate(nurse.page, () => nurse.page.getByRole('button', { name: 'グループを作る' }).click());
    assert.match(await nurse.page.locator('.field__error').first().innerText(), /グループの名前を入力してください/);
    assert.equal(await nurse.page.getByLabel('既読の表示').inputValue(), 'footprints');
    await nurse.page.getByLabel('グループの名前').fill(groupName);
    await nurse.page.getByLabel('説明').fill('みなと川1丁目。週2回の訪問看護、月2回の訪問診療。');
    await navigate(nurse.page, () => nurse.page.getByRole('button', { name: 'グループを作る' }).click());
    assert.match(urlPath(nurse.page), /^\/a\/minatogawa\/g\/[0-9a-f-]{36}$/);
    const groupPath = urlPath(nurse.page);
    assert.equal(await nurse.page.locator('h1').innerText(), groupName);
    assert.match(await nurse.page.locator('.sns-flash').innerText(), /グループを作りました/);

    // An e-mail address is answered the same whether or not it has an account.
    await nurse.page.getByLabel('招待する人のメールアドレス').fill('nobody@minatogawa.example');
    await navigate(nurse.page, () =>
      nurse.page.getByRole('button', { name: 'メールアドレスで招待する', exact: true }).click(),
    );
    assert.match(await nurse.page.locator('.sns-flash').innerText(), /招待を受け付けました/);
    // She finds the doctor among her association's members by the kana of his name.
    await nurse.page.getByLabel(/^招待する人を探す/).fill('かわむら');
    await navigate(nurse.page, () => nurse.page.getByRole('button', { name: '探す', exact: true }).click());
    await navigate(nurse.page, () =>
      nurse.page.getByRole('button', { name: `${DOCTOR_NAME} さんを招待する`, exact: true }).click(),
    );
    assert.match(await nurse.page.locator('.sns-flash').innerText(), /招待しました/);
    assert.ok((await nurse.page.locator('main').innerText()).includes(DOCTOR_NAME), 'he is listed as invited');
    await look(nurse.page, 'sns-group-owner-ja.png', groupPath);

    // The doctor signs in; the invitation waits on his home page, and he joins.
    await signIn(doctor.page, DOCTOR);
    const invitation = doctor.page.locator('.invitation', { hasText: groupName });
    await invitation.waitFor();
    await look(doctor.page, 'sns-home-invitation-ja.png', '/home');
    await navigate(doctor.page, () => invitation.getByRole('button', { name: '参加する' }).click());
    assert.equal(urlPath(doctor.page), groupPath);
    assert.match(await doctor.page.locator('.sns-flash').innerText(), /グループに参加しました/);

    // His home page stays open; nothing of this group is unread yet.
    await doctor.page.goto(at('/home'), { waitUntil: 'load' });
    await liveConnected(doctor.page);
    await markDocument(doctor.page);
    assert.equal(await doctor.page.locator('.unread-group', { hasText: groupName }).count(), 0);
    const badgeBefore = Number((await doctor.page.locator('.app-nav [data-unread-count]').innerText()) || '0');

    // The nurse posts a visit report from the group page.
    await nurse.page.goto(at(groupPath), { waitUntil: 'load' });
    await navigate(nurse.page, () => nurse.page.getByRole('link', { name: '新しいトピック' }).click());
    assert.equal(urlPath(nurse.page), `${groupPath}/new`);
    await look(nurse.page, 'sns-new-topic-ja.png', `${groupPath}/new`);
    await nurse.page.getByLabel('題名').fill(title);
    await nurse.page
      .getByLabel('本文')
      .fill('血圧 128/76、SpO2 97%。\n食事は半分ほど。\n手順書: https://example.org/care-plan <b>太字にはならない</b>');
    await navigate(nurse.page, () => nurse.page.getByRole('button', { name: '投稿する' }).click());
    assert.match(urlPath(nurse.page), /^\/a\/minatogawa\/t\/[0-9a-f-]{36}$/);
    const topicPath = urlPath(nurse.page);
    assert.equal(await nurse.page.locator('h1').innerText(), title);
    const first = nurse.page.locator('#c-1');
    const body = first.locator('.comment__body');
    assert.equal(await body.locator('a[href="https://example.org/care-plan"]').count(), 1, 'the address is a link');
    assert.equal(await body.locator('b').count(), 0, 'no raw HTML');
    assert.ok((await body.innerText()).includes('<b>太字にはならない</b>'));
    assert.ok((await body.innerText()).includes('SpO2 97%。\n食事は半分ほど。'), 'line breaks kept');
    assert.match(await first.locator('.not-read').innerText(), new RegExp(`未読：.*${DOCTOR_NAME}`));
    assert.equal(await first.locator('.reader-badge').count(), 0, 'nobody has read it yet');
    await liveConnected(nurse.page);
    await markDocument(nurse.page);
    await look(nurse.page, 'sns-topic-posted-ja.png', topicPath);

    // The doctor's home page shows it unread, without a reload.
    const item = doctor.page.locator('#news .unread-item', { hasText: title });
    await item.waitFor({ timeout: LIVE_TIMEOUT_MS });
    await assertNotReloaded(doctor.page, 'the home page');
    const group = doctor.page.locator('.unread-group', { hasText: groupName });
    assert.match(await group.innerText(), /未読 1/);
    assert.match(await item.innerText(), /青木 さくら/);
    assert.ok((await item.innerText()).includes('新しいトピック'));
    const badgeAfter = Number(await doctor.page.locator('.app-nav [data-unread-count]').innerText());
    assert.ok(badgeAfter > badgeBefore, `the header's unread badge went up (${badgeBefore} → ${badgeAfter})`);
    await look(doctor.page, 'sns-home-unread-live-ja.png', '/home');

    // He opens it: straight to the comment.
    await navigate(doctor.page, () => item.click());
    assert.equal(urlPath(doctor.page), topicPath);
    assert.equal(new URL(doctor.page.url()).hash, '#c-1');
    assert.ok((await doctor.page.locator('#c-1 .comment__body').innerText()).includes('血圧 128/76'));
    await look(doctor.page, 'sns-topic-doctor-ja.png', topicPath);

    // The nurse's page shows his footprint with its time, without a reload.
    const footprint = first.locator('.reader-badge', { hasText: '川' });
    await footprint.waitFor({ timeout: LIVE_TIMEOUT_MS });
    await assertNotReloaded(nurse.page, 'the topic page');
    assert.match(await footprint.innerText(), /\d{1,2}:\d{2}/, 'with the time he read it');
    assert.match(await first.locator('.readers__label').innerText(), /既読 1 人/);
    assert.match(await first.locator('.not-read').innerText(), /全員読みました|未読：/);
    assert.ok(!(await first.locator('.not-read').innerText()).includes(DOCTOR_NAME), 'he is no longer unread');
    // Tapping the badges lists who read it, and when.
    await first.locator('.readers__summary').click();
    const list = await first.locator('.readers__list').innerText();
    assert.match(list, new RegExp(`${DOCTOR_NAME}\\s+\\d{4}年\\d{1,2}月\\d{1,2}日 \\d{2}:\\d{2}`));
    await look(nurse.page, 'sns-topic-footprint-live-ja.png', topicPath);

    // He replies; the reply box is at the bottom of his screen and reachable.
    const reply = doctor.page.getByLabel('返信', { exact: true });
    const box = await reply.boundingBox();
    assert.ok(box && box.y + box.height <= 844, 'the reply box is on screen');
    await reply.fill('ありがとうございます。明日の訪問診療で確認します。');
    await navigate(doctor.page, () => doctor.page.getByRole('button', { name: '送信' }).click());
    assert.equal(await doctor.page.locator('#c-2 .comment__body').innerText(), 'ありがとうございます。明日の訪問診療で確認します。');
    // …and it appears on the nurse's page too, still without a reload.
    await nurse.page.locator('#c-2', { hasText: '明日の訪問診療' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    await assertNotReloaded(nurse.page, 'the topic page');

    // The refused new-group form answered 422, which Chromium reports on the console; nothing
    // else (an e-mail invitation is never refused for the address it names).
    const refused = nurse.consoleErrors.filter((e) => e.includes('status of 422'));
    assert.equal(refused.length, 1, `the refused form: ${JSON.stringify(nurse.consoleErrors)}`);
    assert.deepEqual(
      nurse.consoleErrors.filter((e) => !e.includes('status of 422')),
      [],
      'no other errors on the nurse’s pages',
    );
    assert.deepEqual(doctor.consoleErrors, [], 'no errors on the doctor’s pages');
  });
});
