//! Real time in AWS: the API Gateway WebSocket routes (`$connect`, `$default`, `$disconnect`)
//! and the fan-out (DynamoDB Streams, and the queue large audiences are split to), as functions
//! over the raw Lambda events. API Gateway cannot
//! push during `$connect`, so the hello (or a refusal's error frame) goes out when the
//! connection record's insert reaches the fan-out.

use super::connect;
use super::delivery::{Delivery, FanoutBatch};
use super::{Connection, Gateway};
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::TableName;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The host name connections through API Gateway are recorded under.
pub const AWS_HOST: &str = "apigw";

fn connection_id(event: &Value) -> Result<String, ApiError> {
    event["requestContext"]["connectionId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ApiError::input("the event has no requestContext.connectionId"))
}

fn ok() -> Value {
    json!({ "statusCode": 200 })
}

/// `$connect`.
pub async fn on_connect(chat: &Chat, event: &Value) -> Result<Value, ApiError> {
    let conn = connection_id(event)?;
    let query: HashMap<String, String> = event["queryStringParameters"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let context = &event["requestContext"];
    let arrival = connect::Arrival {
        host: context["domainName"]
            .as_str()
            .or_else(|| event["headers"]["Host"].as_str())
            .unwrap_or_default()
            .to_string(),
        paths: vec![
            format!("/{}", context["stage"].as_str().unwrap_or_default()),
            "/connect".to_string(),
        ],
        ip: context["identity"]["sourceIp"].as_str().map(str::to_string),
    };
    match connect::open(chat, &query, &arrival).await {
        Ok(opened) => {
            let anonymous = matches!(
                opened.session.caller,
                crate::domain::caller::Caller::Anonymous
            );
            let prefetch =
                !anonymous && query.get("prefetch-on").map(String::as_str) == Some("connect");
            let first = chat
                .open_connection(&conn, &opened.user_id, AWS_HOST, anonymous, prefetch)
                .await?;
            if first && !anonymous {
                chat.set_online(&opened.user_id, true).await?;
            }
        }
        // Accepted, then answered with the error frame and closed, as the client expects.
        Err(e) => {
            chat.record_refused_connection(&conn, connect::error_frame(&e))
                .await?
        }
    }
    Ok(ok())
}

/// `$default`: the client's frames (only its `health.check` ping) are answered, and keep the
/// connection's records from expiring.
pub async fn on_message(
    chat: &Chat,
    gateway: &dyn Gateway,
    event: &Value,
) -> Result<Value, ApiError> {
    let conn = connection_id(event)?;
    if event["body"]
        .as_str()
        .unwrap_or_default()
        .contains("health.check")
    {
        let frame = connect::health_check(chat, &conn).to_string();
        if let Err(super::GatewayError::Gone) = gateway.post(&conn, &frame).await {
            chat.close_connection(&conn).await?;
        } else {
            chat.refresh_connection(&conn).await?;
        }
    }
    Ok(ok())
}

/// `$disconnect`.
pub async fn on_disconnect(chat: &Chat, event: &Value) -> Result<Value, ApiError> {
    let conn = connection_id(event)?;
    let record = chat.connection(&conn).await?;
    let last = chat.close_connection(&conn).await?;
    if let Some(c) = record {
        if last && !c.anonymous && c.refused.is_none() {
            chat.set_online(&c.user_id, false).await?;
        }
    }
    Ok(ok())
}

/// The table a stream record comes from, by its ARN (`.../table/<prefix><name>/stream/...`).
fn source_table(record: &Value) -> Option<TableName> {
    let arn = record["eventSourceARN"].as_str()?;
    let table = arn.split("/stream/").next()?.rsplit('/').next()?;
    TableName::ALL
        .into_iter()
        .find(|t| table.ends_with(t.as_str()))
}

/// A batch of records for the fan-out function: DynamoDB Streams records (new outbox events are
/// delivered; new connection records get their hello, or their refusal) and SQS records (parts
/// of a large audience, queued by [`Chat::deliver`]). Stream items are read back by key, so the
/// records' images do not matter.
pub async fn on_stream(chat: &Chat, out: &Delivery, event: &Value) -> Result<Value, ApiError> {
    let mut delivered = 0;
    let mut failed = Vec::new();
    for record in event["Records"].as_array().into_iter().flatten() {
        if record["eventSource"] == "aws:sqs" {
            // A batch that fails is reported alone (ReportBatchItemFailures), so the others are
            // not delivered twice.
            let batch = serde_json::from_str::<FanoutBatch>(record["body"].as_str().unwrap_or(""))
                .map_err(|e| ApiError::input(format!("a fan-out batch is unreadable: {e}")));
            match batch {
                Ok(batch) => match chat.deliver_batch(out, &batch).await {
                    Ok(n) => delivered += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "a fan-out batch failed");
                        failed.push(json!({ "itemIdentifier": record["messageId"] }));
                    }
                },
                // Unreadable: retrying cannot help.
                Err(e) => tracing::error!(error = %e, "dropping a fan-out batch"),
            }
            continue;
        }
        if record["eventName"] != "INSERT" {
            continue;
        }
        let keys = &record["dynamodb"]["Keys"];
        let (Some(pk), Some(sk)) = (keys["pk"]["S"].as_str(), keys["sk"]["S"].as_str()) else {
            continue;
        };
        match source_table(record) {
            Some(TableName::Events) => {
                if let Some(item) = chat.store.get(TableName::Events, pk, sk).await? {
                    delivered += chat.deliver(out, pk, &item.data).await?;
                }
            }
            Some(TableName::Connections) if pk.starts_with("conn#") && sk == "conn" => {
                let id = &pk["conn#".len()..];
                if let Some(conn) = chat.connection(id).await? {
                    delivered += greet(chat, out.gateway(), &conn).await?;
                }
            }
            _ => {}
        }
    }
    Ok(json!({ "delivered": delivered, "batchItemFailures": failed }))
}

/// A new connection's first frames: the hello and, when asked, its channel details; or a refused
/// connect's error frame, after which the connection is closed.
async fn greet(chat: &Chat, gateway: &dyn Gateway, conn: &Connection) -> Result<usize, ApiError> {
    let id = conn.connection_id.as_str();
    if let Some(frame) = &conn.refused {
        let _ = gateway.post(id, &frame.to_string()).await;
        let _ = gateway.close(id).await;
        chat.close_connection(id).await?;
        return Ok(1);
    }
    let mut frames = vec![connect::hello(chat, id, &conn.user_id, conn.anonymous).await?];
    if conn.prefetch {
        let session = connect::user_session(chat, &conn.user_id).await?;
        frames.extend(chat.channel_details(&session, &conn.user_id).await?);
    }
    let mut sent = 0;
    for frame in frames {
        match gateway.post(id, &frame.to_string()).await {
            Ok(()) => sent += 1,
            Err(super::GatewayError::Gone) => {
                chat.close_connection(id).await?;
                break;
            }
            Err(super::GatewayError::Other(e)) => {
                tracing::warn!(connection = id, error = %e, "greeting failed");
                break;
            }
        }
    }
    Ok(sent)
}
