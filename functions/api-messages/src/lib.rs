//! The api-messages function: messages (send, read, update, delete) and their files (uploads
//! and the links that serve them). Its routes are `shared::http::messages::routes` and
//! `shared::http::uploads::routes`; this crate only binds them to the edge.

use axum::Router;
use shared::service::Chat;

/// The routes this function serves, without the edge (chat-local merges them with the others).
pub fn routes() -> Router<Chat> {
    shared::http::messages::routes().merge(shared::http::uploads::routes())
}

/// The complete router: routes plus the shared edge (auth envelope, limits, logs, health).
pub fn router(chat: Chat) -> Router {
    shared::http::with_edge(routes(), chat)
}
