//! Operator commands against an existing deployment (`DATABASE_URL`).

use musubi_test_support::TestDb;

#[tokio::test]
async fn association_create_then_migrate_and_list() {
    let db = TestDb::new().await;
    let out = db
        .command(crate::MUSUBI_BIN)
        .args([
            "association",
            "create",
            "--slug",
            "kawabe",
            "--name",
            "川辺医師会",
            "--area",
            "川辺町",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = db
        .command(crate::MUSUBI_BIN)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));

    let out = db
        .command(crate::MUSUBI_BIN)
        .args(["association", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kawabe") && text.contains("川辺医師会"),
        "{text}"
    );
    assert!(db.db.resolve_tenant("kawabe").await.is_ok());
}

#[tokio::test]
async fn association_create_with_bad_input_explains_and_changes_nothing() {
    let db = TestDb::new().await;
    let out = db
        .command(crate::MUSUBI_BIN)
        .args(["association", "create", "--slug", "Bad Slug", "--name", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("INVALID_INPUT") && err.contains("slug"),
        "{err}"
    );
    assert!(db.db.list_associations().await.unwrap().is_empty());
}

#[tokio::test]
async fn operator_appoints_the_first_administrator_with_a_one_time_link() {
    let db = TestDb::new().await;
    let out = db
        .command(crate::MUSUBI_BIN)
        .args([
            "association",
            "create",
            "--slug",
            "kawabe",
            "--name",
            "川辺医師会",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = db
        .command(crate::MUSUBI_BIN)
        .args(["association", "invite-admin", "--slug", "kawabe"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let link = text
        .lines()
        .find(|l| l.contains("/invite/"))
        .unwrap_or_else(|| panic!("no link in {text}"));
    let token = link.rsplit('/').next().unwrap().trim();

    let services = db.services().await;
    let input = musubi_domain::invitations::AcceptInput {
        email: Some("jimu@kawabe.example".into()),
        password: "Shiroi-kumo-Asa-2026".into(),
        name: Some("川辺 事務".into()),
        name_kana: Some("かわべ じむ".into()),
        profession: Some("clerk".into()),
        doctor_kind: None,
    };
    let meta = musubi_domain::audit::RequestMeta::new("127.0.0.1", "test");
    services
        .accept_invitation(
            token,
            &input,
            musubi_domain::sessions::SessionKind::Api,
            &meta,
        )
        .await
        .unwrap();
    let members = musubi_db::accounts::members_of(
        db.db.pool(),
        db.db.resolve_tenant("kawabe").await.unwrap().id,
    )
    .await
    .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].name.as_str(), members[0].role.code()),
        ("川辺 事務", "admin")
    );
    // The link works once.
    assert!(services
        .accept_invitation(
            token,
            &input,
            musubi_domain::sessions::SessionKind::Api,
            &meta
        )
        .await
        .is_err());

    let out = db
        .command(crate::MUSUBI_BIN)
        .args(["association", "invite-admin", "--slug", "nosuch"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ASSOCIATION_NOT_FOUND"));
}
