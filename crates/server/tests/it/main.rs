//! The server's integration tests, in one binary so that the application is linked once.
//!
//! One module per area, one file per capability: `<area>/<capability>.rs`. Builders and
//! fixtures used by more than one file live in `musubi-test-support`. See docs/testing.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: fail loudly

/// The `musubi` binary cargo built for these tests.
const MUSUBI_BIN: &str = env!("CARGO_BIN_EXE_musubi");

/// Mail through the harness's SMTP server, read back from its maildir.
mod mail;

/// Accounts: signing in through the API, passkeys, invitations and password resets.
mod accounts {
    mod auth_api;
    mod invitations;
    mod passkeys;
}

/// Groups, topics and comments: the API, the services beneath it and live events.
mod sns {
    mod api;
    mod calendar;
    mod calendar_feed;
    mod directory;
    mod files;
    mod files_api;
    mod live;
    mod messages;
    mod notifications;
    mod patients;
    mod push;
    mod search;
    mod search_api;
    mod services;
    mod subscriptions;
}

/// Associations kept apart: schemas, routing and the gateway in front of them.
mod tenancy {
    mod cross_tenant;
    mod database_roles;
    mod gateway;
    mod isolation;
}

/// Hostile or refused input, deactivated people and the audit log.
mod security {
    mod audit;
    mod deactivation;
    mod fair_use;
    mod fuzz_gateway;
    mod hardening;
    mod input_text;
    mod refusals;
}

/// The unit of change: every write's audit record and events, and writes cut off by a client
/// that went away.
mod writes {
    mod cancellation;
    mod order;
}

/// The server-rendered pages, driven like a browser.
mod web {
    mod calendar;
    mod compression;
    mod console;
    mod files;
    mod invite;
    mod messages;
    mod notifications;
    mod patients;
    mod search;
    mod signin;
    mod sns;
    mod urgent;
}

/// Running and operating the server: the binary, its commands, migrations, replicas,
/// telemetry and query costs.
mod ops {
    mod backup;
    mod binary;
    mod cli;
    mod connections;
    mod disk_full;
    mod faults;
    mod file_store;
    mod migrations;
    mod overload;
    mod query_counts;
    mod replicas;
    mod schema_spans;
    mod telemetry;
    mod upgrade;
}
