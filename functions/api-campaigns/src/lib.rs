//! The api-campaigns function: segments and their targets, campaigns, their start and stop.
//! Its routes are `shared::http::campaigns::routes`; this crate only binds them to the edge.

use axum::Router;
use shared::service::Chat;

/// The routes this function serves, without the edge (chat-local merges them with the others).
pub fn routes() -> Router<Chat> {
    shared::http::campaigns::routes()
}

/// The complete router: routes plus the shared edge (auth envelope, limits, logs, health).
pub fn router(chat: Chat) -> Router {
    shared::http::with_edge(routes(), chat)
}
