// The calendar and the on-call rotation of the collaborating doctors, on phones, in Japanese.
//
// The demo publishes the doctors' rotation for this month and the next (crates/demo/src/
// calendar.rs), and a published month cannot be drafted again; so:
//
// - The group's owner (川村) opens 当番表 from the group page: this month is published and
//   linked to the rota topic; he saves the rotation's settings (the five doctors) and drafts
//   the month after next.
// - 大野, who has duty on one of that draft's days, enters an absence for it in two taps on
//   his own calendar (「不在を登録」, the day, 「登録する」); it is on his calendar.
// - The owner sees the draft flagged at that slot (不在中の当番), drafts again (after ticking
//   「いまの下書きを置き換える」): the duty has moved to someone else and nothing is flagged;
//   he publishes the month linked to a topic of the group.
// - On this month's published rotation, 大野 asks 高橋 to take one of his duties; 高橋 sees the
//   request and accepts it; the duty is now 高橋's.
// - 「本日の当番医」 on the group page names today's doctors of the rotation.
//
// Every page fits the phone's width and passes the axe checks; screenshots are kept.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { expectNoSeriousAxeViolations } from '../axe.mjs';
import {
  expectNoSidewaysScrolling,
  launchBrowser,
  newPhonePage,
  screenshot,
  startServer,
  urlPath,
} from '../harness.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/demo/src/lib.rs
// crates/demo/data/people.toml and groups.toml: the doctors' group, owned by 川村.
const OWNER = 'kawamura@minatogawa.example';
const OONO = 'oono@minatogawa.example';
const TAKAHASHI = 'takahashi@sakuradai.example';
const OONO_NAME = '大野 浩 先生';
const TAKAHASHI_NAME = '高橋 誠 先生';
const DOCTORS = 'みなと川 連携医グループ';

/** Today in Japan, `YYYY-MM-DD`. */
function todayInJapan() {
  return new Date().toLocaleDateString('sv-SE', { timeZone: 'Asia/Tokyo' });
}

/** `YYYY-MM` of the month `ahead` months after today's, in Japan. */
function monthAhead(ahead) {
  const [y, m] = todayInJapan().split('-').map(Number);
  const index = y * 12 + (m - 1) + ahead;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, '0')}`;
}

describe('the doctors’ calendar and on-call rotation on phones', () => {
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

  async function navigate(page, action) {
    const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), action()]);
    return response;
  }

  /** A fresh phone (own cookies), signed in. */
  async function signedIn(t, email) {
    const opened = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => opened.context.close());
    const { page } = opened;
    // Forms with data-confirm ask first (static/app.js): say yes.
    page.on('dialog', (d) => d.accept());
    await page.goto(at('/signin'), { waitUntil: 'load' });
    await page.getByLabel('メールアドレス').fill(email);
    await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
    await navigate(page, () =>
      page.locator('form[action="/signin"]').getByRole('button', { name: 'ログイン', exact: true }).click(),
    );
    assert.equal(urlPath(page), '/home', `${email} is signed in`);
    return opened;
  }

  async function look(page, name, where) {
    await screenshot(page, name);
    await expectNoSidewaysScrolling(page, where);
    await expectNoSeriousAxeViolations(page, where);
  }

  /** The doctors' group page, opened from the groups page; returns its path. */
  async function openDoctorsGroup(page) {
    await page.goto(at('/groups'), { waitUntil: 'load' });
    await navigate(page, () => page.locator('a.group-link', { hasText: DOCTORS }).first().click());
    assert.match(urlPath(page), /^\/a\/minatogawa\/g\/[0-9a-f-]{36}$/);
    return urlPath(page);
  }

  /** The names on a slot of the rotation page (day `YYYY-MM-DD`, kind `day`/`night`). */
  const holder = (page, day, kind) =>
    page.locator(`#duty-${day} .duty-slot--${kind} .duty-slot__who`).innerText();

  test('a draft moves a duty off an absence, a swap is accepted, and today’s doctor is shown', async (t) => {
    const { page: owner, consoleErrors: ownerErrors } = await signedIn(t, OWNER);

    // The owner opens 当番表 from the group page: this month is published, with its topic.
    const groupPath = await openDoctorsGroup(owner);
    await navigate(owner, () => owner.getByRole('link', { name: '当番表', exact: true }).click());
    const duty = `${groupPath}/duty`;
    assert.equal(urlPath(owner), duty);
    await owner.locator('.duty-status', { hasText: '公開済み' }).waitFor();
    await owner.locator('.duty-topic a').waitFor();
    await look(owner, 'calendar-01-duty-this-month.png', 'this month’s rotation (owner)');

    // The settings: the five doctors take part; saved as they are.
    await owner.locator('#duty-settings > summary').click();
    const ticked = owner.locator('#duty-settings input[name="on"]:checked');
    assert.equal(await ticked.count(), 5, 'the five doctors take part');
    await navigate(owner, () => owner.getByRole('button', { name: '設定を保存' }).click());
    await owner.getByText('当番の設定を保存しました。').waitFor();

    // The month after next: nothing yet; he drafts it.
    const later = monthAhead(2);
    await owner.goto(at(`${duty}?month=${later}`), { waitUntil: 'load' });
    await owner.getByText('この月の当番表はまだありません。').waitFor();
    await navigate(owner, () => owner.getByRole('button', { name: '下書きを作成' }).click());
    await owner.getByText('下書きを作りました。').waitFor();
    await look(owner, 'calendar-02-duty-draft.png', 'a drafted month (owner)');

    // One of 大野's duties in the draft.
    const oonoSlot = owner
      .locator('.duty-slot', { has: owner.locator('.duty-slot__who', { hasText: OONO_NAME }) })
      .first();
    const slotDay = (await oonoSlot.locator('xpath=ancestor::li[contains(@class, "duty-day")]').getAttribute('id')).replace(/^duty-/, '');
    const slotKind = (await oonoSlot.getAttribute('class')).includes('duty-slot--night') ? 'night' : 'day';
    assert.match(slotDay, /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(await holder(owner, slotDay, slotKind), OONO_NAME);

    // 大野 enters an absence for that day on his own calendar: open the form, give the day, send.
    const { page: oono, consoleErrors: oonoErrors } = await signedIn(t, OONO);
    await navigate(oono, () => oono.getByRole('link', { name: 'カレンダー（予定・不在・当番）', exact: true }).click());
    assert.equal(urlPath(oono), '/calendar');
    await oono.getByText('今日', { exact: true }).first().waitFor();
    await look(oono, 'calendar-03-personal.png', 'the personal calendar');
    await oono.locator('#absence > summary').click();
    await oono.getByLabel('最初の日').fill(slotDay);
    await oono.getByLabel('最後の日').fill(slotDay);
    assert.ok(await oono.getByLabel('終日').isChecked(), 'all day unless changed');
    await navigate(oono, () => oono.getByRole('button', { name: '登録する' }).click());
    await oono.getByText('不在を登録しました。').waitFor();
    assert.equal(new URL(oono.url()).searchParams.get('month'), later);
    // Another doctor's absence may fall on the same day (the demo's dates follow today's).
    const entry = oono.locator(`#day-${slotDay} .cal-entry--absence`, { hasText: '大野 浩' });
    assert.match(await entry.innerText(), /大野 浩 不在/);
    await look(oono, 'calendar-04-absence-entered.png', 'the calendar with his absence');

    // The owner sees the draft flagged at that slot, in words.
    await owner.reload({ waitUntil: 'load' });
    const problems = owner.locator('#problems');
    await problems.waitFor();
    assert.match(await problems.innerText(), /不在中の当番：大野 浩 先生はこの日不在です。/);
    const flagged = owner.locator(`#duty-${slotDay} .duty-slot--${slotKind}`);
    assert.match(await flagged.innerText(), /要確認/);
    assert.match(await flagged.innerText(), /不在/);
    await look(owner, 'calendar-05-duty-flagged.png', 'a draft with a duty during an absence');

    // Drafted again (the draft is replaced only when he says so): the duty has moved.
    await owner.getByLabel('いまの下書きを置き換える').check();
    await navigate(owner, () => owner.getByRole('button', { name: '下書きを作り直す' }).click());
    await owner.getByText('下書きを作りました。').waitFor();
    const now = await holder(owner, slotDay, slotKind);
    assert.notEqual(now, OONO_NAME, 'his duty went to someone else');
    assert.notEqual(now, '未割当', 'someone took it');
    assert.equal(
      await owner.locator('#problems', { hasText: '大野 浩 先生はこの日不在です' }).count(),
      0,
      'nothing flagged for his absence',
    );
    // Published, linked to a topic of the group.
    await owner.locator('#publish-topic').selectOption({ index: 1 });
    await navigate(owner, () => owner.getByRole('button', { name: '公開する' }).click());
    await owner.getByText('当番表を公開しました。').waitFor();
    await owner.locator('.duty-topic a').waitFor();

    // This month: 大野 asks 高橋 to take one of his duties.
    const thisMonth = monthAhead(0);
    await oono.goto(at(`${duty}?month=${thisMonth}`), { waitUntil: 'load' });
    let mine = oono.locator('.duty-slot--mine').first();
    let month = thisMonth;
    if ((await oono.locator('.duty-slot--mine').count()) === 0) {
      month = monthAhead(1);
      await oono.goto(at(`${duty}?month=${month}`), { waitUntil: 'load' });
      mine = oono.locator('.duty-slot--mine').first();
    }
    await look(oono, 'calendar-06-duty-member.png', 'the published rotation (member)');
    const swapDay = (await mine.locator('xpath=ancestor::li[contains(@class, "duty-day")]').getAttribute('id')).replace(/^duty-/, '');
    const swapKind = (await mine.getAttribute('class')).includes('duty-slot--night') ? 'night' : 'day';
    await mine.locator('details.duty-request > summary').click();
    await mine.getByLabel('依頼する相手').selectOption({ label: TAKAHASHI_NAME });
    await mine.getByLabel('メモ（任意）').fill('往診が重なったため');
    await navigate(oono, () => mine.getByRole('button', { name: /の交代を依頼する$/ }).click());
    await oono.getByText('交代を依頼しました。').waitFor();
    await oono.getByRole('button', { name: '取り下げる' }).waitFor();

    // 高橋 sees it and accepts: the duty is his.
    const { page: takahashi, consoleErrors: takahashiErrors } = await signedIn(t, TAKAHASHI);
    await takahashi.goto(at(`${duty}?month=${month}`), { waitUntil: 'load' });
    const request = takahashi.locator('.duty-swap--incoming', { hasText: `${OONO_NAME}から` });
    await request.waitFor();
    assert.match(await request.innerText(), /往診が重なったため/);
    await look(takahashi, 'calendar-07-swap-requested.png', 'a swap request (the colleague)');
    await navigate(takahashi, () => request.getByRole('button', { name: '引き受ける' }).click());
    await takahashi.getByText('交代を引き受けました。').waitFor();
    assert.equal(await holder(takahashi, swapDay, swapKind), TAKAHASHI_NAME);

    // 本日の当番医 on the group page: today's doctors of the published rotation.
    await takahashi.goto(at(`${duty}?month=${thisMonth}`), { waitUntil: 'load' });
    const today = todayInJapan();
    const todays = await takahashi.locator(`#duty-${today} .duty-slot__who`).allInnerTexts();
    assert.ok(todays.length > 0, 'there is duty today');
    await takahashi.goto(at(groupPath), { waitUntil: 'load' });
    const onCall = takahashi.locator('section.on-call');
    await onCall.waitFor();
    const said = await onCall.innerText();
    assert.match(said, /本日の当番医/);
    for (const name of todays.filter((n) => n !== '未割当')) {
      assert.ok(said.includes(name), `${name} is on call today: ${said}`);
    }
    assert.match(said, /連絡先/);
    await look(takahashi, 'calendar-08-group-on-call.png', 'the group page with today’s doctor');

    // The group's calendar: 大野's absence beside his name.
    await navigate(takahashi, () => takahashi.getByRole('link', { name: 'カレンダー（予定・不在）', exact: true }).click());
    assert.equal(urlPath(takahashi), `${groupPath}/calendar`);
    await takahashi.goto(at(`${groupPath}/calendar?month=${later}`), { waitUntil: 'load' });
    assert.match(
      await takahashi.locator(`#day-${slotDay} .cal-entry--absence`, { hasText: '大野 浩' }).innerText(),
      /大野 浩 先生 不在/,
    );
    await look(takahashi, 'calendar-09-group-calendar.png', 'the group calendar');

    assert.deepEqual([...ownerErrors, ...oonoErrors, ...takahashiErrors], [], 'no script errors');
  });
});
