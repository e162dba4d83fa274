//! Routes of the campaigns function: segments and their targets, campaigns and their start
//! and stop (all server-side).

use super::reply::{Body, HttpResult, Params, Reply};
use crate::domain::caller::Session;
use crate::domain::campaign::{CampaignFields, SegmentFields};
use crate::service::campaigns::{QueryCampaigns, StartCampaign, UsersPage};
use crate::service::segments::QueryPage;
use crate::service::Chat;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub fn routes() -> Router<Chat> {
    Router::new()
        .route("/segments", post(create_segment))
        .route("/segments/query", post(query_segments))
        .route(
            "/segments/{id}",
            get(get_segment).put(update_segment).delete(delete_segment),
        )
        .route("/segments/{id}/addtargets", post(add_targets))
        .route("/segments/{id}/deletetargets", post(delete_targets))
        .route("/segments/{id}/targets/query", post(query_targets))
        .route("/segments/{id}/target/{target_id}", get(target_exists))
        .route("/campaigns", post(create_campaign))
        .route("/campaigns/query", post(query_campaigns))
        .route(
            "/campaigns/{id}",
            get(get_campaign)
                .put(update_campaign)
                .delete(delete_campaign),
        )
        .route("/campaigns/{id}/start", post(start_campaign))
        .route("/campaigns/{id}/stop", post(stop_campaign))
}

#[derive(Deserialize)]
struct Targets {
    #[serde(default)]
    target_ids: Vec<String>,
}

async fn create_segment(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<SegmentFields>,
) -> HttpResult {
    Ok(Reply::json(chat.create_segment(&session, req).await?))
}

async fn query_segments(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<QueryPage>,
) -> HttpResult {
    Ok(Reply::json(chat.query_segments(&session, req).await?))
}

async fn get_segment(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.get_segment(&session, &id).await?))
}

async fn update_segment(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<SegmentFields>,
) -> HttpResult {
    Ok(Reply::json(chat.update_segment(&session, &id, req).await?))
}

async fn delete_segment(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.delete_segment(&session, &id).await?))
}

async fn add_targets(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<Targets>,
) -> HttpResult {
    Ok(Reply::json(
        chat.add_segment_targets(&session, &id, req.target_ids)
            .await?,
    ))
}

async fn delete_targets(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<Targets>,
) -> HttpResult {
    Ok(Reply::json(
        chat.delete_segment_targets(&session, &id, req.target_ids)
            .await?,
    ))
}

async fn query_targets(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<QueryPage>,
) -> HttpResult {
    Ok(Reply::json(
        chat.query_segment_targets(&session, &id, req).await?,
    ))
}

async fn target_exists(
    State(chat): State<Chat>,
    session: Session,
    Path((id, target_id)): Path<(String, String)>,
) -> HttpResult {
    Ok(Reply::json(
        chat.segment_target_exists(&session, &id, &target_id)
            .await?,
    ))
}

async fn create_campaign(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<CampaignFields>,
) -> HttpResult {
    Ok(Reply::json(chat.create_campaign(&session, req).await?))
}

async fn query_campaigns(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<QueryCampaigns>,
) -> HttpResult {
    Ok(Reply::json(chat.query_campaigns(&session, req).await?))
}

async fn get_campaign(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    params: Params,
) -> HttpResult {
    let users = UsersPage {
        limit: params.number("limit")?,
        next: params.get("next").map(str::to_string),
        prev: params.get("prev").map(str::to_string),
    };
    Ok(Reply::json(chat.get_campaign(&session, &id, users).await?))
}

async fn update_campaign(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<CampaignFields>,
) -> HttpResult {
    Ok(Reply::json(chat.update_campaign(&session, &id, req).await?))
}

async fn delete_campaign(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.delete_campaign(&session, &id).await?))
}

async fn start_campaign(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<StartCampaign>,
) -> HttpResult {
    Ok(Reply::json(chat.start_campaign(&session, &id, req).await?))
}

async fn stop_campaign(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.stop_campaign(&session, &id).await?))
}
