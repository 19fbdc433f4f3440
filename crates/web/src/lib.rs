//! Musubi's server-rendered web pages: the landing page, signing in and out (with the second
//! factor or a passkey), accepting an invitation, resetting a forgotten password, the signed-in
//! home page, the person's sessions and security settings (second factor, passkeys), the
//! language switch, static assets and error pages. Pages call the services like every other entry
//! point; they work without JavaScript, which only adds small comforts.
//!
//! Sessions travel in the `musubi_session` cookie (see [`ctx`]); every state-changing form is
//! checked against cross-site request forgery before its handler runs (see [`csrf`]).

mod assets;
mod cookies;
mod csrf;
mod ctx;
mod datetime;
mod device;
mod html;
mod i18n;
mod layout;
mod pages;
mod upload;

use axum::routing::{get, post};
use axum::Router;
use musubi_domain::Services;
use pages::{
    enrol, help, home, invite, landing, my_sessions, notifications, passkey, reset, security,
    signin, signin_code, signout,
};

pub use pages::error::{overloaded, too_many_requests};

/// The web pages, with a 404 page for every path they do not know.
pub fn router(services: Services) -> Router {
    Router::new()
        .route("/", get(landing::show))
        .route("/signin", get(signin::show).post(signin::submit))
        .route(
            "/signin/code",
            get(signin_code::show).post(signin_code::submit),
        )
        .route(
            "/signin/enrol",
            get(enrol::show_for_sign_in).post(enrol::confirm_for_sign_in),
        )
        .route("/signout", post(signout::submit))
        .route("/home", get(home::show))
        .route("/home/unread", get(home::fragment))
        .route("/me/sessions", get(my_sessions::show))
        .route("/me/sessions/revoke-all", post(my_sessions::revoke_all))
        .route("/me/sessions/{id}/revoke", post(my_sessions::revoke))
        .route("/me/security", get(security::show))
        // E-mail notifications: how often, groups kept quiet, what was sent; help for phones.
        .route(
            notifications::PATH,
            get(notifications::show).post(notifications::save),
        )
        .route("/settings/notifications/mute", post(notifications::mute))
        // Web push: this browser's subscription (JSON from static/app.js), a device's 「解除」.
        .route("/settings/push", post(pages::push::subscribe))
        .route("/settings/push/remove", post(pages::push::remove))
        .route("/help/mail", get(help::mail))
        .route(
            "/me/security/totp",
            get(enrol::show_for_viewer).post(enrol::confirm_for_viewer),
        )
        // Invitations, forgotten passwords and passkeys (the JSON calls of static/passkey.js).
        .route("/invite/{token}", get(invite::show).post(invite::submit))
        .route("/calendar/feed/{file}", get(pages::feed::show))
        .route(
            "/reset",
            get(reset::show_request).post(reset::submit_request),
        )
        .route(
            "/reset/{token}",
            get(reset::show_new_password).post(reset::submit_new_password),
        )
        .route("/me/passkeys/start", post(passkey::start_registration))
        .route("/me/passkeys/finish", post(passkey::finish_registration))
        .route("/me/passkeys/{id}/delete", post(passkey::delete))
        .route("/signin/passkey/start", post(passkey::start_sign_in))
        .route("/signin/passkey/finish", post(passkey::finish_sign_in))
        // Groups, topics and comments; the patient register.
        .merge(sns_routes())
        // The association console (administrators; everyone else gets the 404 page).
        .merge(console_routes())
        // Every state-changing request to these routes passes the CSRF check first.
        .route_layer(axum::middleware::from_fn(csrf::guard))
        // Uploads (multipart, larger than the guard reads): the patient register's CSV and
        // files; their handlers make the same checks before reading the file.
        .merge(pages::sns::patient_import::routes())
        .merge(pages::sns::files::upload_routes(services.max_file_bytes()))
        .with_state(services)
        .merge(public_router())
}

/// The association console: `/a/{slug}/console/…` (see [`pages::console`]).
fn console_routes() -> Router<Services> {
    use pages::console::{audit, home, invite, members, settings};
    const MEMBER: &str = "/a/{slug}/console/members/{user_id}";
    Router::new()
        .route("/a/{slug}/console", get(home::show))
        .route("/a/{slug}/console/members", get(members::show))
        .route(&format!("{MEMBER}/make-admin"), post(members::make_admin))
        .route(&format!("{MEMBER}/make-member"), post(members::make_member))
        .route(&format!("{MEMBER}/deactivate"), post(members::deactivate))
        .route(&format!("{MEMBER}/reactivate"), post(members::reactivate))
        .route(&format!("{MEMBER}/sign-out"), post(members::sign_out))
        .route(
            &format!("{MEMBER}/departure"),
            get(members::show_departure).post(members::depart),
        )
        .route(
            &format!("{MEMBER}/reset-second-factor"),
            post(members::reset_second_factor),
        )
        .route(
            "/a/{slug}/console/invite",
            get(invite::show).post(invite::submit),
        )
        .route(
            "/a/{slug}/console/invitations/{id}/revoke",
            post(invite::revoke),
        )
        .route(
            "/a/{slug}/console/settings",
            get(settings::show).post(settings::submit),
        )
        .route("/a/{slug}/console/audit", get(audit::show))
        .route("/a/{slug}/console/audit.csv", get(audit::export))
}

/// Groups, topics and comments: `/groups`, `/a/{slug}/g/{group}/…`, `/a/{slug}/t/{topic}/…`;
/// the patient register: `/patients`, `/a/{slug}/patients/…`; calendars: `/calendar`,
/// `/a/{slug}/g/{group}/calendar`, `/a/{slug}/g/{group}/duty`; direct messages: `/messages`,
/// `/a/{slug}/messages/…` (see [`pages::sns`]).
fn sns_routes() -> Router<Services> {
    use pages::sns::{
        calendar, duty, files, group, groups, messages, new_topic, patient_files, patients, search,
        topic,
    };
    const CONVERSATION: &str = "/a/{slug}/messages/{group_id}";
    const GROUP: &str = "/a/{slug}/g/{group_id}";
    const PATIENT: &str = "/a/{slug}/patients/{patient_id}";
    const TOPIC: &str = "/a/{slug}/t/{topic_id}";
    const COMMENT: &str = "/a/{slug}/t/{topic_id}/c/{comment_id}";
    Router::new()
        .route("/groups", get(groups::show))
        .route("/groups/list", get(groups::fragment))
        .route("/search", get(search::show))
        // Direct messages; a conversation is read and answered on its topic's page.
        .route(messages::PATH, get(messages::list))
        .route("/messages/list", get(messages::fragment))
        .route(
            "/a/{slug}/messages/new",
            get(messages::show_new).post(messages::send),
        )
        .route(
            &format!("{CONVERSATION}/add"),
            get(messages::show_add).post(messages::add),
        )
        .route(&format!("{CONVERSATION}/leave"), post(messages::leave))
        .route(
            "/a/{slug}/groups/new",
            get(groups::show_new).post(groups::create),
        )
        .route(GROUP, get(group::show))
        .route(&format!("{GROUP}/topics"), get(group::topics_fragment))
        .route(&format!("{GROUP}/join"), post(groups::request_to_join))
        .route(
            &format!("{GROUP}/invitation"),
            post(groups::answer_invitation),
        )
        .route(&format!("{GROUP}/invite"), post(group::invite))
        .route(&format!("{GROUP}/invite-email"), post(group::invite_email))
        .route(&format!("{GROUP}/invite-team"), post(group::invite_team))
        .route(&format!("{GROUP}/invite-new"), post(group::invite_new))
        .route(&format!("{GROUP}/members/remove"), post(group::remove_many))
        .route(
            &format!("{GROUP}/requests/{{user_id}}"),
            post(group::answer_request),
        )
        .route(
            &format!("{GROUP}/members/{{user_id}}/remove"),
            post(group::remove_member),
        )
        .route(
            &format!("{GROUP}/members/{{user_id}}/role"),
            post(group::set_role),
        )
        .route(
            &format!("{GROUP}/members/{{user_id}}/until"),
            post(group::set_until),
        )
        // Calendars and the duty rotation.
        .route("/calendar", get(calendar::show))
        .route("/calendar/absences", post(calendar::add_absence))
        .route(
            "/calendar/absences/{id}/delete",
            post(calendar::delete_absence),
        )
        .route("/calendar/feeds", post(calendar::create_feed))
        .route("/calendar/feeds/{id}/revoke", post(calendar::revoke_feed))
        .route(&format!("{GROUP}/calendar"), get(calendar::group_show))
        .route(
            &format!("{GROUP}/calendar/events"),
            post(calendar::create_event),
        )
        .route(
            &format!("{GROUP}/calendar/events/{{event_id}}/edit"),
            get(calendar::edit_event).post(calendar::update_event),
        )
        .route(
            &format!("{GROUP}/calendar/events/{{event_id}}/delete"),
            post(calendar::delete_event),
        )
        .route(
            &format!("{GROUP}/calendar/events/{{event_id}}/cancel"),
            post(calendar::cancel_occurrence),
        )
        .route(&format!("{GROUP}/duty"), get(duty::show))
        .route(&format!("{GROUP}/duty/settings"), post(duty::settings))
        .route(&format!("{GROUP}/duty/draft"), post(duty::draft))
        .route(&format!("{GROUP}/duty/assign"), post(duty::assign))
        .route(&format!("{GROUP}/duty/publish"), post(duty::publish))
        .route(&format!("{GROUP}/duty/swaps"), post(duty::request_swap))
        .route(
            &format!("{GROUP}/duty/swaps/{{swap_id}}"),
            post(duty::answer_swap),
        )
        .route(&format!("{GROUP}/files"), get(files::show))
        .route("/a/{slug}/files/{file_id}", get(files::original))
        .route("/a/{slug}/files/{file_id}/preview", get(files::preview))
        .route("/a/{slug}/files/{file_id}/thumb", get(files::thumbnail))
        .route("/a/{slug}/files/{file_id}/delete", post(files::delete))
        .route(&format!("{GROUP}/settings"), post(group::settings))
        .route(&format!("{GROUP}/read"), post(group::mark_read))
        .route(&format!("{GROUP}/leave"), post(group::leave))
        .route(
            &format!("{GROUP}/new"),
            get(new_topic::show).post(new_topic::create),
        )
        .route(TOPIC, get(topic::show))
        .route(
            &format!("{TOPIC}/comments"),
            get(topic::comments_fragment).post(topic::reply),
        )
        .route(&format!("{TOPIC}/settings"), post(topic::settings))
        .route(&format!("{TOPIC}/seen"), post(topic::seen))
        .route(COMMENT, get(topic::open_comment))
        .route(&format!("{COMMENT}/edit"), post(topic::edit))
        .route(&format!("{COMMENT}/delete"), post(topic::delete))
        .route(&format!("{COMMENT}/ack"), post(topic::acknowledge))
        .route(
            &format!("{COMMENT}/urgent-ack"),
            post(topic::acknowledge_urgent),
        )
        .route(&format!("{COMMENT}/readers"), get(topic::readers))
        // The patient register.
        .route("/patients", get(patients::to_first))
        .route("/a/{slug}/patients", get(patients::list))
        .route("/a/{slug}/patients.csv", get(patient_files::register_csv))
        .route(
            &format!("{GROUP}/record.json"),
            get(patient_files::group_record),
        )
        .route(
            "/a/{slug}/patients/new",
            get(patients::show_new).post(patients::create),
        )
        .route(PATIENT, get(patients::show))
        .route(
            &format!("{PATIENT}/edit"),
            get(patients::show_edit).post(patients::update),
        )
}

/// The routes that need no services, so tests can call them without a database.
fn public_router() -> Router {
    Router::new()
        .route("/lang/{code}", get(pages::language::switch))
        .route("/static/{file}", get(assets::serve))
        // The service worker that shows web pushes: at the root, so its scope is the site.
        .route("/sw.js", get(pages::push::service_worker))
        .fallback(pages::not_found::show)
}
