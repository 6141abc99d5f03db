//! `/api`: the dashboard's and admins' REST surface. Every route but `ping` and `login` needs a session, and every
//! object is looked up by its id *and* the session's user (another user's id is a 404). Mutations rebuild the
//! snapshot. Arrows: `api` → `ingress` (the playground serves chat like `/v1`), `runtime`, `guard`; nothing below
//! imports `api`.

pub mod dashboard;
pub mod gateway_keys;
pub mod key_check;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod profiles;
pub mod session;
pub mod settings;
pub mod transfer;
pub mod users;
