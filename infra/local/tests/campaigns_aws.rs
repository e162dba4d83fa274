//! The campaign worker on moto: a campaign started on DynamoDB queues its fan-out on an SQS
//! queue; the worker's handler runs the queue's records as Lambda would (10 a batch, failed
//! records left for a retry; 10 receivers a batch). One receiver's send fails once (the store refuses its message):
//! only that record is reported, it comes back and completes, nobody gets two messages, and a
//! batch delivered again (a Lambda retry after a timeout) changes nothing.

#[allow(dead_code)]
#[path = "../../../shared/tests/support/moto.rs"]
mod moto;

use async_trait::async_trait;
use serde_json::{json, Value};
use shared::domain::caller::Session;
use shared::domain::campaign::{CampaignFields, SegmentFields};
use shared::domain::clock::SystemClock;
use shared::service::campaigns::{CampaignLimits, SqsCampaignQueue};
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::dynamodb::DynamoDb;
use shared::store::{
    ChangeBatch, ChangePosition, Item, Page, Query, StoreError, Table, TableName, Write,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const RECEIVERS: usize = 40;
const VICTIM: &str = "cw-victim";

/// DynamoDB on moto, refusing the first transaction that writes the victim's message.
struct RefusesOnce {
    inner: DynamoDb,
    refused: AtomicUsize,
}

#[async_trait]
impl Table for RefusesOnce {
    async fn get(&self, table: TableName, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.inner.get(table, pk, sk).await
    }
    async fn batch_get(
        &self,
        table: TableName,
        keys: &[(String, String)],
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.batch_get(table, keys).await
    }
    async fn write(&self, write: Write) -> Result<(), StoreError> {
        self.inner.write(write).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let victim = writes.iter().any(|w| {
            matches!(w, Write::Put { table: TableName::Messages, item, .. }
                if item.data.to_string().contains("Hello Victim"))
        });
        if victim && self.refused.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(StoreError::Backend("refused once by the test".into()));
        }
        self.inner.transact(writes).await
    }
    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn read_changes(
        &self,
        table: TableName,
        from: Option<&ChangePosition>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError> {
        self.inner.read_changes(table, from, limit).await
    }
}

#[tokio::test]
async fn the_worker_runs_sqs_batches_and_retries_only_the_failed_records() {
    let moto = moto::Moto::shared();
    let config = moto.sdk_config();
    let prefix = format!("cw{}-", std::process::id());
    let dynamo = DynamoDb::new(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_dynamodbstreams::Client::new(&config),
        &prefix,
    );
    dynamo.create_tables().await.expect("tables on moto");
    let store = Arc::new(RefusesOnce {
        inner: dynamo,
        refused: AtomicUsize::new(0),
    });
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{prefix}campaigns"))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_string();
    let chat = Chat::new(
        store.clone(),
        Arc::new(SystemClock),
        AppKeys {
            api_key: "cw-key".into(),
            api_secret: "cw-secret".into(),
        },
        TaskMode::Inline,
    )
    .with_campaign_queue(Arc::new(SqsCampaignQueue::new(sqs.clone(), &queue_url)))
    .with_campaign_limits(CampaignLimits {
        batch: 10,
        concurrency: 4,
    });
    chat.bootstrap().await.expect("bootstrap");
    let server = Session::server(chat.app_settings().await.expect("settings"));

    let mut users: Vec<serde_json::Map<String, Value>> = (0..RECEIVERS - 1)
        .map(|i| obj(json!({"id": format!("cw-{i:03}"), "name": format!("N{i}")})))
        .collect();
    users.push(obj(json!({"id": VICTIM, "name": "Victim"})));
    users.push(obj(json!({"id": "cw-sender", "name": "Sender"})));
    for chunk in users.chunks(100) {
        chat.upsert_users(&server, chunk.to_vec())
            .await
            .expect("users");
    }
    let fields: SegmentFields =
        serde_json::from_value(json!({"type": "user", "name": "everyone"})).expect("fields");
    let segment = chat.create_segment(&server, fields).await.expect("segment");
    let segment_id = segment["segment"]["id"].as_str().expect("id").to_string();
    let targets: Vec<String> = users
        .iter()
        .filter_map(|u| u["id"].as_str())
        .filter(|id| *id != "cw-sender")
        .map(str::to_string)
        .collect();
    chat.add_segment_targets(&server, &segment_id, targets.clone())
        .await
        .expect("targets");
    let fields: CampaignFields = serde_json::from_value(json!({
        "sender_id": "cw-sender",
        "segment_ids": [segment_id],
        "message_template": {"text": "Hello {{ receiver.name }}"},
        "create_channels": true,
        "channel_template": {"type": "messaging", "id": "cw-{{ receiver.id }}"},
    }))
    .expect("fields");
    let created = chat
        .create_campaign(&server, fields)
        .await
        .expect("campaign");
    let id = created["campaign"]["id"].as_str().expect("id").to_string();
    chat.start_campaign(&server, &id, Default::default())
        .await
        .expect("start");

    // Lambda's loop: a batch of up to 10 records, the reported ones left on the queue.
    let mut reported = Vec::new();
    let mut delivered_batch: Option<Value> = None;
    for _ in 0..200 {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(1)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let messages = got.messages();
        if messages.is_empty() {
            let status = campaign(&chat, &server, &id).await["status"].clone();
            if status == "completed" {
                break;
            }
            continue;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id().unwrap_or_default(),
                    "receiptHandle": m.receipt_handle().unwrap_or_default(),
                    "body": m.body().unwrap_or_default(),
                    "eventSource": "aws:sqs",
                })
            })
            .collect();
        let event = json!({ "Records": records });
        let answer = chat.on_campaign_queue_event(&event).await;
        let failed: Vec<String> = answer["batchItemFailures"]
            .as_array()
            .expect("failures")
            .iter()
            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
            .collect();
        for m in messages {
            let mid = m.message_id().unwrap_or_default().to_string();
            if failed.contains(&mid) {
                reported.push(m.body().unwrap_or_default().to_string());
                continue;
            }
            if delivered_batch.is_none() && m.body().unwrap_or_default().contains("deliver") {
                delivered_batch = Some(json!({ "Records": [{
                    "messageId": mid, "body": m.body().unwrap_or_default(), "eventSource": "aws:sqs",
                }]}));
            }
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    let done = campaign(&chat, &server, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        reported.len(),
        1,
        "only the batch with the refused send is retried: {reported:?}"
    );
    assert!(reported[0].contains(VICTIM), "{reported:?}");
    assert_eq!(
        store.refused.load(Ordering::SeqCst),
        2,
        "refused once, then sent"
    );

    // A batch delivered again changes nothing.
    let again = chat
        .on_campaign_queue_event(&delivered_batch.expect("a delivered batch"))
        .await;
    assert_eq!(again["batchItemFailures"], json!([]));
    let stats = campaign(&chat, &server, &id).await["stats"].clone();
    assert_eq!(stats["stats_messages_sent"], RECEIVERS, "{stats}");
    assert_eq!(stats["stats_channels_created"], RECEIVERS, "{stats}");
    assert_eq!(stats["progress"], 1.0, "{stats}");

    // Everyone has the message once, rendered for them.
    for target in &targets {
        let state = chat
            .get_or_create_channel(
                &server,
                "messaging",
                Some(&format!("cw-{target}")),
                Default::default(),
            )
            .await
            .expect("channel");
        let messages = state["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1, "{target}: {messages:?}");
        assert_eq!(messages[0]["campaign_id"], json!(id));
        assert!(
            messages[0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Hello ") && t.len() > 6),
            "{}",
            messages[0]
        );
    }
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().expect("object").clone()
}

async fn campaign(chat: &Chat, server: &Session, id: &str) -> Value {
    chat.get_campaign(server, id, Default::default())
        .await
        .expect("campaign")["campaign"]
        .clone()
}
