//! PostgreSQL roles, so that the database enforces tenancy as well as Musubi.
//!
//! - Every association schema and everything in it belongs to a role of its own
//!   (`musubi_<schema>`, no login). Tenant connections run as that role (`SET ROLE`), so a
//!   statement that names another association's schema, or forgot its tenant, is refused by
//!   PostgreSQL with a permission error.
//! - The shared connections (accounts, sessions, the registry) run as `musubi_core`, which may
//!   use the `core` schema and nothing else.
//! - The login role of `DATABASE_URL` owns `core`, creates the roles and switches into them: it
//!   must be a superuser or have `CREATEROLE`. Without that, `musubi migrate` stops with
//!   [`RoleError`]'s message.

use crate::tenant::quote_schema;
use crate::DbResult;
use sqlx::PgConnection;

/// The role of the shared connections.
pub(crate) const CORE_ROLE: &str = "musubi_core";

/// Columns of `core.users` an association may read: never the password hash or TOTP secrets.
const USER_COLUMNS: &str =
    "id, email, name, name_kana, profession, doctor_kind, status, platform_operator, \
     created_at, updated_at, search_key";

/// Columns of `core.sessions` an association may read (not the token hash).
const SESSION_COLUMNS: &str = "id, user_id, kind, second_factor_done, created_at, last_seen_at, \
     idle_expires_at, absolute_expires_at, revoked_at";

/// The role owning an association's schema. Schema names are generated (`assoc_<hex>`), so the
/// role name is unique in the cluster and never longer than PostgreSQL's 63 bytes.
pub(crate) fn tenant_role(schema: &str) -> String {
    format!("musubi_{schema}")
}

/// Quoted role name (role names come from generated schema names; quoting is belt and braces).
pub(crate) fn quote_role(role: &str) -> String {
    quote_schema(role)
}

/// What the login role may do, read once per migration or association creation.
struct Login {
    superuser: bool,
    createrole: bool,
    name: String,
}

async fn login(conn: &mut PgConnection) -> DbResult<Login> {
    let (superuser, createrole, name): (bool, bool, String) = sqlx::query_as(
        "SELECT rolsuper, rolcreaterole, rolname::text FROM pg_roles WHERE rolname = session_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Login {
        superuser,
        createrole,
        name,
    })
}

/// Creates `role` (no login) unless it exists, and lets the login role switch into it.
/// Runs in the caller's transaction; role creation is transactional in PostgreSQL.
async fn ensure_role(conn: &mut PgConnection, who: &Login, role: &str) -> DbResult<()> {
    if !who.superuser && !who.createrole {
        // Roles made beforehand by someone who may (and granted to this login) are fine.
        let member: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_auth_members m \
                            JOIN pg_roles r ON r.oid = m.roleid \
                            JOIN pg_roles l ON l.oid = m.member \
                            WHERE r.rolname = $1 AND l.rolname = session_user)",
        )
        .bind(role)
        .fetch_one(&mut *conn)
        .await?;
        if member {
            return Ok(());
        }
        return Err(crate::DbError::Role(RoleError::CannotCreateRoles {
            login: who.name.clone(),
        }));
    }
    // Two replicas (or test processes) may race to create the same role.
    let create = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
             CREATE ROLE {q} NOLOGIN; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$",
        q = quote_role(role)
    );
    crate::simple(&mut *conn, &create).await?;
    if !who.superuser {
        // Granted again each time: on PostgreSQL 16 the creator's automatic membership cannot
        // `SET ROLE`, and a repeated grant only draws a notice.
        crate::simple(
            &mut *conn,
            &format!("GRANT {} TO {}", quote_role(role), quote_role(&who.name)),
        )
        .await?;
    }
    Ok(())
}

/// Creates the shared connections' role if it is missing, on a connection of its own (the
/// shared pool's connections switch into it as they open).
pub(crate) async fn ensure_core_role(connect: &sqlx::postgres::PgConnectOptions) -> DbResult<()> {
    use sqlx::Connection as _;
    let mut conn = PgConnection::connect_with(connect).await?;
    let who = login(&mut conn).await?;
    let result = async {
        let mut tx = conn.begin().await?;
        ensure_role(&mut tx, &who, CORE_ROLE).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    result
}

/// The shared connections' role, with every privilege on `core`. Called after the core
/// migrations, in their transaction, so new core tables are covered.
pub(crate) async fn grant_core(conn: &mut PgConnection) -> DbResult<()> {
    let who = login(conn).await?;
    ensure_role(conn, &who, CORE_ROLE).await?;
    let r = quote_role(CORE_ROLE);
    crate::simple(
        &mut *conn,
        &format!(
            "GRANT USAGE ON SCHEMA core TO {r}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA core TO {r}; \
         GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA core TO {r}; \
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA core TO {r}"
        ),
    )
    .await?;
    Ok(())
}

/// Makes `schema` and everything in it belong to its own role and grants that role the `core`
/// tables an association uses. Idempotent: `musubi migrate` runs it for an association whose
/// schema is behind, not yet owned by its role (from before roles), or after core migrations
/// (which may add tables an association needs: add their grants here).
pub(crate) async fn adopt_tenant(conn: &mut PgConnection, schema: &str) -> DbResult<String> {
    let who = login(conn).await?;
    let role = tenant_role(schema);
    ensure_role(conn, &who, &role).await?;
    let r = quote_role(&role);
    let s = quote_schema(schema);
    // Objects the role does not own yet (a schema from before roles, or created by the login
    // role): hand them over. Sequences owned by a table move with it.
    let strays: Vec<(String, String)> = sqlx::query_as(
        "SELECT CASE WHEN c.relkind IN ('v', 'm') THEN 'VIEW' ELSE 'TABLE' END, \
                quote_ident(c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S') \
           AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $2) \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid \
                           AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
                           AND c.relkind = 'S') \
         UNION ALL \
         SELECT 'FUNCTION', quote_ident(p.proname) || '(' || \
                pg_get_function_identity_arguments(p.oid) || ')' \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = $1 AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = $2)",
    )
    .bind(schema)
    .bind(&role)
    .fetch_all(&mut *conn)
    .await?;
    let mut sql = format!("ALTER SCHEMA {s} OWNER TO {r};");
    for (kind, name) in strays {
        sql.push_str(&format!("ALTER {kind} {s}.{name} OWNER TO {r};"));
    }
    // An association's administrators manage its memberships, invitations and facilities and
    // may end a member's sessions or clear their second factor; its groups live in the
    // directory. Secrets (password hashes, TOTP secrets, session and recovery code hashes) are
    // written, never read.
    sql.push_str(&format!(
        "GRANT USAGE ON SCHEMA core TO {r}; \
         GRANT SELECT ({USER_COLUMNS}), INSERT, UPDATE ON core.users TO {r}; \
         GRANT SELECT ON core.associations, core.association_neighbours TO {r}; \
         GRANT SELECT, INSERT, UPDATE ON core.message_policies TO {r}; \
         GRANT SELECT, INSERT, UPDATE ON core.memberships, core.facilities, core.invitations \
             TO {r}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON core.groups, core.group_members, core.events \
             TO {r}; \
         GRANT SELECT ({SESSION_COLUMNS}), UPDATE (revoked_at) ON core.sessions TO {r}; \
         GRANT SELECT (user_id), DELETE ON core.recovery_codes TO {r}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON core.absences TO {r}; \
         GRANT SELECT, INSERT, UPDATE ON core.calendar_feeds TO {r}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON core.notification_settings, \
             core.notification_mutes TO {r}; \
         GRANT SELECT ON core.notifications TO {r}; \
         GRANT INSERT, SELECT (id, dedupe_key) ON core.jobs TO {r}; \
         GRANT SELECT (id, user_id) ON core.push_subscriptions TO {r}; \
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA core TO {r}; \
         REVOKE ALL ON SCHEMA {s} FROM PUBLIC;"
    ));
    crate::simple(&mut *conn, &sql).await?;
    Ok(role)
}

/// Refused by the login role's privileges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error(
        "the PostgreSQL user {login:?} may not create roles, which Musubi needs to give each \
         association's schema a role of its own: run `ALTER ROLE {login} CREATEROLE` as a \
         superuser (or connect as a superuser)"
    )]
    CannotCreateRoles { login: String },
}
