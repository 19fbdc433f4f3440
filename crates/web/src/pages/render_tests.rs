//! The sign-in and account pages rendered without a database: what they show, what they
//! escape, and that they need neither inline script nor inline style (the CSP forbids both).

use super::enrol::{EnrolPage, RecoveryCodesPage};
use super::home::{HomePage, MembershipCard, UnreadSection};
use super::my_sessions::{SessionCard, SessionsPage};
use super::signin::SignInPage;
use super::signin_code::CodePage;
use crate::assets;
use crate::i18n::{Lang, Translator};
use crate::layout::Nav;
use askama::Template;

const EVIL: &str = "<script>alert(1)</script>\"'&";

fn empty_unread() -> UnreadSection {
    UnreadSection {
        total: 0,
        associations: vec![],
        groups: vec![],
        messages: vec![],
        invitations: vec![],
        csrf: "TOKEN".into(),
        important_only: false,
        important_total: 0,
    }
}

/// From `marker` to the end of its `<section>`.
pub(super) fn section<'a>(page: &'a str, marker: &str) -> &'a str {
    let start = page.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let end = page[start..]
        .find("</section>")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

pub(super) fn assert_csp_clean(page: &str) {
    assert!(!page.contains("<style"), "inline <style>");
    assert!(!page.contains(" style="), "inline style attribute");
    for (i, _) in page.match_indices(" on") {
        let name: String = page[i + 3..]
            .chars()
            .take_while(char::is_ascii_lowercase)
            .collect();
        let after = &page[i + 3 + name.len()..];
        assert!(
            name.is_empty() || !after.starts_with('='),
            "event handler attribute on{name}"
        );
    }
    for (i, _) in page.match_indices("<script") {
        let tag = &page[i..i + page[i..].find('>').expect("tag closes")];
        assert!(tag.contains(" src=\"/static/"), "inline script: {tag}");
    }
}

fn sign_in_page(lang: Lang, email: &str, error: Option<String>) -> String {
    SignInPage {
        kept: None,
        t: Translator::new(lang),
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: "/signin",
        csrf: "TOKEN",
        email,
        next: "/me/sessions",
        error,
        notice: None,
        passkeys: true,
    }
    .render()
    .expect("renders")
}

#[test]
fn the_sign_in_form_helps_phones_and_password_managers() {
    let page = sign_in_page(Lang::Ja, "", None);
    assert_csp_clean(&page);
    for attr in [
        "autocomplete=\"username\"",
        "autocomplete=\"current-password\"",
        "inputmode=\"email\"",
        "name=\"csrf\" value=\"TOKEN\"",
        "name=\"next\" value=\"/me/sessions\"",
        "data-password-toggle",
    ] {
        assert!(page.contains(attr), "{attr}");
    }
    assert!(page.contains(">ログイン</button>"));
    // The passkey button waits for the script (hidden without it) and forgetting is a link.
    assert!(page.contains("data-passkey-signin hidden"));
    assert!(page.contains(&format!("src=\"{}\"", assets::urls().passkey_js)));
    assert!(page.contains("href=\"/reset\""));
    // The password field never carries a value.
    let field = &page[page.find("id=\"password\"").expect("password field")..];
    assert!(!field[..field.find('>').expect("tag closes")].contains("value="));
}

#[test]
fn the_typed_address_and_messages_are_escaped() {
    let page = sign_in_page(Lang::Ja, EVIL, Some(EVIL.to_owned()));
    assert!(!page.contains("<script>alert"));
    assert!(page.contains("role=\"alert\""));
}

#[test]
fn the_header_shows_the_escaped_name_and_a_sign_out_form() {
    let page = HomePage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in(EVIL, "TOKEN"),
        current_path: "/home",
        name: EVIL,
        flash: None,
        unread: empty_unread(),
        memberships: vec![
            MembershipCard {
                name: "みなと川医師会".into(),
                slug: "minatogawa".into(),
                admin: true,
                facility: Some("みなと川医師会 事務局".into()),
            },
            MembershipCard {
                name: "さくら台医師会".into(),
                slug: "sakuradai".into(),
                admin: false,
                facility: None,
            },
        ],
        second_factor: false,
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert!(!page.contains("<script>alert"));
    assert!(page.contains("action=\"/signout\""));
    assert!(page.contains("name=\"csrf\" value=\"TOKEN\""));
    // The compact header: ホーム and グループ, and a menu (a <details>, no JavaScript needed)
    // with the name, the language switch and the sign-out form.
    assert!(page.contains("<nav class=\"app-nav\" aria-label=\"主なページ\">"));
    let menu = &page[page
        .find("<details class=\"site-menu\">")
        .expect("the menu")..];
    let menu = &menu[..menu.find("</details>").expect("the menu ends")];
    assert!(menu.contains("<span class=\"site-menu__label\">メニュー</span>"));
    assert!(menu.contains("href=\"/home#account-title\""));
    assert!(
        menu.contains("&#60;script&#62;"),
        "the escaped name is in the menu"
    );
    assert!(menu.contains("<nav class=\"lang-switch lang-switch--menu\""));
    assert!(menu.contains("href=\"/lang/en?next=/home\""));
    assert!(menu.contains("<form class=\"account-bar__form\" method=\"post\" action=\"/signout\">"));
    assert_eq!(page.matches("action=\"/signout\"").count(), 1);
    assert_eq!(
        page.matches(">管理者<").count(),
        1,
        "only the admin membership"
    );
    assert!(page.contains("みなと川医師会 事務局"));
    // The console, for the association the person administers only.
    assert!(page.contains("href=\"/a/minatogawa/console\""));
    assert!(!page.contains("href=\"/a/sakuradai/console\""));
    assert!(page.contains("href=\"/me/sessions\""));
    assert!(!page.contains("href=\"/signin\""));
}

#[test]
fn visitors_get_a_sign_in_button_and_error_pages_neither() {
    let render = |nav| {
        HomePage {
            t: Translator::new(Lang::En),
            assets: assets::urls(),
            nav,
            current_path: "/",
            name: "",
            flash: None,
            unread: empty_unread(),
            memberships: vec![],
            second_factor: false,
        }
        .render()
        .expect("renders")
    };
    let page = render(Nav::signed_out());
    assert!(page.contains("href=\"/signin\""));
    assert!(!page.contains("action=\"/signout\""));
    // Signed out, the language switch and 「Sign in」 are in the header itself, not in a menu.
    assert!(!page.contains("site-menu"));
    assert!(page.contains("<nav class=\"lang-switch\" aria-label=\"Language\">"));
    assert!(page.contains("<div class=\"account-bar\">\n      <a class=\"button button--small\" href=\"/signin\">Sign in</a>"));
    let page = render(Nav::hidden());
    assert!(!page.contains("href=\"/signin\""));
    assert!(!page.contains("action=\"/signout\""));
}

#[test]
fn the_code_page_asks_for_digits_and_offers_recovery_codes() {
    let page = CodePage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: "/signin/code",
        csrf: "TOKEN",
        next: "",
        error: None,
        recovery_open: false,
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert!(page.contains("inputmode=\"numeric\" autocomplete=\"one-time-code\""));
    assert!(page.contains("コードが使えない場合"));
    assert!(page.contains("name=\"kind\" value=\"recovery\""));
    assert!(!page.contains("name=\"next\""));
    assert_eq!(page.matches("name=\"csrf\" value=\"TOKEN\"").count(), 3);
}

#[test]
fn the_set_up_page_inlines_the_qr_code_and_groups_the_key() {
    let secret = musubi_auth::totp::TotpSecret::generate().expect("random");
    let uri = secret.provisioning_uri("aoki@minatogawa.example");
    let svg = musubi_auth::totp::qr_code_svg(&uri).expect("qr");
    let key = secret.to_base32();
    let groups: Vec<String> = key
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let page = EnrolPage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: "/signin/enrol",
        csrf: "TOKEN",
        action: "/signin/enrol",
        for_sign_in: true,
        key_groups: groups,
        qr_svg: &svg,
        uri: &uri,
        email: "aoki@minatogawa.example",
        next: "",
        error: None,
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert!(
        page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "inline SVG"
    );
    assert!(page.contains("Google Authenticator"));
    assert!(page.contains("Microsoft Authenticator"));
    assert_eq!(page.matches("class=\"secret-key__group\"").count(), 8);
    assert!(page.contains(&key[..4]));
    assert!(page.contains("href=\"otpauth://totp/Musubi:"));
    assert!(page.contains("action=\"/signin/enrol\""));
}

#[test]
fn the_recovery_codes_are_listed_once_with_a_way_on() {
    let codes: Vec<String> = (0..10).map(|i| format!("abcd-efgh-{i:02}")).collect();
    let page = RecoveryCodesPage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in("青木 さくら", "TOKEN"),
        current_path: "/home",
        codes: &codes,
        continue_to: "/home",
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert_eq!(page.matches("<li><code>").count(), 10);
    assert!(page.contains("href=\"/home\""));
    assert!(page.contains("data-print hidden"));
}

#[test]
fn the_session_list_marks_this_device_and_offers_to_end_each() {
    let card = |id: &str, current: bool| SessionCard {
        id: id.into(),
        device: "iPhone / Safari".into(),
        ip: "203.0.113.7".into(),
        last_used: "2026年3月4日 14:05".into(),
        signed_in: "2026年3月4日 09:00".into(),
        current,
        pending: false,
    };
    let page = SessionsPage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in("青木 さくら", "TOKEN"),
        current_path: "/me/sessions",
        csrf: "TOKEN",
        sessions: vec![card("a", true), card("b", false)],
        notice: None,
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert_eq!(page.matches(">この端末</span>").count(), 1);
    assert!(page.contains("action=\"/me/sessions/a/revoke\""));
    assert!(page.contains("action=\"/me/sessions/b/revoke\""));
    assert!(page.contains("action=\"/me/sessions/revoke-all\""));
    assert!(page.contains("すべての端末からログアウト"));
    assert!(page.contains("203.0.113.7"));
}

// --- The SNS pages -------------------------------------------------------------------------

mod sns {
    use super::{assert_csp_clean, EVIL};
    use crate::assets;
    use crate::i18n::{Lang, Translator};
    use crate::layout::{Nav, Section};
    use crate::pages::home::{
        HomePage, InvitationCard, UnreadFragment, UnreadGroup, UnreadItem, UnreadMessage,
        UnreadSection, UnreadTopic,
    };
    use crate::pages::sns::group::{
        CandidateCard, Finder, GroupHead, GroupPage, MemberCard, TeamCard, TopicCard, TopicList,
    };
    use crate::pages::sns::groups::{GroupErrors, GroupForm};
    use crate::pages::sns::new_topic::{NewTopicPage, TopicErrors};
    use crate::pages::sns::patients::PatientHeader;
    use crate::pages::sns::topic::{
        build_list, CommentList, CommentsFragment, ListFacts, TopicHead, TopicPage, TopicSettings,
    };
    use crate::pages::sns::ScopePicker;
    use askama::Template;
    use chrono::{DateTime, TimeZone, Utc};
    use musubi_db::groups::{CommentRow, ReaderRow, VersionRow};
    use musubi_domain::groups::ReceiptMode;
    use musubi_domain::topics::CommentView;
    use musubi_domain::types::Scope;
    use uuid::Uuid;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        // 2026-03-04 in Japan: the hour is UTC (Japan is 9 hours ahead).
        Utc.with_ymd_and_hms(2026, 3, 4, hour, minute, 0)
            .single()
            .expect("valid")
    }

    fn comment(seq: i32, author: &str, body: &str) -> CommentView {
        CommentView {
            files: Vec::new(),
            row: CommentRow {
                id: Uuid::now_v7().into(),
                topic_id: Uuid::nil().into(),
                seq,
                author_id: Uuid::now_v7().into(),
                author_name: author.into(),
                author_profession: musubi_domain::types::Profession::Nurse,
                body: body.into(),
                important: false,
                created_at: at(1, seq as u32),
                edited_at: None,
                version: 1,
                deleted_at: None,
            },
            readers: vec![],
            reader_count: 0,
            not_read_by: vec![],
            history: vec![],
            mine: false,
            acknowledged_by_me: false,
        }
    }

    fn reader(c: &CommentView, name: &str, hour: u32, minute: u32) -> ReaderRow {
        ReaderRow {
            comment_id: c.row.id,
            user_id: Uuid::now_v7().into(),
            name: name.into(),
            at: at(hour, minute),
        }
    }

    fn facts(mode: ReceiptMode, owner: bool) -> ListFacts<'static> {
        ListFacts {
            lang: Lang::Ja,
            slug: "minatogawa",
            topic_id: Uuid::nil().into(),
            mode,
            owner,
            first_unread_seq: Some(2),
            unseen: &[2],
            csrf: "TOKEN",
            unread_total: 3,
            now: at(5, 0),
        }
    }

    fn list(mode: ReceiptMode, owner: bool, comments: &[CommentView]) -> CommentList {
        build_list(&facts(mode, owner), comments, None)
    }

    fn fragment(list: CommentList) -> String {
        CommentsFragment {
            t: Translator::new(Lang::Ja),
            list,
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn comment_text_is_escaped_with_its_line_breaks_and_only_web_links_clickable() {
        let body = format!(
            "{EVIL}\n一行目\n二行目 https://example.org/a?b=1&c=2 javascript:alert(1) \
             <a href=\"javascript:alert(2)\">x</a> data:text/html,x ftp://example.org"
        );
        let page = fragment(list(
            ReceiptMode::Footprints,
            false,
            &[comment(1, EVIL, &body)],
        ));
        assert!(!page.contains("<script>alert"), "no raw script");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("一行目\n二行目"), "line breaks kept");
        assert!(page.contains(
            "<a href=\"https://example.org/a?b=1&amp;c=2\" rel=\"noopener noreferrer nofollow\" \
             target=\"_blank\">"
        ));
        assert_eq!(
            page.matches("<a href=").count(),
            1,
            "only the https address"
        );
        assert!(!page.contains("href=\"javascript"));
        assert!(!page.contains("href=\"data:"));
        assert!(!page.contains("href=\"ftp:"));
        assert!(page.contains("&lt;a href=&quot;javascript:alert(2)&quot;&gt;x&lt;/a&gt;"));
        assert!(page.contains("class=\"live-root\" data-unread-total=\"3\""));
        assert!(
            page.contains("id=\"c-1\""),
            "the anchor the home page links to"
        );
        assert_csp_clean(&page);
    }

    #[test]
    fn footprints_show_initials_and_times_and_the_author_sees_who_has_not_read() {
        let mut mine = comment(1, "青木 さくら", "訪問しました");
        mine.mine = true;
        mine.readers = vec![reader(&mine, "川村 健一", 2, 5)];
        mine.not_read_by = vec![
            (Uuid::now_v7().into(), "森田 由美".into()),
            (Uuid::now_v7().into(), EVIL.into()),
        ];
        let mut other = comment(2, "川村 健一", "了解です");
        other.readers = vec![reader(&other, "青木 さくら", 3, 0)];
        let page = fragment(list(ReceiptMode::Footprints, false, &[mine, other]));
        assert!(page.contains("<details class=\"readers\" id=\"readers-1\">"));
        assert!(page.contains("既読 1 人"));
        assert!(page.contains("class=\"reader-badge__initial\" aria-hidden=\"true\">川</span>"));
        // 02:05 UTC is 11:05 in Japan, the same day as "now": the time alone.
        assert!(page.contains("datetime=\"2026-03-04T11:05:00+09:00\">11:05</time>"));
        assert!(
            page.contains("2026年3月4日 11:05"),
            "the full time in the list"
        );
        // Names are escaped by the template (numeric references).
        assert!(page.contains("未読：森田 由美・&#60;script&#62;"));
        assert_eq!(
            page.matches("class=\"not-read\"").count(),
            1,
            "own comments only"
        );
        assert!(
            page.contains("ここから未読"),
            "the first unread comment is marked"
        );
        assert!(!page.contains("確認しました</button>"));
        assert_csp_clean(&page);
    }

    #[test]
    fn a_crowded_comment_shows_a_count_and_a_few_readers_and_links_to_the_rest() {
        let mut c = comment(2, "川村 健一", "了解です");
        c.readers = (0..5).map(|i| reader(&c, "青木 さくら", 2, i)).collect();
        c.reader_count = 39;
        let quiet = comment(3, "林 大輔", "はい");
        let page = fragment(list(ReceiptMode::Footprints, false, &[c.clone(), quiet]));
        assert!(page.contains("既読 39 人"), "the count is of everyone");
        assert_eq!(page.matches("class=\"reader-badge\"").count(), 5);
        assert!(page.contains("ほか 34 人"));
        let readers = format!("/a/minatogawa/t/{}/c/{}/readers", Uuid::nil(), c.row.id);
        assert!(page.contains(&format!("data-readers-src=\"{readers}?part=list\"")));
        assert!(
            page.contains(&format!("href=\"{readers}\"")),
            "works without a script"
        );
        assert!(page.contains("全員を見る（39 人）"));
        // Comment 2 is unread for the viewer: the script watches it; 3 is not.
        assert!(page.contains("id=\"c-2\" data-unseen=\"2\""));
        assert!(!page.contains("data-unseen=\"3\""));
        assert!(page.contains("id=\"unread\""), "where reading stopped");
        assert_csp_clean(&page);
    }

    #[test]
    fn acknowledgement_mode_offers_the_button_and_off_mode_shows_no_readers() {
        let mut c = comment(2, "川村 健一", "お薬を変更しました");
        c.readers = vec![reader(&c, "林 大輔", 2, 0)];
        let page = fragment(list(ReceiptMode::Acknowledgement, false, &[c.clone()]));
        assert!(page.contains(">確認しました</button>"));
        assert!(page.contains("/c/"));
        assert!(page.contains("/ack\""));
        assert!(page.contains("確認済み 1 人"));
        let mut acked = c.clone();
        acked.acknowledged_by_me = true;
        let page = fragment(list(ReceiptMode::Acknowledgement, false, &[acked]));
        assert!(!page.contains(">確認しました</button>"));
        assert!(page.contains("あなたは確認ずみです。"));
        let page = fragment(list(ReceiptMode::Off, false, &[c]));
        assert!(!page.contains("class=\"readers\""));
        assert!(!page.contains("確認しました"));
        assert!(!page.contains("既読"));
    }

    #[test]
    fn edited_comments_keep_their_history_and_deleted_ones_only_a_mark() {
        let mut edited = comment(2, "青木 さくら", "訂正後の内容");
        edited.mine = true;
        edited.row.version = 2;
        edited.history = vec![VersionRow {
            comment_id: edited.row.id,
            version: 1,
            body: format!("訂正前 {EVIL}"),
            important: true,
            written_at: at(1, 2),
        }];
        let mut deleted = comment(3, "青木 さくら", "");
        deleted.row.deleted_at = Some(at(2, 0));
        let page = fragment(list(ReceiptMode::Footprints, true, &[edited, deleted]));
        assert!(page.contains(">編集済み</span>"));
        assert!(page.contains("編集の履歴（1 件）"));
        assert!(page.contains("訂正前 &lt;script&gt;"));
        assert!(page.contains("このコメントは削除されました"));
        // Own comment: edit and delete; the deleted one: neither.
        assert_eq!(page.matches("/edit\"").count(), 1);
        assert_eq!(page.matches("/delete\"").count(), 1);
        assert!(page.contains("name=\"seq\" value=\"2\""));
    }

    #[test]
    fn owners_may_delete_others_comments_but_not_a_topics_first_post() {
        let first = comment(1, "川村 健一", "本文");
        let reply = comment(2, "川村 健一", "返信");
        let page = fragment(list(
            ReceiptMode::Footprints,
            true,
            &[first.clone(), reply.clone()],
        ));
        assert_eq!(page.matches("/delete\"").count(), 1, "the reply only");
        assert_eq!(page.matches("/edit\"").count(), 0, "not theirs to edit");
        let page = fragment(list(ReceiptMode::Footprints, false, &[first, reply]));
        assert_eq!(page.matches("/delete\"").count(), 0);
    }

    fn picker() -> ScopePicker {
        ScopePicker::new(
            Some(Scope::CO_MEDICAL),
            &[
                (Scope::CO_MEDICAL, "青木 さくら"),
                (Scope::COLLABORATING_DOCTORS, "川村 健一"),
                (Scope::CO_MEDICAL, EVIL),
            ],
            Translator::new(Lang::Ja),
        )
    }

    #[test]
    fn the_topic_page_keeps_the_reply_box_usable_and_updates_itself() {
        let mut c = comment(1, "青木 さくら", "訪問しました");
        c.mine = true;
        let page = TopicPage {
            draft_sent: None,
            replied: false,
            t: Translator::new(Lang::Ja),
            assets: assets::urls(),
            nav: Nav::signed_in("青木 さくら", "TOKEN")
                .with_unread(3, Section::Groups)
                .live_after(Some(42)),
            current_path: "/a/minatogawa/t/x",
            csrf: "TOKEN",
            flash: None,
            topic: TopicHead {
                slug: "minatogawa".into(),
                id: Uuid::nil().to_string(),
                title: EVIL.into(),
                group_id: Uuid::nil().to_string(),
                group_name: "港 太郎さん".into(),
                patient: true,
                author: "青木 さくら".into(),
                scope: Some("コメディカルのみ".into()),
                pinned: true,
                closed: false,
                can_manage: true,
                receipt: "足跡（だれがいつ読んだか）",
                audience: 4,
                conversation: None,
            },
            list: list(ReceiptMode::Footprints, false, &[c]),
            reply_body: EVIL.into(),
            reply_important: false,
            reply_error: Some("コメントを入力してください（10,000文字まで）。".into()),
            settings: TopicSettings {
                title: EVIL.into(),
                pinned: true,
                closed: false,
                open: false,
                error: None,
            },
            picker: picker(),
            me: Uuid::nil().to_string(),
        }
        .render()
        .expect("renders");
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("interactive-widget=resizes-content"));
        assert!(page.contains("<form class=\"reply\" id=\"reply\" method=\"post\""));
        assert!(page.contains("name=\"csrf\" value=\"TOKEN\""));
        // What was typed stays, escaped.
        assert!(page.contains("name=\"body\" rows=\"2\""));
        assert!(
            page.contains("&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#39;&#38;</textarea>")
        );
        assert!(page.contains("role=\"alert\">コメントを入力してください"));
        assert!(page.contains(&format!("src=\"{}\"", assets::urls().live_js)));
        // Live updates ask for the list from the first comment shown.
        assert!(page.contains(
            "data-live-src=\"/a/minatogawa/t/00000000-0000-0000-0000-000000000000/comments?start=1\""
        ));
        assert!(page.contains("<body data-live-after=\"42\">"));
        assert!(page.contains("コメディカルのみ"));
        // The header: ホーム with its unread badge, グループ current.
        assert!(page.contains("<span data-unread-count>3</span>"));
        assert!(page.contains("href=\"/groups\" aria-current=\"page\""));
        // Topic settings for its author: the scope picker with who each box means.
        assert!(page
            .contains("action=\"/a/minatogawa/t/00000000-0000-0000-0000-000000000000/settings\""));
        assert!(page.contains("name=\"co_medical\" value=\"1\" checked"));
        assert!(page.contains("このグループでは：青木 さくら・&#60;script&#62;"));
    }

    #[test]
    fn the_home_page_lists_unread_comments_a_tap_away() {
        let item = |seq: i32| UnreadItem {
            href: format!("/a/minatogawa/t/{}#c-{seq}", Uuid::nil()),
            topic_title: EVIL.into(),
            author: "青木 さくら".into(),
            excerpt: EVIL.into(),
            important: seq == 1,
            new_topic: seq == 1,
            time: "11:05".into(),
            datetime: "2026-03-04T11:05:00+09:00".into(),
        };
        let unread = UnreadSection {
            total: 5,
            associations: vec![("みなと川医師会".into(), 3), ("さくら台医師会".into(), 2)],
            groups: vec![UnreadGroup {
                slug: "minatogawa".into(),
                id: "g1".into(),
                name: "港 太郎さん".into(),
                association: "みなと川医師会".into(),
                patient: true,
                unread: 3,
                important: 1,
                headline: Some(item(1)),
                topics: vec![UnreadTopic {
                    href: format!("/a/minatogawa/t/{}#unread", Uuid::nil()),
                    title: EVIL.into(),
                    unread: 3,
                    important: 1,
                }],
                more_topics: 1,
                time: "11:05".into(),
                datetime: "2026-03-04T11:05:00+09:00".into(),
            }],
            messages: vec![UnreadMessage {
                href: format!("/a/sakuradai/t/{}#unread", Uuid::nil()),
                names: EVIL.into(),
                association: "さくら台医師会".into(),
                unread: 2,
                excerpt: EVIL.into(),
                author: "中村 愛".into(),
                time: "11:05".into(),
                datetime: "2026-03-04T11:05:00+09:00".into(),
            }],
            invitations: vec![InvitationCard {
                slug: "sakuradai".into(),
                id: "g2".into(),
                name: EVIL.into(),
                association: "さくら台医師会".into(),
                patient: false,
            }],
            csrf: "TOKEN".into(),
            important_only: false,
            important_total: 1,
        };
        let t = Translator::new(Lang::Ja);
        let page = HomePage {
            t,
            assets: assets::urls(),
            nav: Nav::signed_in("川村 健一", "TOKEN").with_unread(5, Section::Home),
            current_path: "/home",
            name: "川村 健一",
            flash: None,
            unread,
            memberships: vec![],
            second_factor: true,
        }
        .render()
        .expect("renders");
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("href=\"/a/minatogawa/t/00000000-0000-0000-0000-000000000000#c-1\""));
        assert!(
            page.contains("href=\"/a/minatogawa/t/00000000-0000-0000-0000-000000000000#unread\""),
            "a topic opens where reading stopped"
        );
        assert!(page.contains("重要 1"));
        assert!(page.contains("href=\"/home?important=1\""), "the filter");
        assert!(page.contains("重要だけ（1 件）"));
        assert!(
            page.contains("data-confirm="),
            "marking all read asks first"
        );
        assert!(page.contains("data-live-src=\"/home/unread\""));
        assert!(page.contains("action=\"/a/minatogawa/g/g1/read\""));
        assert!(page.contains(">すべて既読にする</button>"));
        assert!(page.contains("未読 3"));
        assert!(page.contains("みなと川医師会：3 件"));
        assert!(page.contains("ほか 1 件のトピック"));
        assert!(page.contains("未読のあるトピック（2 件）"));
        assert!(page.contains("action=\"/a/sakuradai/g/g2/invitation\""));
        assert!(page.contains("name=\"answer\" value=\"accept\""));
        assert!(page.contains(">新しいトピック</span>"));
        assert!(page.contains("href=\"/home\" aria-current=\"page\""));
        // A conversation with unread messages leads to itself, not to a group.
        let messages = crate::pages::render_tests::section(&page, "id=\"messages-title\"");
        assert!(messages
            .contains("href=\"/a/sakuradai/t/00000000-0000-0000-0000-000000000000#unread\""));
        assert!(messages.contains("中村 愛："));
        assert!(messages.contains("未読 2"));
        assert!(!messages.contains("/g/"));
        // The account settings are still there, lower down.
        assert!(page.contains("href=\"/me/sessions\""));
        // The fragment live.js swaps in: the same section, alone.
        let fragment = UnreadFragment { t, unread: empty() }
            .render()
            .expect("renders");
        assert!(fragment.starts_with("<div class=\"live-root\" data-unread-total=\"0\">"));
        assert!(fragment.contains("まだ読んでいないコメントはありません。"));
        assert!(!fragment.contains("<html"));
    }

    fn empty() -> UnreadSection {
        UnreadSection {
            total: 0,
            associations: vec![],
            groups: vec![],
            messages: vec![],
            invitations: vec![],
            csrf: "TOKEN".into(),
            important_only: false,
            important_total: 0,
        }
    }

    fn group_page(owner: bool) -> String {
        let member = |name: &str, is_self: bool| MemberCard {
            id: Uuid::now_v7().to_string(),
            name: name.into(),
            profession: "看護師".into(),
            place: Some("訪問看護ステーションみなと".into()),
            from_elsewhere: false,
            owner: is_self && owner,
            is_self,
            confirm_remove: "remove?".into(),
            confirm_role: "role?".into(),
            until: (!is_self).then(|| EVIL.into()),
            until_value: "2026-12-31".into(),
        };
        GroupPage {
            t: Translator::new(Lang::Ja),
            assets: assets::urls(),
            nav: Nav::signed_in("青木 さくら", "TOKEN"),
            current_path: "/a/minatogawa/g/g1",
            csrf: "TOKEN",
            flash: None,
            group: GroupHead {
                slug: "minatogawa".into(),
                id: "g1".into(),
                name: EVIL.into(),
                description: EVIL.into(),
                patient: true,
                association: "みなと川医師会".into(),
                receipt: "足跡（だれがいつ読んだか）",
                owner,
            },
            list: TopicList {
                topics: vec![TopicCard {
                    href: "/a/minatogawa/t/t1".into(),
                    title: EVIL.into(),
                    author: "川村 健一".into(),
                    time: "11:05".into(),
                    datetime: "2026-03-04T11:05:00+09:00".into(),
                    pinned: true,
                    closed: true,
                    unread: 2,
                    scope: Some("連携医師のみ".into()),
                    replies: 4,
                }],
                unread: 2,
            },
            members: vec![member("青木 さくら", true), member("川村 健一", false)],
            invited: vec![member("森田 由美", false)],
            requests: vec![],
            finder: Finder {
                query: Some(EVIL.into()),
                candidates: vec![
                    CandidateCard {
                        id: "u1".into(),
                        name: EVIL.into(),
                        kana: "かわむら けんいち".into(),
                        profession: "医師（連携医）".into(),
                        place: "かわむら内科".into(),
                        elsewhere: Some(EVIL.into()),
                        status: None,
                        invite_label: "川村 健一 さんを招待する".into(),
                    },
                    CandidateCard {
                        id: "u2".into(),
                        name: "森田 由美".into(),
                        kana: "もりた ゆみ".into(),
                        profession: "介護支援専門員".into(),
                        place: "みなと川ケアプラン".into(),
                        elsewhere: None,
                        status: Some("招待中です"),
                        invite_label: "森田 由美 さんを招待する".into(),
                    },
                ],
                teams: vec![TeamCard {
                    id: "f1".into(),
                    name: EVIL.into(),
                    elsewhere: Some(EVIL.into()),
                    people: "3人".into(),
                    confirm: EVIL.into(),
                    invite_label: EVIL.into(),
                }],
                error: None,
            },
            invite_email: "typo@example".into(),
            invite_error: Some("メールアドレスの形になっていません。".into()),
            form: GroupForm {
                kind: "patient".into(),
                name: EVIL.into(),
                ..GroupForm::default()
            },
            errors: GroupErrors::default(),
            settings_open: false,
            receipt_default: "医師会の標準に合わせる",
            general: false,
            choose_kind: false,
            on_call: vec![],
            patient: Some(PatientHeader {
                href: "/a/minatogawa/patients/p1".into(),
                facts: vec![
                    "85歳".into(),
                    "男性".into(),
                    "要介護2".into(),
                    "在宅".into(),
                ],
                physician: Some(format!("主治医：{EVIL}")),
            }),
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn the_group_page_lists_topics_and_members_and_gives_owners_their_tools() {
        let page = group_page(true);
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains(">固定</span>"));
        assert!(page.contains(">締め切り</span>"));
        assert!(page.contains(">連携医師のみ</span>"));
        assert!(page.contains("未読 2"));
        assert!(page.contains("href=\"/a/minatogawa/g/g1/new\""));
        assert!(page.contains("action=\"/a/minatogawa/g/g1/invite\""));
        // The directory search: one person to invite, one already invited (nothing to press).
        assert_eq!(page.matches("name=\"user_id\" value=\"u1\"").count(), 1);
        assert!(!page.contains("value=\"u2\""));
        assert!(page.contains("aria-label=\"川村 健一 さんを招待する\""));
        assert!(page.contains("action=\"/a/minatogawa/g/g1/invite-email\""));
        assert!(
            page.contains("value=\"typo@example\""),
            "the address is kept"
        );
        assert!(page.contains("aria-invalid=\"true\""));
        assert!(page.contains("action=\"/a/minatogawa/g/g1/settings\""));
        assert!(page.contains("action=\"/a/minatogawa/g/g1/leave\""));
        // A patient group never accepts requests: no such box.
        assert!(!page.contains("name=\"accepts_requests\""));
        // Tools for the other member, none for oneself.
        assert_eq!(page.matches("/role\"").count(), 1);
        // A patient group starts with the patient at a glance and a way to the entry.
        let header = &page[page.find("class=\"patient-header\"").expect("the header")..];
        assert!(header.contains("85歳"));
        assert!(header.contains("要介護2"));
        assert!(header.contains("href=\"/a/minatogawa/patients/p1\""));
        assert!(header.contains("患者さんの情報を見る"));
        let page = group_page(false);
        assert!(!page.contains("action=\"/a/minatogawa/g/g1/invite\""));
        assert!(!page.contains("/invite-email\""));
        assert!(!page.contains("name=\"find\""));
        assert!(!page.contains("/role\""));
        assert!(!page.contains("/settings\""));
        assert!(page.contains("action=\"/a/minatogawa/g/g1/read\""));
    }

    #[test]
    fn the_new_topic_page_explains_who_sees_it() {
        let page = NewTopicPage {
            draft: "owner:topic:group".into(),
            t: Translator::new(Lang::Ja),
            assets: assets::urls(),
            nav: Nav::signed_in("青木 さくら", "TOKEN"),
            current_path: "/a/minatogawa/g/g1/new",
            csrf: "TOKEN",
            slug: "minatogawa",
            group_id: "g1".into(),
            group_name: EVIL.into(),
            patient: true,
            title: EVIL.into(),
            body: "一行目\n二行目".into(),
            important: true,
            picker: picker(),
            errors: TopicErrors::default(),
            max_title: 200,
            max_body: 10_000,
        }
        .render()
        .expect("renders");
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("action=\"/a/minatogawa/g/g1/new\""));
        assert!(page.contains("name=\"scope\" value=\"everyone\""));
        assert!(page.contains("name=\"scope\" value=\"some\" checked"));
        for name in ["co_medical", "collaborating", "hospital"] {
            assert!(
                page.contains(&format!("name=\"{name}\" value=\"1\"")),
                "{name}"
            );
        }
        assert!(page.contains("このグループでは：川村 健一"));
        assert!(
            page.contains("このグループにはいません。"),
            "no hospital doctor here"
        );
        assert!(page.contains(">一行目\n二行目</textarea>"));
        assert!(page.contains("name=\"important\" value=\"1\" checked"));
    }
}
