//! `TestChat`: the product in process, on the in-memory embedded store or on DynamoDB (moto),
//! with a fixed clock, for use-case tests that need no server process; `router()` is every
//! route behind the edge, for `tower::ServiceExt::oneshot` tests.

use super::moto::Moto;
use serde_json::{json, Map, Value};
use shared::domain::caller::Session;
use shared::domain::clock::FixedClock;
use shared::service::channels::ChannelQuery;
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::dynamodb::DynamoDb;
use shared::store::embedded::Embedded;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const API_KEY: &str = "test-key";
pub const API_SECRET: &str = "test-secret";

pub struct TestChat {
    pub chat: Chat,
    pub clock: Arc<FixedClock>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

fn keys() -> AppKeys {
    AppKeys {
        api_key: API_KEY.into(),
        api_secret: API_SECRET.into(),
    }
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

impl TestChat {
    async fn on(
        store: Arc<dyn shared::store::Table>,
        keep: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        let clock = Arc::new(FixedClock::new(chrono::Utc::now()));
        let chat = Chat::new(store, clock.clone(), keys(), TaskMode::Inline);
        chat.bootstrap().await.expect("bootstrap");
        TestChat {
            chat,
            clock,
            _keep: keep,
        }
    }

    /// On the in-memory embedded store.
    pub async fn embedded() -> Self {
        Self::on(
            Arc::new(Embedded::in_memory().expect("store")),
            Box::new(()),
        )
        .await
    }

    /// On DynamoDB: tables of its own on the shared moto server.
    pub async fn dynamodb() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let moto = Moto::shared();
        let config = moto.sdk_config();
        let prefix = format!("chat{}-", NEXT.fetch_add(1, Ordering::Relaxed));
        let store = DynamoDb::new(
            aws_sdk_dynamodb::Client::new(&config),
            aws_sdk_dynamodbstreams::Client::new(&config),
            prefix,
        );
        store.create_tables().await.expect("tables on moto");
        Self::on(Arc::new(store), Box::new(moto)).await
    }

    /// A server-side session with the app's current settings.
    pub async fn server(&self) -> Session {
        Session::server(self.chat.app_settings().await.expect("settings"))
    }

    /// A session of `user_id`, as its token would give.
    pub async fn user(&self, user_id: &str) -> Session {
        shared::realtime::connect::user_session(&self.chat, user_id)
            .await
            .expect("user session")
    }

    pub async fn users(&self, ids: &[&str]) {
        let users = ids.iter().map(|id| obj(json!({ "id": id }))).collect();
        self.chat
            .upsert_users(&self.server().await, users)
            .await
            .expect("users");
    }

    /// A `messaging` channel with these members, created by the first.
    pub async fn channel(&self, id: &str, members: &[&str]) {
        let create = ChannelQuery {
            data: Some(obj(
                json!({ "members": members, "created_by_id": members[0] }),
            )),
            ..Default::default()
        };
        self.chat
            .get_or_create_channel(&self.server().await, "messaging", Some(id), create)
            .await
            .expect("channel");
    }

    /// The outbox events of type `kind` written so far, oldest first (with their scopes).
    pub async fn outbox(&self, kind: &str) -> Vec<shared::store::Item> {
        let feed = self
            .chat
            .store
            .read_changes(shared::store::TableName::Events, None, 10_000)
            .await
            .expect("events feed");
        feed.changes
            .into_iter()
            .filter_map(|c| c.new)
            .filter(|i| i.data["type"] == kind)
            .collect()
    }

    /// Every route behind the edge, as chat-local and the functions serve them.
    pub fn router(&self) -> axum::Router {
        let routes = shared::http::app::routes()
            .merge(shared::http::users::routes())
            .merge(shared::http::channels::routes())
            .merge(shared::http::messages::routes())
            .merge(shared::http::uploads::routes());
        shared::http::with_edge(routes, self.chat.clone())
    }
}

/// An HS256 token signed with the test app's secret (`user_id` absent: a server token).
pub fn token(user_id: Option<&str>) -> String {
    let claims = match user_id {
        Some(u) => json!({ "user_id": u }),
        None => json!({ "server": true }),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(API_SECRET.as_bytes()),
    )
    .expect("token")
}

/// The outbox as the event pipeline reads it: each call gives the events committed since the
/// last one.
#[derive(Default)]
pub struct OutboxFeed(Option<shared::store::ChangePosition>);

impl OutboxFeed {
    pub async fn next(&mut self, t: &TestChat) -> Vec<shared::hooks::OutboxEvent> {
        let batch = t
            .chat
            .store
            .read_changes(shared::store::TableName::Events, self.0.as_ref(), 10_000)
            .await
            .expect("outbox");
        self.0 = Some(batch.next);
        batch
            .changes
            .into_iter()
            .filter_map(|c| c.new)
            .map(|i| shared::hooks::OutboxEvent {
                scope: i.pk,
                sk: i.sk,
                event: i.data,
            })
            .collect()
    }
}
