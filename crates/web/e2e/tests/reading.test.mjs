// What counts as read on a topic page, on phones, in Japanese (static/topic.js). A comment
// gets the reader's footprint only once it has been on the screen: the doctor who jumps to
// the newest comment of a long topic has not read the ones far above it until he scrolls up
// to them. A partly read topic opens at 「ここから未読」, from the group's topic list and from
// a plain link. A comment read by more than five people shows five and fetches the rest when
// its readers are opened; the whole list also has a page of its own (no script needed).
//
// Footprints are checked as their author sees them (the readers listed on her own comments
// and 「未読：…」), and through the unread count the doctor's group page shows.

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
const DOCTOR = 'kawamura@minatogawa.example';
const DOCTOR_NAME = '川村 健一';
// Both are in this demo patient group (crates/demo/data/groups.toml).
const YAMADA = '山田 太郎さん（85歳・在宅酸素）';
// さくら台's patient group, its owner, its topic whose first comment (by 佐藤 隆) all five
// other members have read, and the association's clerk, who is not a member yet.
const ITO = '伊藤 正男さん（80歳・心不全）';
const ITO_OWNER = 'takahashi@sakuradai.example';
const ITO_TOPIC = '退院のご連絡と在宅での体重管理について';
const CLERK = 'admin@sakuradai.example';
const CLERK_NAME = '桜井 花子';
/** How long a report of what was on screen may take (0.7 s on screen, then 0.4 s to send). */
const SEEN_TIMEOUT_MS = 10_000;

describe('reading a topic on a phone: footprints follow what was on screen', () => {
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

  /** Opens a group from the groups page; returns its path. */
  async function openGroup(page, name) {
    await page.goto(at('/groups'), { waitUntil: 'load' });
    await navigate(page, () => page.locator('a.group-link', { hasText: name }).first().click());
    assert.match(urlPath(page), /^\/a\/[a-z0-9-]+\/g\/[0-9a-f-]{36}$/);
    return urlPath(page);
  }

  /** Posts a topic in the group open on the page; returns its path. */
  async function postTopic(page, title, body) {
    await navigate(page, () => page.getByRole('link', { name: '新しいトピック' }).click());
    await page.getByLabel('題名').fill(title);
    await page.getByLabel('本文').fill(body);
    await navigate(page, () => page.getByRole('button', { name: '投稿する' }).click());
    assert.match(urlPath(page), /^\/a\/[a-z0-9-]+\/t\/[0-9a-f-]{36}$/);
    return urlPath(page);
  }

  /**
   * Replies to the topic open on the page, as its reply form would (same session, same CSRF
   * field), without loading the page once per reply; then reloads it.
   */
  async function postReplies(page, topicPath, bodies) {
    assert.equal(urlPath(page), topicPath);
    const failed = await page.evaluate(
      async ({ action, bodies }) => {
        const csrf = document.querySelector('form#reply input[name=csrf]').value;
        for (const body of bodies) {
          const res = await fetch(action, {
            method: 'POST',
            credentials: 'same-origin',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ csrf, body }).toString(),
          });
          if (!res.ok || !new URL(res.url).pathname.endsWith(action.replace(/\/comments$/, ''))) {
            return `${res.status} ${res.url}`;
          }
        }
        return null;
      },
      { action: `${topicPath}/comments`, bodies },
    );
    assert.equal(failed, null, 'every reply was accepted');
    await page.goto(at(topicPath), { waitUntil: 'load' });
  }

  /** A visit note of several lines: a comment taller than a quarter of the phone's screen. */
  function visitNote(n, lines = 5) {
    const text = [`第${n}報：訪問看護の記録`];
    for (let i = 1; i < lines; i++) {
      text.push(`${i}. 血圧 ${118 + ((n + i) % 20)}/7${(n + i) % 10}、脈拍 ${70 + i}、SpO2 9${5 + (i % 4)}%。酸素 1L で経過良好です。`);
    }
    return text.join('\n');
  }

  /** How many comments static/topic.js has reported as seen (and the server accepted). */
  const seenSent = (page) =>
    page.evaluate(() => Number(document.documentElement.getAttribute('data-seen-sent') || '0'));

  async function waitSeenSent(page, atLeast) {
    await page.waitForFunction(
      (n) => Number(document.documentElement.getAttribute('data-seen-sent') || '0') >= n,
      atLeast,
      { timeout: SEEN_TIMEOUT_MS },
    );
  }

  /** The comments on the page still waiting to be reported, by number. */
  const unseenSeqs = (page) =>
    page.evaluate(() => [...document.querySelectorAll('[data-unseen]')].map((el) => Number(el.getAttribute('data-unseen'))));

  /**
   * Scrolls up from the bottom, bringing the last comment not yet reported to the bottom of the
   * screen (with what fits above it) and waiting until the script has counted it; then waits until all are sent.
   */
  async function readUpwards(page, total) {
    for (;;) {
      const left = await unseenSeqs(page);
      if (left.length === 0) break;
      const seq = left[left.length - 1];
      await page.locator(`#c-${seq}`).evaluate((el) => el.scrollIntoView({ block: 'end' }));
      await page.locator(`#c-${seq}:not([data-unseen])`).waitFor({ state: 'attached', timeout: SEEN_TIMEOUT_MS });
    }
    await waitSeenSent(page, total);
  }

  /**
   * The topic as its author sees it: for each comment, whether `name` is among its readers,
   * and whether 「未読：…」 still names them (own comments list all their readers).
   */
  async function footprints(page, topicPath, name) {
    // Every comment, the earlier ones too (a topic opens with its newest 20).
    await page.goto(at(`${topicPath}?start=1`), { waitUntil: 'load' });
    const rows = await page.evaluate(
      (name) =>
        [...document.querySelectorAll('li.comment')].map((li) => ({
          seq: Number(li.id.replace('c-', '')),
          read: [...li.querySelectorAll('.readers__list .readers__name')].some((n) => n.textContent.trim() === name),
          label: li.querySelector('.readers__label')?.textContent.trim() ?? '',
          notRead: li.querySelector('.not-read')?.textContent.trim() ?? '',
        })),
      name,
    );
    for (const r of rows) {
      assert.match(r.notRead, /^(未読：|全員読みました)/, `c-${r.seq} is the author's own`);
      assert.equal(r.notRead.includes(name), !r.read, `c-${r.seq}: 「${r.notRead}」 agrees with its readers`);
    }
    return rows;
  }

  /** 「未読 N」 of a topic on its group's page, as the viewer of `page` sees it (0: none). */
  async function unreadOnGroupPage(page, groupPath, topicPath) {
    const text = await page.evaluate(
      async ({ groupPath, topicPath }) => {
        const html = await (await fetch(groupPath, { credentials: 'same-origin' })).text();
        const doc = new DOMParser().parseFromString(html, 'text/html');
        const link = [...doc.querySelectorAll('a.topic-link')].find((a) => new URL(a.href, location.href).pathname === topicPath);
        if (!link) return null;
        return link.querySelector('.unread-badge')?.textContent.trim() ?? '';
      },
      { groupPath, topicPath },
    );
    assert.notEqual(text, null, `the topic is listed on ${groupPath}`);
    if (text === '') return 0;
    const m = /^未読 (\d+)$/.exec(text);
    assert.ok(m, `an unread badge: ${text}`);
    return Number(m[1]);
  }

  /**
   * Waits until the page has stopped scrolling (10 frames without moving). Jumps to a
   * #fragment and scrollIntoView are smooth here (scroll-behavior: smooth), over a second or
   * more for a long topic; `away` first waits for the page to leave the top.
   */
  async function scrollSettled(page, { away = false } = {}) {
    if (away) await page.waitForFunction(() => window.scrollY > 0, null, { timeout: SEEN_TIMEOUT_MS });
    await page.evaluate(
      () =>
        new Promise((resolve) => {
          let last = window.scrollY;
          let still = 0;
          const tick = () => {
            if (window.scrollY === last) {
              still += 1;
              if (still >= 10) return resolve();
            } else {
              last = window.scrollY;
              still = 0;
            }
            requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        }),
    );
  }

  /** Where an element is on the screen, and how far the page is scrolled. */
  const placeOf = (page, selector) =>
    page.evaluate((selector) => {
      const el = document.querySelector(selector);
      if (!el) return null;
      const r = el.getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, height: window.innerHeight, scrollY: window.scrollY };
    }, selector);

  test('jumping to the newest comment leaves the ones above unread until he scrolls up to them', async (t) => {
    const nurse = await phone(t);
    const doctor = await phone(t);
    const stamp = Date.now().toString(36);
    const title = `訪問看護の経過（e2e ${stamp}）`;
    const REPLIES = 25;
    const TOTAL = REPLIES + 1;

    // The nurse writes a long topic in a patient group the doctor is in: 26 notes of 5 lines.
    await signIn(nurse.page, NURSE);
    const groupPath = await openGroup(nurse.page, YAMADA);
    const topicPath = await postTopic(nurse.page, title, visitNote(0));
    await postReplies(nurse.page, topicPath, Array.from({ length: REPLIES }, (_, i) => visitNote(i + 1)));
    // Her own long topic, all read: it opens with the newest 20 and the way to the rest, which
    // shows them at the same place.
    assert.equal(await nurse.page.locator('li.comment').count(), 20);
    const earlier = nurse.page.locator('a.earlier__link');
    assert.equal(await earlier.innerText(), `以前のコメント（${TOTAL - 20} 件）を表示`);
    await navigate(nurse.page, () => earlier.click());
    assert.equal(await nurse.page.locator('li.comment').count(), TOTAL);
    const before = await footprints(nurse.page, topicPath, DOCTOR_NAME);
    assert.deepEqual(before.filter((r) => r.read).map((r) => r.seq), [], 'nobody has read it yet');

    // The doctor follows a link to the newest comment.
    await signIn(doctor.page, DOCTOR);
    assert.equal(await unreadOnGroupPage(doctor.page, groupPath, topicPath), TOTAL, 'all of it is unread');
    await doctor.page.goto(at(`${topicPath}#latest`), { waitUntil: 'load' });
    assert.deepEqual(
      await unseenSeqs(doctor.page),
      Array.from({ length: TOTAL }, (_, i) => i + 1),
      'every comment waits to be seen',
    );
    assert.equal(await doctor.page.locator('a.jump-link[href="#latest"]').innerText(), '最新のコメントへ ↓');
    await scrollSettled(doctor.page, { away: true });
    const latest = await placeOf(doctor.page, `#c-${TOTAL}`);
    assert.ok(latest.top < latest.height && latest.bottom > 0, 'the newest comment is on screen');
    assert.ok(latest.scrollY > 0, 'the page is scrolled down to it');

    // What is on screen is reported once; nothing more while he does not scroll (~2 s).
    await waitSeenSent(doctor.page, 1);
    await doctor.page.waitForTimeout(1500);
    const reported = await seenSent(doctor.page);
    const stillUnseen = await unseenSeqs(doctor.page);
    const seenFirst = Array.from({ length: TOTAL }, (_, i) => i + 1).filter((s) => !stillUnseen.includes(s));
    assert.equal(reported, seenFirst.length, 'everything counted was sent');
    assert.ok(seenFirst.includes(TOTAL), 'the newest comment was seen');
    assert.ok(seenFirst.length <= 6, `only what fits on the screen was seen: ${seenFirst}`);
    const onScreen = await doctor.page.evaluate((seqs) =>
      seqs.every((s) => {
        const r = document.getElementById(`c-${s}`).getBoundingClientRect();
        return r.bottom > 0 && r.top < window.innerHeight;
      }), seenFirst);
    assert.ok(onScreen, `the comments seen are the ones on the screen: ${seenFirst}`);
    await screenshot(doctor.page, 'reading-latest-doctor-ja.png');
    await expectNoSeriousAxeViolations(doctor.page, `${topicPath}#latest`);
    await expectNoSidewaysScrolling(doctor.page, `${topicPath}#latest`);

    // The nurse sees his footprint exactly on those; the first ones are still unread by him.
    const afterJump = await footprints(nurse.page, topicPath, DOCTOR_NAME);
    assert.deepEqual(afterJump.filter((r) => r.read).map((r) => r.seq), seenFirst, 'footprints on what he saw');
    for (const seq of [1, 2, 10]) {
      const r = afterJump.find((x) => x.seq === seq);
      assert.equal(r.read, false, `c-${seq}, far above, is not read by him`);
      assert.ok(r.notRead.includes(DOCTOR_NAME), `c-${seq}: 「${r.notRead}」 names him`);
    }
    assert.match(afterJump.find((r) => r.seq === TOTAL).label, /^既読 1 人$/);
    assert.equal(
      await unreadOnGroupPage(doctor.page, groupPath, topicPath),
      TOTAL - seenFirst.length,
      'his unread count went down by what he saw',
    );
    await expectNoSidewaysScrolling(nurse.page, topicPath);

    // He scrolls up to the first comment: each gets his footprint as it comes on screen.
    await readUpwards(doctor.page, TOTAL);
    assert.equal(await seenSent(doctor.page), TOTAL);
    await scrollSettled(doctor.page);
    assert.ok((await doctor.page.evaluate(() => window.scrollY)) < 400, 'he is back at the top');
    const afterAll = await footprints(nurse.page, topicPath, DOCTOR_NAME);
    assert.equal(afterAll.filter((r) => r.read).length, TOTAL, 'every comment has his footprint');
    assert.match(afterAll[0].label, /^既読 1 人$/);
    assert.equal(await unreadOnGroupPage(doctor.page, groupPath, topicPath), 0, 'nothing left unread');
    await screenshot(nurse.page, 'reading-footprints-nurse-ja.png');

    assert.deepEqual(nurse.consoleErrors, [], 'no errors on the nurse’s pages');
    assert.deepEqual(doctor.consoleErrors, [], 'no errors on the doctor’s pages');
  });

  test('a partly read topic opens at 「ここから未読」, from the topic list and from a plain link', async (t) => {
    const nurse = await phone(t);
    const doctor = await phone(t);
    const stamp = Date.now().toString(36);
    const title = `退院前カンファレンスの記録（e2e ${stamp}）`;

    // A topic of 8 notes, which the doctor reads to the end.
    await signIn(nurse.page, NURSE);
    const groupPath = await openGroup(nurse.page, YAMADA);
    const topicPath = await postTopic(nurse.page, title, visitNote(0));
    await postReplies(nurse.page, topicPath, Array.from({ length: 7 }, (_, i) => visitNote(i + 1)));
    await signIn(doctor.page, DOCTOR);
    await doctor.page.goto(at(topicPath), { waitUntil: 'load' });
    assert.equal(await doctor.page.locator('#unread').count(), 0, 'nothing read yet: no divider');
    await readUpwards(doctor.page, 8);
    assert.equal(await unreadOnGroupPage(doctor.page, groupPath, topicPath), 0);

    // Eight long notes more while he is away.
    await nurse.page.goto(at(topicPath), { waitUntil: 'load' });
    await postReplies(nurse.page, topicPath, Array.from({ length: 8 }, (_, i) => visitNote(i + 8, 9)));

    // From the group's topic list: the link leads to 「ここから未読」.
    await doctor.page.goto(at(groupPath), { waitUntil: 'load' });
    const link = doctor.page.locator('a.topic-link', { hasText: title });
    assert.match(await link.locator('.unread-badge').innerText(), /^未読 8$/);
    assert.match(await link.getAttribute('href'), new RegExp(`^${topicPath}#unread$`));
    await navigate(doctor.page, () => link.click());
    assert.equal(urlPath(doctor.page), topicPath);
    await scrollSettled(doctor.page, { away: true });
    const divider = doctor.page.locator('#unread');
    assert.equal(await divider.innerText(), 'ここから未読');
    assert.equal(await divider.evaluate((el) => el.nextElementSibling.id), 'c-9', 'before the first new note');
    let place = await placeOf(doctor.page, '#unread');
    assert.ok(place.top > -1 && place.bottom <= place.height, `the divider is on screen: ${JSON.stringify(place)}`);
    assert.ok(place.scrollY > 0, 'the page is not at the top');
    const first = await placeOf(doctor.page, '#c-1');
    assert.ok(first.bottom <= 0, 'the notes he read are above the screen');
    await screenshot(doctor.page, 'reading-unread-divider-ja.png');
    await expectNoSeriousAxeViolations(doctor.page, `${topicPath}#unread`);
    await expectNoSidewaysScrolling(doctor.page, `${topicPath}#unread`);

    // What he saw there is read; the notes below it are not.
    await waitSeenSent(doctor.page, 1);
    await doctor.page.waitForTimeout(1500);
    const seenThere = await seenSent(doctor.page);
    assert.ok(seenThere >= 1 && seenThere < 8, `some of the new notes were on screen: ${seenThere}`);
    assert.equal(await unreadOnGroupPage(doctor.page, groupPath, topicPath), 8 - seenThere);
    const next = 9 + seenThere;

    // Opened again from a plain link (no #fragment): the script scrolls to where he stopped.
    await doctor.page.goto(at(topicPath), { waitUntil: 'load' });
    assert.equal(await divider.evaluate((el) => el.nextElementSibling.id), `c-${next}`, 'the divider moved on');
    await scrollSettled(doctor.page, { away: true });
    place = await placeOf(doctor.page, '#unread');
    assert.ok(place.top > -1 && place.bottom <= place.height, `the divider is on screen: ${JSON.stringify(place)}`);
    assert.ok(place.top < place.height / 2, `near the top of the screen: ${JSON.stringify(place)}`);
    assert.ok(place.scrollY > 0, 'the page is not at the top');
    assert.equal(new URL(doctor.page.url()).hash, '', 'the address is left as it was');

    assert.deepEqual(nurse.consoleErrors, [], 'no errors on the nurse’s pages');
    assert.deepEqual(doctor.consoleErrors, [], 'no errors on the doctor’s pages');
  });

  test('more than five readers: five shown, the rest fetched when opened, and a page for all', async (t) => {
    const owner = await phone(t);
    const clerk = await phone(t);
    const nurse = await phone(t);

    // The nurse finds the topic's first comment read by the five other members.
    await signIn(nurse.page, NURSE);
    await openGroup(nurse.page, ITO);
    await navigate(nurse.page, () => nurse.page.locator('a.topic-link', { hasText: ITO_TOPIC }).click());
    const topicPath = urlPath(nurse.page);
    const c1 = nurse.page.locator('#c-1');
    assert.match(await c1.locator('.readers__label').innerText(), /^既読 5 人$/, 'the demo: five readers');
    assert.equal(await c1.locator('.reader-badge:not(.reader-badge--more)').count(), 5);
    assert.equal(await c1.locator('.reader-badge--more').count(), 0);
    assert.equal(await c1.locator('details.readers[data-readers-src]').count(), 0, 'nothing more to fetch');
    assert.equal(await c1.locator('.readers__all').count(), 0);

    // The owner invites the association's clerk; she joins and reads the topic.
    await signIn(owner.page, ITO_OWNER);
    await openGroup(owner.page, ITO);
    await owner.page.getByLabel(/^招待する人を探す/).fill('さくらい');
    await navigate(owner.page, () => owner.page.getByRole('button', { name: '探す', exact: true }).click());
    await navigate(owner.page, () =>
      owner.page.getByRole('button', { name: `${CLERK_NAME} さんを招待する`, exact: true }).click(),
    );
    assert.match(await owner.page.locator('.sns-flash').innerText(), /招待しました/);
    await signIn(clerk.page, CLERK);
    const invitation = clerk.page.locator('.invitation', { hasText: ITO });
    await navigate(clerk.page, () => invitation.getByRole('button', { name: '参加する' }).click());
    await clerk.page.goto(at(topicPath), { waitUntil: 'load' });
    assert.ok(
      (await unseenSeqs(clerk.page)).includes(1),
      'the first comment waits to be seen by her',
    );
    await clerk.page.locator('#c-1:not([data-unseen])').waitFor({ state: 'attached', timeout: SEEN_TIMEOUT_MS });
    await waitSeenSent(clerk.page, 1);

    // Six readers now: five badges and 「ほか 1 人」; the list holds five until it is opened.
    await nurse.page.goto(at(topicPath), { waitUntil: 'load' });
    assert.match(await c1.locator('.readers__label').innerText(), /^既読 6 人$/);
    assert.equal(await c1.locator('.reader-badge:not(.reader-badge--more)').count(), 5);
    assert.equal(await c1.locator('.reader-badge--more').innerText(), 'ほか 1 人');
    const details = c1.locator('details.readers');
    assert.match(await details.getAttribute('data-readers-src'), /\/c\/[0-9a-f-]{36}\/readers\?part=list$/);
    assert.equal(await details.locator('.readers__list li').count(), 5);
    const all = details.locator('a.readers__all-link');
    assert.equal((await all.textContent()).trim(), '全員を見る（6 人）', 'in the closed list, for a browser without script');
    const allHref = await all.getAttribute('href');
    assert.match(allHref, new RegExp(`^${topicPath}/c/[0-9a-f-]{36}/readers$`));
    await expectNoSidewaysScrolling(nurse.page, topicPath);

    // Opening the readers swaps in all six.
    await details.locator('summary').click();
    await details.locator('.readers__list--all').waitFor({ timeout: SEEN_TIMEOUT_MS });
    const names = await details.locator('.readers__list .readers__name').allInnerTexts();
    assert.equal(names.length, 6, `all six: ${names}`);
    assert.ok(names.includes(CLERK_NAME), 'the clerk among them');
    assert.ok(names.includes(NURSE_NAME), 'and the nurse herself');
    assert.equal(await details.locator('.readers__all').isHidden(), true, 'the link is no longer needed');
    assert.equal(await details.getAttribute('data-readers-src'), null, 'fetched once');
    await screenshot(nurse.page, 'reading-readers-open-ja.png');
    await expectNoSeriousAxeViolations(nurse.page, topicPath);
    await expectNoSidewaysScrolling(nurse.page, topicPath);

    // The page for all of them, as a browser without script reaches it.
    await nurse.page.goto(at(allHref), { waitUntil: 'load' });
    assert.equal(await nurse.page.locator('h1').innerText(), '既読の人（6 人）');
    const listed = await nurse.page.locator('.readers__list .readers__name').allInnerTexts();
    assert.deepEqual([...listed].sort(), [...names].sort(), 'the same six');
    assert.equal(await nurse.page.locator('.back-link a').getAttribute('href'), `${topicPath}#c-1`);
    await screenshot(nurse.page, 'reading-readers-page-ja.png');
    await expectNoSeriousAxeViolations(nurse.page, allHref);
    await expectNoSidewaysScrolling(nurse.page, allHref);

    for (const p of [owner, clerk, nurse]) assert.deepEqual(p.consoleErrors, [], 'no errors on the pages');
  });
});
