//! The console's pages rendered without a database: messages exist in both languages, what
//! people typed is escaped, and the pages need neither inline script nor inline style.

use super::audit::{
    action_key, AuditPage, Choice as ActionChoice, DateErrors, PersonChoice, RecordCard,
};
use super::invite::{Choice, InvitationCard, InviteErrors, InvitePage, InviteValues, InvitedPage};
use super::members::{Confirmations, MemberCard, MembersPage};
use super::settings::{SettingsErrors, SettingsPage, SettingsValues};
use super::{profession_label, ConsoleHead, Flash, FlashQuery};
use crate::assets;
use crate::i18n::{Lang, Translator};
use crate::layout::Nav;
use askama::Template;
use http::Uri;
use musubi_domain::audit::AuditAction;
use musubi_domain::types::{DoctorKind, Profession};

const EVIL: &str = "<script>alert(1)</script>\"'&";

const SOURCES: &[&str] = &[
    include_str!("../../../templates/console/nav.html"),
    include_str!("../../../templates/console/flash.html"),
    include_str!("../../../templates/console/home.html"),
    include_str!("../../../templates/console/members.html"),
    include_str!("../../../templates/console/invite.html"),
    include_str!("../../../templates/console/invited.html"),
    include_str!("../../../templates/console/settings.html"),
    include_str!("../../../templates/console/audit.html"),
    include_str!("../../../templates/home.html"),
    include_str!("mod.rs"),
    include_str!("home.rs"),
    include_str!("members.rs"),
    include_str!("invite.rs"),
    include_str!("settings.rs"),
    include_str!("audit.rs"),
];

/// A message in both catalogs (a missing one comes back as its key).
fn assert_translated(key: &str) {
    for lang in [Lang::Ja, Lang::En] {
        assert_ne!(
            Translator::new(lang).get(key),
            key,
            "no {lang:?} message for `{key}`"
        );
    }
}

#[test]
fn every_console_message_exists_in_both_languages() {
    let mut used = 0;
    for src in SOURCES {
        for (i, _) in src.match_indices("\"console.") {
            let rest = &src[i + 1..];
            let Some(end) = rest.find('"') else { continue };
            let key = &rest[..end];
            // Keys built at run time (`console.profession.{…}`) are checked below.
            if key.ends_with('.') || key.contains('{') {
                continue;
            }
            assert_translated(key);
            used += 1;
        }
    }
    assert!(used > 100, "the key scan found too little: {used}");
}

#[test]
fn every_audit_action_and_profession_has_a_name() {
    for a in AuditAction::ALL {
        assert_translated(&action_key(a.as_str()));
    }
    assert_translated("console.action.member_reactivate");
    for p in Profession::ALL {
        assert_translated(&format!("console.profession.{}", p.code()));
    }
    for k in DoctorKind::ALL {
        assert_translated(&format!("console.doctor_kind.{}", k.code()));
    }
    let t = Translator::new(Lang::Ja);
    assert_eq!(profession_label(t, Profession::Nurse, None), "看護師");
    assert_eq!(
        profession_label(t, Profession::Physician, Some(DoctorKind::Hospital)),
        "医師（病院医師）"
    );
}

#[test]
fn only_known_message_codes_are_shown() {
    let t = Translator::new(Lang::Ja);
    let flash = |q: &str| {
        let uri: Uri = format!("/x?{q}").parse().expect("uri");
        FlashQuery::from_uri(&uri)
            .message(t, Some("青木 さくら"))
            .map(|f| f.text)
    };
    assert_eq!(
        flash("done=deactivated").as_deref(),
        Some("青木 さくら さんを利用停止にしました。すべての端末からログアウトさせ、この医師会のグループ（患者さんのグループを含む）を見られなくしました。")
    );
    assert!(flash("error=last_admin").is_some());
    assert!(flash("error=account_wide").is_some_and(|m| m.starts_with("青木 さくら さんは")));
    assert_eq!(flash("done=%3Cscript%3E"), None);
    assert_eq!(flash("error=anything"), None);
    assert_eq!(flash(""), None);
    // The wait is a number or nothing.
    let text = flash("error=rate_limited&wait=%3Cb%3E").expect("message");
    assert!(text.contains("1分"), "{text}");
    assert!(flash("error=rate_limited&wait=15")
        .expect("message")
        .contains("15分"));
}

fn assert_csp_clean(page: &str) {
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
    assert!(!page.contains("<script>alert"), "unescaped input");
}

fn head(section: &'static str) -> ConsoleHead {
    ConsoleHead {
        slug: "minatogawa".into(),
        association: EVIL.into(),
        section,
    }
}

fn member(name: &str, admin: bool, active: bool, is_self: bool) -> MemberCard {
    MemberCard {
        id: "0190aaaa-0000-7000-8000-000000000001".into(),
        name: name.into(),
        kana: EVIL.into(),
        email: EVIL.into(),
        profession: "看護師".into(),
        facility: Some(EVIL.into()),
        admin,
        active,
        second_factor: true,
        is_self,
        account_wide_note: None,
        joined: "2026年4月1日".into(),
        confirm: Confirmations {
            role: EVIL.into(),
            deactivate: EVIL.into(),
            reactivate: EVIL.into(),
            sign_out: EVIL.into(),
            reset: EVIL.into(),
        },
    }
}

#[test]
fn a_person_another_association_answers_for_gets_a_note_instead_of_account_wide_buttons() {
    let mut guest = member("佐藤 隆", false, true, false);
    guest.account_wide_note = Some(EVIL.into());
    let page = MembersPage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in("桜井 花子", "TOKEN"),
        current_path: "/a/sakuradai/console/members",
        console: head("members"),
        csrf: "TOKEN",
        flash: None,
        members: vec![guest],
        active_count: 1,
        inactive_count: 0,
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert!(page.contains("data-account-wide-note"));
    assert!(!page.contains("/sign-out\""));
    assert!(!page.contains("/reset-second-factor\""));
    assert!(
        page.contains("/deactivate\""),
        "deactivating here stays possible"
    );
}

#[test]
fn the_members_page_offers_each_action_as_a_confirmed_form() {
    let page = MembersPage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in("港 事務子", "TOKEN"),
        current_path: "/a/minatogawa/console/members",
        console: head("members"),
        csrf: "TOKEN",
        flash: Some(Flash {
            text: EVIL.into(),
            success: true,
        }),
        members: vec![
            member("港 事務子", true, true, true),
            member(EVIL, false, true, false),
            member("石井 翔", false, false, false),
        ],
        active_count: 2,
        inactive_count: 1,
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    let base = "/a/minatogawa/console/members/0190aaaa-0000-7000-8000-000000000001";
    for action in [
        "make-admin",
        "sign-out",
        "reset-second-factor",
        "deactivate",
    ] {
        assert_eq!(
            page.matches(&format!("action=\"{base}/{action}\"")).count(),
            1,
            "{action}: only the active member who is not the viewer"
        );
    }
    assert_eq!(
        page.matches(&format!("action=\"{base}/reactivate\""))
            .count(),
        1
    );
    assert!(
        !page.contains("make-member"),
        "the viewer cannot demote themselves"
    );
    assert!(
        page.contains("data-confirm=\"&#60;script&#62;")
            || page.contains("data-confirm=\"&lt;script&gt;")
    );
    assert!(page.contains("name=\"csrf\" value=\"TOKEN\""));
    assert!(page.contains("aria-current=\"page\""));
    assert!(page.contains("利用停止にする"));
}

#[test]
fn the_invite_page_shows_errors_next_to_their_fields() {
    let page = InvitePage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in("港 事務子", "TOKEN"),
        current_path: "/a/minatogawa/console/invite",
        console: head("invite"),
        csrf: "TOKEN",
        flash: None,
        alert: None,
        values: InviteValues {
            email: EVIL.into(),
            admin: true,
        },
        errors: InviteErrors {
            email: Some("ERR-EMAIL".into()),
            ..InviteErrors::default()
        },
        facilities: vec![Choice {
            value: "f1".into(),
            label: EVIL.into(),
            selected: true,
        }],
        days: vec![Choice {
            value: "7".into(),
            label: "7日間".into(),
            selected: true,
        }],
        invitations: vec![InvitationCard {
            id: "i1".into(),
            to: EVIL.into(),
            role: "一般",
            facility: None,
            invited_by: Some(EVIL.into()),
            created: "c".into(),
            expires: "e".into(),
            confirm: EVIL.into(),
        }],
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    let error = page.find("ERR-EMAIL").expect("the error is shown");
    let field = page.find("id=\"email\"").expect("the field");
    let label = page.find("for=\"email\"").expect("the label");
    assert!(
        label < error && error < field,
        "the error sits with its field"
    );
    assert!(page.contains("aria-invalid=\"true\""));
    assert!(page.contains("value=\"admin\" checked"));
    assert!(page.contains("action=\"/a/minatogawa/console/invitations/i1/revoke\""));
}

#[test]
fn an_in_person_invitation_shows_its_link_and_qr_code() {
    let page = InvitedPage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in("港 事務子", "TOKEN"),
        current_path: "/a/minatogawa/console/invite",
        console: head("invite"),
        link: "http://127.0.0.1:8080/invite/abc".into(),
        qr_svg: "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".into(),
        role: "一般",
        facility: Some(EVIL.into()),
        expires: "2026年4月8日 10:00".into(),
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert!(page.contains("<svg xmlns"));
    assert!(page.contains("http://127.0.0.1:8080/invite/abc"));
    assert!(page.contains("data-print"));
}

#[test]
fn the_settings_page_puts_each_error_by_its_field() {
    let page = SettingsPage {
        t: Translator::new(Lang::En),
        assets: assets::urls(),
        nav: Nav::signed_in("Admin", "TOKEN"),
        current_path: "/a/minatogawa/console/settings",
        console: head("settings"),
        csrf: "TOKEN",
        flash: None,
        values: SettingsValues {
            require_second_factor: true,
            idle: EVIL.into(),
            absolute: "12".into(),
            retention: "5".into(),
            receipt_mode: "ack".into(),
            mail_group_names: true,
            cross_association_messages: true,
            urgent: EVIL.into(),
        },
        errors: SettingsErrors {
            idle: Some("ERR-IDLE"),
            ..SettingsErrors::default()
        },
        updated: "now".into(),
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    let error = page.find("ERR-IDLE").expect("shown");
    assert!(page.find("for=\"idle_minutes\"").expect("label") < error);
    assert!(error < page.find("id=\"idle_minutes\"").expect("field"));
    assert!(error < page.find("for=\"absolute_hours\"").expect("next field"));
    assert!(page.contains("name=\"require_second_factor\" value=\"on\" checked"));
    assert!(page.contains("name=\"receipt_mode\" value=\"ack\" checked"));
    assert!(!page.contains("name=\"receipt_mode\" value=\"footprints\" checked"));
}

#[test]
fn the_audit_page_lists_records_and_links_the_csv() {
    let page = AuditPage {
        t: Translator::new(Lang::Ja),
        assets: assets::urls(),
        nav: Nav::signed_in("港 事務子", "TOKEN"),
        current_path: "/a/minatogawa/console/audit",
        console: head("audit"),
        actions: vec![ActionChoice {
            value: "auth",
            label: "ログイン・ログアウト",
            selected: true,
        }],
        from: EVIL.into(),
        until: String::new(),
        errors: DateErrors {
            from: Some("ERR-FROM"),
            until: None,
        },
        records: vec![RecordCard {
            seq: 42,
            time: "2026年4月1日 09:00:00".into(),
            action: "ログイン".into(),
            code: "auth.sign_in".into(),
            actor: EVIL.into(),
            object: Some(EVIL.into()),
            ip: "192.0.2.1".into(),
            details: vec![("方法".into(), EVIL.into())],
            group_href: Some("/a/minatogawa/console/audit?group=g1".into()),
            denied: false,
        }],
        people: vec![PersonChoice {
            id: "p1".into(),
            name: EVIL.into(),
            selected: true,
        }],
        group: Some((EVIL.into(), "/a/minatogawa/console/audit".into())),
        group_value: "g1".into(),
        older: Some("/a/minatogawa/console/audit?action=auth&before=42".into()),
        newest: None,
        csv: "/a/minatogawa/console/audit.csv?action=auth".into(),
    }
    .render()
    .expect("renders");
    assert_csp_clean(&page);
    assert!(page.contains("href=\"/a/minatogawa/console/audit.csv?action=auth\""));
    assert!(page.contains("action=auth&#38;before=42"), "{page}");
    assert!(page.contains("ERR-FROM"));
    assert!(page.contains("auth.sign_in"));
    assert!(
        page.contains("<option value=\"p1\" selected>"),
        "the person filter"
    );
    assert!(
        page.contains("name=\"group\" value=\"g1\""),
        "the group filter is kept"
    );
    assert!(page.contains("すべてのグループに戻す"));
    assert!(!page.contains("<script>alert"));
}
