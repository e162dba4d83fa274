//! Routes of the app function: app settings, channel types, roles, permissions, tasks and the
//! exports they run.

use super::reply::{Body, HttpResult, Params, Reply};
use crate::domain::caller::Caller;
use crate::domain::caller::Session;
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::command::Command;
use crate::service::roles::permission_json;
use crate::service::Chat;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn routes() -> Router<Chat> {
    Router::new()
        .route("/app", get(get_app).patch(update_app))
        .route(
            "/channeltypes",
            get(list_channel_types).post(create_channel_type),
        )
        .route(
            "/channeltypes/{name}",
            get(get_channel_type)
                .put(update_channel_type)
                .delete(delete_channel_type),
        )
        .route("/roles", get(list_roles).post(create_role))
        .route("/roles/{name}", axum::routing::delete(delete_role))
        .route("/permissions", get(list_permissions))
        .route("/permissions/{id}", get(get_permission))
        .route("/tasks/{id}", get(get_task))
        .route("/connect/endpoint", get(session_endpoint))
        .route("/rate_limits", get(rate_limits))
        .route("/blocklists", get(list_blocklists).post(create_blocklist))
        .route(
            "/blocklists/{name}",
            get(get_blocklist)
                .put(update_blocklist)
                .delete(delete_blocklist),
        )
        .route("/check_sqs", axum::routing::post(check_sqs))
        .route("/check_sns", axum::routing::post(check_sns))
        .route("/check_push", axum::routing::post(check_push))
        .route(
            "/push_providers",
            get(list_push_providers).post(upsert_push_provider),
        )
        .route(
            "/push_providers/{type}/{name}",
            axum::routing::delete(delete_push_provider),
        )
        .route("/event_hooks/failures", get(hook_failures))
        .route(
            "/event_hooks/failures/replay",
            axum::routing::post(replay_hook_failures),
        )
        .merge(super::exports::task_routes())
        .merge(super::commands::routes())
}

/// `GET /event_hooks/failures` (server-side): events a hook did not take, kept 14 days.
async fn hook_failures(State(chat): State<Chat>, session: Session) -> HttpResult {
    session
        .caller
        .require_server("reading failed hook deliveries")?;
    let failures = chat.hook_failures().await?;
    Ok(Reply::json(json!({ "failures": failures })))
}

/// `POST /event_hooks/failures/replay` (server-side): sends the kept failures again to their
/// hooks; the ones taken are forgotten.
async fn replay_hook_failures(State(chat): State<Chat>, session: Session) -> HttpResult {
    session
        .caller
        .require_server("replaying failed hook deliveries")?;
    let hooks = crate::hooks::Hooks::new(&chat);
    let (replayed, kept) = hooks.replay_failures(&chat).await?;
    Ok(Reply::json(json!({ "replayed": replayed, "kept": kept })))
}

async fn create_blocklist(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<crate::domain::blocklist::BlocklistRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.create_blocklist(&session, req).await?))
}

async fn list_blocklists(State(chat): State<Chat>, session: Session) -> HttpResult {
    Ok(Reply::json(chat.list_blocklists(&session).await?))
}

async fn get_blocklist(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.get_blocklist(&session, &name).await?))
}

async fn update_blocklist(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
    Body(req): Body<crate::domain::blocklist::BlocklistRequest>,
) -> HttpResult {
    Ok(Reply::json(
        chat.update_blocklist(&session, &name, req).await?,
    ))
}

async fn delete_blocklist(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.delete_blocklist(&session, &name).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpsertPushProvider {
    push_provider: Option<Value>,
}

async fn upsert_push_provider(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<UpsertPushProvider>,
) -> HttpResult {
    Ok(Reply::json(
        chat.upsert_push_provider(&session, body.push_provider)
            .await?,
    ))
}

async fn list_push_providers(State(chat): State<Chat>, session: Session) -> HttpResult {
    Ok(Reply::json(chat.list_push_providers(&session).await?))
}

async fn delete_push_provider(
    State(chat): State<Chat>,
    session: Session,
    Path((kind, name)): Path<(String, String)>,
) -> HttpResult {
    Ok(Reply::json(
        chat.delete_push_provider(&session, &kind, &name).await?,
    ))
}

/// `POST /check_push` (server-side): a push's payload for a message and user.
async fn check_push(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<crate::service::push::CheckPush>,
) -> HttpResult {
    Ok(Reply::json(chat.check_push(&session, req).await?))
}

/// `POST /check_sqs` (server-side): a test message to the queue.
async fn check_sqs(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<crate::hooks::checks::CheckSqs>,
) -> HttpResult {
    Ok(Reply::json(chat.check_sqs(&session, body).await?))
}

/// `POST /check_sns` (server-side): a test message to the topic.
async fn check_sns(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<crate::hooks::checks::CheckSns>,
) -> HttpResult {
    Ok(Reply::json(chat.check_sns(&session, body).await?))
}

/// Endpoint discovery (like Chime's GetMessagingSessionEndpoint): where to open the WebSocket.
/// `CHAT_WS_URL` when the deployment sets it (API Gateway's WebSocket URL or a custom domain),
/// else the `/connect` of the host the request came to.
async fn session_endpoint(_session: Session, headers: axum::http::HeaderMap) -> HttpResult {
    let url = match std::env::var("CHAT_WS_URL").ok().filter(|u| !u.is_empty()) {
        Some(u) => u,
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            let secure = headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                == Some("https");
            format!("{}://{host}/connect", if secure { "wss" } else { "ws" })
        }
    };
    Ok(Reply::json(
        serde_json::json!({ "Endpoint": { "Url": url } }),
    ))
}

/// `GET /rate_limits` (server-side): the app's budgets per platform (`server_side`, `android`,
/// `ios`, `web`, `unity` flags; none means the first four) and endpoint (`endpoints`, comma-separated).
async fn rate_limits(session: Session, params: Params) -> HttpResult {
    use super::rate_limit::{Platform, LIMITER};
    session.caller.require_server("reading rate limits")?;
    let mut asked = Vec::new();
    for p in Platform::ALL {
        if params.flag(p.name())? == Some(true) {
            asked.push(p);
        }
    }
    if asked.is_empty() {
        asked = vec![
            Platform::ServerSide,
            Platform::Android,
            Platform::Ios,
            Platform::Web,
        ];
    }
    let endpoints: Vec<&str> = params
        .get("endpoints")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut out = Map::new();
    for platform in asked {
        let budgets: Map<String, Value> = LIMITER
            .app_budgets(platform, &endpoints)
            .into_iter()
            .map(|(name, b)| {
                (
                    name.to_string(),
                    json!({"limit": b.limit, "remaining": b.remaining, "reset": b.reset}),
                )
            })
            .collect();
        out.insert(platform.name().into(), Value::Object(budgets));
    }
    Ok(Reply(out))
}

/// `GET /app`. Server-side calls read every setting (push settings as `push_notifications`)
/// with the channel types' configs; a user or
/// anonymous caller reads only what Stream's client-side API lists (its upload rules and a few
/// flags), never grants, hooks or credentials.
async fn get_app(State(chat): State<Chat>, session: Session) -> HttpResult {
    if !session.caller.is_server() {
        return Ok(Reply::json(
            json!({ "app": client_app(&chat, &session.settings) }),
        ));
    }
    let mut app = match serde_json::to_value(session.settings.as_ref()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    // Push credentials are written, never read back: `push_notifications` says what is set.
    for config in [
        "push_config",
        "apn_config",
        "firebase_config",
        "huawei_config",
        "xiaomi_config",
    ] {
        app.remove(config);
    }
    app.insert(
        "push_notifications".into(),
        chat.push_notifications_wire(&session.settings).await?,
    );
    let custom = chat.custom_commands().await?;
    let configs: Map<String, Value> = chat
        .list_channel_types_raw()
        .await?
        .iter()
        .map(|ct| {
            (
                ct.name.clone(),
                Value::Object(ct.to_channel_config(&custom)),
            )
        })
        .collect();
    app.insert("channel_configs".into(), Value::Object(configs));
    Ok(Reply::json(json!({"app": app})))
}

/// The client-side app (Stream's client-side `AppResponseFields`). `id` is a stable number
/// derived from the API key (one app per deployment); `placement` is the AWS region the API
/// runs in (`local` on chat-local).
fn client_app(chat: &Chat, settings: &crate::domain::app_settings::AppSettings) -> Value {
    let id = chat.keys.api_key.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ b as u32).wrapping_mul(16_777_619)
    }) & 0x7fff_ffff;
    let placement = std::env::var("AWS_REGION").unwrap_or_else(|_| "local".into());
    json!({
        "id": id,
        "name": settings.name,
        "placement": placement,
        "async_url_enrich_enabled": settings.async_url_enrich_enabled,
        "auto_translation_enabled": settings.auto_translation_enabled,
        "file_upload_config": settings.file_upload_config,
        "image_upload_config": settings.image_upload_config,
    })
}

async fn update_app(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<Map<String, Value>>,
) -> HttpResult {
    chat.update_app_settings(&session, &body).await?;
    Ok(Reply::empty())
}

/// Create and update answer with the type as stored (`commands` as names, as the SDK tests
/// expect); get and list expand `commands` into objects.
fn channel_type_reply(ct: &ChannelTypeConfig) -> Reply {
    Reply::json(serde_json::to_value(ct).unwrap_or_default())
}

fn channel_type_response(ct: &ChannelTypeConfig, custom: &[Command]) -> Value {
    Value::Object(ct.to_response(custom))
}

async fn list_channel_types(State(chat): State<Chat>, session: Session) -> HttpResult {
    let custom = chat.custom_commands().await?;
    let types: Map<String, Value> = chat
        .list_channel_types(&session)
        .await?
        .iter()
        .map(|ct| (ct.name.clone(), channel_type_response(ct, &custom)))
        .collect();
    Ok(Reply::json(json!({"channel_types": types})))
}

async fn create_channel_type(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<Map<String, Value>>,
) -> HttpResult {
    Ok(channel_type_reply(
        &chat.create_channel_type(&session, &body).await?,
    ))
}

async fn get_channel_type(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
) -> HttpResult {
    let ct = chat.get_channel_type(&session, &name).await?;
    Ok(Reply::json(channel_type_response(
        &ct,
        &chat.custom_commands().await?,
    )))
}

async fn update_channel_type(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> HttpResult {
    Ok(channel_type_reply(
        &chat.update_channel_type(&session, &name, &body).await?,
    ))
}

async fn delete_channel_type(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
) -> HttpResult {
    chat.delete_channel_type(&session, &name).await?;
    Ok(Reply::empty())
}

async fn list_roles(State(chat): State<Chat>, session: Session) -> HttpResult {
    let roles = chat.list_roles(&session).await?;
    Ok(Reply::json(json!({"roles": roles})))
}

#[derive(Deserialize)]
struct CreateRole {
    name: String,
}

async fn create_role(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<CreateRole>,
) -> HttpResult {
    let role = chat.create_role(&session, &body.name).await?;
    Ok(Reply::json(json!({"role": role})))
}

async fn delete_role(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
) -> HttpResult {
    chat.delete_role(&session, &name).await?;
    Ok(Reply::empty())
}

fn require_server(caller: &Caller, what: &str) -> Result<(), super::reply::ErrorReply> {
    caller.require_server(what).map_err(Into::into)
}

async fn list_permissions(State(chat): State<Chat>, session: Session) -> HttpResult {
    require_server(&session.caller, "listing permissions")?;
    let list: Vec<Value> = chat
        .list_permissions()
        .iter()
        .map(permission_json)
        .collect();
    Ok(Reply::json(json!({"permissions": list})))
}

async fn get_permission(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    require_server(&session.caller, "reading permissions")?;
    Ok(Reply::json(
        json!({"permission": permission_json(chat.get_permission(&id)?)}),
    ))
}

async fn get_task(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    require_server(&session.caller, "reading tasks")?;
    Ok(Reply::json(chat.task_status(&id).await?))
}
