//! The audit log is append-only and tamper-evident: the database refuses changes, verification
//! finds the first altered or deleted record, and each association's log stands alone.

use musubi_db::audit::{self as repo, BreakReason};
use musubi_db::NewAssociation;
use musubi_domain::audit::{self, AuditAction, AuditEntry, AuditFilter, RequestMeta};
use musubi_domain::Tenant;
use musubi_test_support::TestDb;
use sqlx::types::chrono::{DateTime, Utc};
use sqlx::types::Uuid;

async fn association(t: &TestDb, slug: &str) -> Tenant {
    t.db.create_association(&NewAssociation {
        slug: slug.into(),
        name: format!("{slug}医師会"),
        area: String::new(),
        description: String::new(),
    })
    .await
    .unwrap()
}

fn meta() -> RequestMeta {
    RequestMeta::new("192.0.2.10", "Mozilla/5.0 (iPhone)")
}

fn sign_in(name: &str) -> AuditEntry {
    AuditEntry::new(AuditAction::AuthSignIn, &meta()).by(Uuid::now_v7().into(), name)
}

/// Appends `n` sign-ins, each in its own committed tenant transaction.
async fn append_n(t: &TestDb, tenant: &Tenant, n: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        let mut tx = t.db.tenant_tx(tenant).await.unwrap();
        seqs.push(
            audit::record(&mut tx, &sign_in(&format!("利用者{i}")))
                .await
                .unwrap(),
        );
        tx.commit().await.unwrap();
    }
    seqs
}

async fn verify(t: &TestDb, tenant: &Tenant) -> repo::VerifyReport {
    audit::verify_association(&t.db, tenant).await.unwrap()
}

/// Runs `sql` (with `{log}` standing for the association's table) with the guard triggers off,
/// as someone with direct database access might.
async fn tamper(t: &TestDb, tenant: &Tenant, sql: &str) {
    let log = format!("\"{}\".audit_log", tenant.schema_name());
    sqlx::raw_sql(&format!(
        "ALTER TABLE {log} DISABLE TRIGGER ALL; {}; ALTER TABLE {log} ENABLE TRIGGER ALL;",
        sql.replace("{log}", &log)
    ))
    .execute(&mut t.admin().await)
    .await
    .unwrap();
}

async fn stored_seqs(t: &TestDb, tenant: &Tenant) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT seq FROM \"{}\".audit_log ORDER BY seq",
        tenant.schema_name()
    ))
    .fetch_all(&mut t.admin().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn three_appended_audit_records_verify_intact() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    assert_eq!(append_n(&t, &a, 3).await, vec![1, 2, 3]);

    let report = verify(&t, &a).await;
    assert_eq!(report.checked, 3);
    assert_eq!(report.first_broken, None);
    assert_eq!(report.head.as_ref().map(|h| h.seq), Some(3));

    let page = audit::list(&t.db, &a, &AuditFilter::default(), None, None)
        .await
        .unwrap();
    let seqs: Vec<i64> = page.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![3, 2, 1], "newest first");
    let first = &page.records[2];
    assert_eq!(first.prev_hash, vec![0u8; 32]);
    assert_eq!(first.action, "auth.sign_in");
    assert_eq!(first.ip, "192.0.2.10");
    assert_eq!(page.records[1].prev_hash, first.hash);
}

#[tokio::test]
async fn audit_log_refuses_update_delete_and_truncate() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    append_n(&t, &a, 2).await;
    for sql in [
        "UPDATE audit_log SET actor_label = 'someone else' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "TRUNCATE audit_log",
    ] {
        let mut tx = t.db.tenant_tx(&a).await.unwrap();
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(stored_seqs(&t, &a).await, vec![1, 2]);
    assert!(verify(&t, &a).await.is_intact());
}

#[tokio::test]
async fn altered_audit_record_is_reported_as_hash_mismatch() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    append_n(&t, &a, 3).await;
    tamper(&t, &a, "UPDATE {log} SET ip = '203.0.113.9' WHERE seq = 2").await;

    let report = verify(&t, &a).await;
    let broken = report.first_broken.expect("tampering is detected");
    assert_eq!(broken.seq, 2);
    assert_eq!(broken.reason, BreakReason::HashMismatch);
    assert_eq!(report.checked, 1);
}

#[tokio::test]
async fn audit_detail_survives_the_jsonb_round_trip_but_an_altered_value_does_not() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    let e = AuditEntry::new(AuditAction::PatientRead, &meta())
        .on("patient", "p-1")
        .with_detail("group_id", "g-9")
        .with_detail("count", 2);
    audit::record(&mut tx, &e).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        verify(&t, &a).await.is_intact(),
        "jsonb round trip keeps the hash"
    );

    tamper(
        &t,
        &a,
        "UPDATE {log} SET detail = jsonb_set(detail, '{count}', '3') WHERE seq = 1",
    )
    .await;
    let broken = verify(&t, &a).await.first_broken.unwrap();
    assert_eq!((broken.seq, broken.reason), (1, BreakReason::HashMismatch));
}

#[tokio::test]
async fn deleted_middle_audit_record_is_reported_as_a_gap() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    append_n(&t, &a, 3).await;
    tamper(&t, &a, "DELETE FROM {log} WHERE seq = 2").await;

    let broken = verify(&t, &a)
        .await
        .first_broken
        .expect("deletion is detected");
    assert_eq!(broken.seq, 2);
    assert!(
        matches!(broken.reason, BreakReason::Gap { last_missing: 2 }),
        "{broken:?}"
    );
}

#[tokio::test]
async fn audit_prefix_deleted_without_a_purge_record_is_reported() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    append_n(&t, &a, 3).await;
    tamper(&t, &a, "DELETE FROM {log} WHERE seq = 1").await;

    let broken = verify(&t, &a)
        .await
        .first_broken
        .expect("deletion is detected");
    assert_eq!(broken.seq, 2);
    assert_eq!(broken.reason, BreakReason::UnrecordedTruncation);
}

#[tokio::test]
async fn concurrent_audit_appends_form_a_gapless_intact_chain() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let db = t.db.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut tx = db.tenant_tx(&a).await.unwrap();
                audit::record(&mut tx, &sign_in(&format!("task{task}-{i}")))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(stored_seqs(&t, &a).await, (1..=80).collect::<Vec<i64>>());
    let report = verify(&t, &a).await;
    assert_eq!((report.checked, report.first_broken), (80, None));
}

#[tokio::test]
async fn rolled_back_transaction_leaves_no_audit_record() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    append_n(&t, &a, 1).await;

    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    let seq = audit::record(&mut tx, &sign_in("取り消される操作"))
        .await
        .unwrap();
    assert_eq!(seq, 2);
    tx.rollback().await.unwrap();

    assert_eq!(stored_seqs(&t, &a).await, vec![1]);
    assert!(verify(&t, &a).await.is_intact());
    // The next append takes the seq the rolled-back one would have had.
    assert_eq!(append_n(&t, &a, 1).await, vec![2]);
    assert_eq!(verify(&t, &a).await.checked, 2);
}

#[tokio::test]
async fn audit_logs_of_two_associations_are_separate() {
    let t = TestDb::new().await;
    let a = association(&t, "alpha").await;
    let b = association(&t, "beta").await;
    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    audit::record(
        &mut tx,
        &AuditEntry::new(AuditAction::PatientRead, &meta()).on("patient", "only-in-alpha"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    append_n(&t, &b, 1).await;

    let in_b = audit::list(&t.db, &b, &AuditFilter::default(), None, None)
        .await
        .unwrap();
    assert_eq!(in_b.records.len(), 1);
    assert!(in_b
        .records
        .iter()
        .all(|r| r.object_id.as_deref() != Some("only-in-alpha")));
    let in_a = audit::list(&t.db, &a, &AuditFilter::default(), None, None)
        .await
        .unwrap();
    assert_eq!(in_a.records[0].object_id.as_deref(), Some("only-in-alpha"));
    // Each chain starts at seq 1 from zeros.
    assert_eq!(in_b.records[0].seq, 1);
    assert_eq!(in_b.records[0].prev_hash, vec![0u8; 32]);
    assert!(verify(&t, &a).await.is_intact() && verify(&t, &b).await.is_intact());
}

#[tokio::test]
async fn audit_list_filters_by_action_actor_object_and_pages_by_seq() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    let doctor = Uuid::now_v7();
    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    let seqs = audit::record_batch(
        &mut tx,
        &[
            AuditEntry::new(AuditAction::AuthSignIn, &meta()).by(doctor.into(), "川村 健一"),
            AuditEntry::new(AuditAction::AuthSignInFailed, &meta()),
            AuditEntry::new(AuditAction::PatientRead, &meta())
                .by(doctor.into(), "川村 健一")
                .on("patient", "p-1"),
            AuditEntry::new(AuditAction::TopicRead, &meta())
                .by(doctor.into(), "川村 健一")
                .on("topic", "t-1")
                .on_many(["c-1", "c-2", "c-3"]),
            AuditEntry::new(AuditAction::AuthSignOut, &meta()).by(doctor.into(), "川村 健一"),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(verify(&t, &a).await.is_intact());

    let db = t.db.clone();
    let list = |f: AuditFilter| {
        let db = db.clone();
        let a = a.clone();
        async move {
            audit::list(&db, &a, &f, None, None)
                .await
                .unwrap()
                .records
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        }
    };
    let action = |p: &str| AuditFilter {
        action_prefix: Some(p.into()),
        ..Default::default()
    };
    assert_eq!(list(action("auth")).await, vec![5, 2, 1]);
    assert_eq!(
        list(action("auth.sign_in")).await,
        vec![1],
        "whole segments only"
    );
    assert_eq!(list(action("auth.sign_in_failed")).await, vec![2]);
    assert_eq!(list(action("au")).await, Vec::<i64>::new());
    assert_eq!(
        list(action("auth_%")).await,
        Vec::<i64>::new(),
        "LIKE is escaped"
    );
    let by_doctor = AuditFilter {
        actor_id: Some(doctor.into()),
        ..Default::default()
    };
    assert_eq!(list(by_doctor).await, vec![5, 4, 3, 1]);
    let comment = AuditFilter {
        object_id: Some("c-2".into()),
        ..Default::default()
    };
    assert_eq!(
        list(comment).await,
        vec![4],
        "found through detail.object_ids"
    );
    let patient = AuditFilter {
        object_type: Some("patient".into()),
        object_id: Some("p-1".into()),
        ..Default::default()
    };
    assert_eq!(list(patient).await, vec![3]);
    let future: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp() + interval '1 hour'")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    let later = AuditFilter {
        from: Some(future),
        ..Default::default()
    };
    assert_eq!(list(later).await, Vec::<i64>::new());
    let earlier = AuditFilter {
        until: Some(future),
        ..Default::default()
    };
    assert_eq!(list(earlier).await.len(), 5);

    // Keyset pages of two.
    let f = AuditFilter::default();
    let p1 = audit::list(&t.db, &a, &f, None, Some(2)).await.unwrap();
    assert_eq!(p1.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 4]);
    let p2 = audit::list(&t.db, &a, &f, p1.next_before, Some(2))
        .await
        .unwrap();
    assert_eq!(p2.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 2]);
    let p3 = audit::list(&t.db, &a, &f, p2.next_before, Some(2))
        .await
        .unwrap();
    assert_eq!(p3.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(p3.next_before, None);
}

#[tokio::test]
async fn audit_page_size_is_capped() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    let entries: Vec<AuditEntry> = (0..250).map(|i| sign_in(&format!("u{i}"))).collect();
    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    audit::record_batch(&mut tx, &entries).await.unwrap();
    tx.commit().await.unwrap();
    let page = audit::list(&t.db, &a, &AuditFilter::default(), None, Some(10_000))
        .await
        .unwrap();
    assert_eq!(page.records.len(), audit::MAX_PAGE_SIZE as usize);
    assert_eq!(page.next_before, Some(51));
    assert_eq!(verify(&t, &a).await.checked, 250);
}

#[tokio::test]
async fn audit_purge_removes_only_old_records_and_the_chain_still_verifies() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    append_n(&t, &a, 3).await;
    let cutoff: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    append_n(&t, &a, 2).await;

    // The association's own retention (default 5 years) finds nothing to remove.
    assert_eq!(audit::purge_association(&t.db, &a).await.unwrap(), None);
    assert_eq!(stored_seqs(&t, &a).await, vec![1, 2, 3, 4, 5]);

    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    let report = repo::purge_older_than(&mut tx, cutoff)
        .await
        .unwrap()
        .expect("three records are older than the cutoff");
    tx.commit().await.unwrap();
    assert_eq!(
        (report.purged_from, report.purged_to, report.count),
        (1, 3, 3)
    );
    assert_eq!(report.purge_record_seq, 6);
    assert_eq!(stored_seqs(&t, &a).await, vec![4, 5, 6]);

    let v = verify(&t, &a).await;
    assert_eq!((v.checked, v.first_broken, v.first_seq), (3, None, Some(4)));

    // The purge noted the range and the anchor, which the oldest remaining record links to.
    let page = audit::list(&t.db, &a, &AuditFilter::default(), None, None)
        .await
        .unwrap();
    let note = &page.records[0];
    assert_eq!(note.action, "audit.purge");
    assert_eq!(note.actor_label, "system");
    assert_eq!(note.detail["purged_to"], 3);
    let oldest = page.records.last().unwrap();
    assert_eq!(
        note.detail["anchor_hash"].as_str().unwrap(),
        oldest
            .prev_hash
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    // Nothing left to purge at that cutoff; appends continue the chain.
    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    assert_eq!(repo::purge_older_than(&mut tx, cutoff).await.unwrap(), None);
    tx.commit().await.unwrap();
    assert_eq!(append_n(&t, &a, 1).await, vec![7]);
    assert_eq!(verify(&t, &a).await.checked, 4);

    // Tampering after a purge is still found.
    tamper(&t, &a, "UPDATE {log} SET actor_label = 'x' WHERE seq = 5").await;
    assert_eq!(verify(&t, &a).await.first_broken.unwrap().seq, 5);
}

#[tokio::test]
async fn audit_purge_all_applies_every_associations_retention() {
    let t = TestDb::new().await;
    let a = association(&t, "alpha").await;
    association(&t, "beta").await;
    append_n(&t, &a, 2).await;
    let outcomes = audit::purge_all(&t.db).await.unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| matches!(o.result, Ok(None))));
    assert_eq!(stored_seqs(&t, &a).await, vec![1, 2]);
}

#[tokio::test]
async fn platform_audit_log_is_chained_and_append_only_too() {
    let t = TestDb::new().await;
    let mut tx = t.db.pool().begin().await.unwrap();
    for i in 0..3 {
        let e = AuditEntry::new(AuditAction::AuthSignIn, &meta())
            .by(Uuid::now_v7().into(), format!("運用者{i}"));
        assert_eq!(audit::record_platform(&mut tx, &e).await.unwrap(), i + 1);
    }
    tx.commit().await.unwrap();
    let report = audit::verify_platform(&t.db).await.unwrap();
    assert_eq!((report.checked, report.first_broken), (3, None));
    let err = sqlx::query("DELETE FROM core.platform_audit_log")
        .execute(t.db.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn audit_csv_export_has_a_bom_and_escapes_commas_quotes_and_newlines() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    let admin = Uuid::now_v7();
    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    let tricky = RequestMeta::new("198.51.100.7", "Agent, \"quoted\"\nsecond line");
    audit::record(
        &mut tx,
        &AuditEntry::new(AuditAction::MemberInvite, &tricky)
            .by(admin.into(), "港, 事務子")
            .on("invitation", "inv-1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut out: Vec<u8> = Vec::new();
    let n = audit::export_csv(
        &t.db,
        &a,
        &AuditFilter::default(),
        Some((admin.into(), "港 事務子".into())),
        &meta(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(n, 2, "the invitation and the export itself");
    assert!(out.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM first");
    let text = String::from_utf8(out[3..].to_vec()).unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("seq,time,actor,actor_id,action,object,ip,user_agent,detail")
    );
    assert!(
        lines.next().unwrap().starts_with("2,"),
        "newest first: {text}"
    );
    assert!(text.contains("audit.export"), "{text}");
    assert!(
        text.contains(&format!(
            "\"港, 事務子\",{admin},member.invite,invitation:inv-1,198.51.100.7,\
             \"Agent, \"\"quoted\"\"\nsecond line\",{{}}\r\n"
        )),
        "{text}"
    );
    assert!(text.contains("+09:00"), "times in JST: {text}");
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn audit_verify_cli_exits_0_when_intact_and_1_naming_the_seq_when_tampered() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    association(&t, "sakuradai").await;
    append_n(&t, &a, 3).await;

    let out = t
        .command(crate::MUSUBI_BIN)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("minatogawa: 3 records, chain intact"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sakuradai: 0 records, chain intact"),
        "{stdout}"
    );
    assert!(
        stdout.contains("platform: 0 records, chain intact"),
        "{stdout}"
    );

    tamper(
        &t,
        &a,
        "UPDATE {log} SET action = 'auth.sign_out' WHERE seq = 2",
    )
    .await;
    let out = t
        .command(crate::MUSUBI_BIN)
        .args(["audit", "verify", "--association", "minatogawa"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("minatogawa: BROKEN at seq 2: hash mismatch (record altered)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("sakuradai"),
        "only the association asked for: {stdout}"
    );

    // Without --association the other logs are still checked and reported intact.
    let out = t
        .command(crate::MUSUBI_BIN)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("seq 2") && stdout.contains("sakuradai: 0 records, chain intact"));
}

#[tokio::test]
async fn audit_purge_cli_reports_each_association() {
    let t = TestDb::new().await;
    let a = association(&t, "minatogawa").await;
    append_n(&t, &a, 1).await;
    let out = t
        .command(crate::MUSUBI_BIN)
        .args(["audit", "purge"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("minatogawa: nothing older than the retention period"),
        "{stdout}"
    );
    assert_eq!(stored_seqs(&t, &a).await, vec![1]);
}
