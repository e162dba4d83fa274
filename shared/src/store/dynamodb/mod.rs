//! The DynamoDB Table adapter: one physical table per `TableName` (`<prefix><name>`), TTL
//! expiry enforced on every read and condition, and the change feed read from DynamoDB Streams.

use super::{
    is_live, now, validate_transaction, Change, ChangeBatch, ChangeKind, ChangePosition, Condition,
    Cursor, Index, IndexKey, Item, Page, Query, SkRange, StoreError, Table, TableName, Write,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus, TransactWriteItem,
};
use aws_sdk_dynamodbstreams::types::{OperationType, ShardIteratorType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

mod streams;

type Attrs = HashMap<String, AttributeValue>;

/// Most keys in one BatchGetItem request.
const BATCH_GET_KEYS: usize = 100;
/// Most records one GetRecords call may return.
const GET_RECORDS_LIMIT: usize = 1000;
const UNPROCESSED_RETRIES: u32 = 8;

pub struct DynamoDb {
    client: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    prefix: String,
    stream_arns: Mutex<HashMap<TableName, String>>,
}

impl DynamoDb {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table_prefix: impl Into<String>,
    ) -> Self {
        DynamoDb {
            client,
            streams,
            prefix: table_prefix.into(),
            stream_arns: Mutex::new(HashMap::new()),
        }
    }

    /// Clients for an AWS configuration (region, credentials, `AWS_ENDPOINT_URL*`).
    pub fn from_config(config: &aws_config::SdkConfig, table_prefix: impl Into<String>) -> Self {
        Self::new(
            aws_sdk_dynamodb::Client::new(config),
            aws_sdk_dynamodbstreams::Client::new(config),
            table_prefix,
        )
    }

    /// The physical table behind `table`.
    pub fn table_name(&self, table: TableName) -> String {
        format!("{}{}", self.prefix, table.as_str())
    }

    /// Creates every missing table (on-demand billing, keys `pk`/`sk`, indexes `gsi1`/`gsi2`,
    /// streams on tables with a change feed) and enables TTL on `ttl`.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        for table in TableName::ALL {
            let name = self.table_name(table);
            let exists = match self.client.describe_table().table_name(&name).send().await {
                Ok(_) => true,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    false
                }
                Err(e) => return Err(sdk_error("DescribeTable", e)),
            };
            if !exists {
                self.create_table(table, &name).await?;
            }
            self.wait_until_active(&name).await?;
            self.enable_ttl(&name).await?;
        }
        Ok(())
    }

    async fn create_table(&self, table: TableName, name: &str) -> Result<(), StoreError> {
        let attributes = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
            .into_iter()
            .map(|a| {
                AttributeDefinition::builder()
                    .attribute_name(a)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(build_error)?;
        let key_schema = |pk: &str, sk: &str| {
            Ok::<_, StoreError>(vec![
                KeySchemaElement::builder()
                    .attribute_name(pk)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build_error)?,
                KeySchemaElement::builder()
                    .attribute_name(sk)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(build_error)?,
            ])
        };
        let mut indexes = Vec::new();
        for index in [Index::Gsi1, Index::Gsi2] {
            let (pk, sk) = index_attributes(index);
            indexes.push(
                GlobalSecondaryIndex::builder()
                    .index_name(index.as_str())
                    .set_key_schema(Some(key_schema(pk, sk)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(build_error)?,
            );
        }
        let stream = if table.has_change_feed() {
            Some(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    // The outbox's worker reads an event by its keys.
                    .stream_view_type(if table.is_append_only() {
                        StreamViewType::KeysOnly
                    } else {
                        StreamViewType::NewAndOldImages
                    })
                    .build()
                    .map_err(build_error)?,
            )
        } else {
            None
        };
        let created = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attributes))
            .set_key_schema(Some(key_schema("pk", "sk")?))
            .set_global_secondary_indexes(Some(indexes))
            .set_stream_specification(stream)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Someone else created it meanwhile.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("CreateTable", e)),
        }
    }

    async fn wait_until_active(&self, name: &str) -> Result<(), StoreError> {
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Backend(format!(
            "table {name} did not become active within a minute"
        )))
    }

    async fn enable_ttl(&self, name: &str) -> Result<(), StoreError> {
        let described = self
            .client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await;
        if let Ok(out) = &described {
            let status = out
                .time_to_live_description()
                .and_then(|d| d.time_to_live_status());
            if matches!(
                status,
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ) {
                return Ok(());
            }
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("ttl")
            .build()
            .map_err(build_error)?;
        match self
            .client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Reads filter expired items anyway; an emulator without TTL only keeps them longer.
            Err(e) if is_unsupported(e.as_service_error().and_then(|e| e.code())) => {
                tracing::warn!(
                    table = name,
                    "the DynamoDB endpoint does not support TTL; expired items stay stored"
                );
                Ok(())
            }
            Err(e) => Err(sdk_error("UpdateTimeToLive", e)),
        }
    }

    async fn put(
        &self,
        table: TableName,
        item: &Item,
        condition: &Condition,
    ) -> Result<(), StoreError> {
        let expr = ConditionExpr::new(condition, now());
        self.client
            .put_item()
            .table_name(self.table_name(table))
            .set_item(Some(item_attrs(item)?))
            .set_condition_expression(expr.text)
            .set_expression_attribute_names(expr.names)
            .set_expression_attribute_values(expr.values)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(err) if err.is_conditional_check_failed_exception() => {
                    StoreError::ConditionFailed
                }
                _ => sdk_error("PutItem", e),
            })?;
        Ok(())
    }

    async fn delete(
        &self,
        table: TableName,
        pk: &str,
        sk: &str,
        condition: &Condition,
    ) -> Result<(), StoreError> {
        let expr = ConditionExpr::new(condition, now());
        self.client
            .delete_item()
            .table_name(self.table_name(table))
            .set_key(Some(key_attrs(pk, sk)))
            .set_condition_expression(expr.text)
            .set_expression_attribute_names(expr.names)
            .set_expression_attribute_values(expr.values)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(err) if err.is_conditional_check_failed_exception() => {
                    StoreError::ConditionFailed
                }
                _ => sdk_error("DeleteItem", e),
            })?;
        Ok(())
    }

    fn transact_item(&self, write: &Write, now: i64) -> Result<TransactWriteItem, StoreError> {
        let item = match write {
            Write::Put {
                table,
                item,
                condition,
            } => {
                let expr = ConditionExpr::new(condition, now);
                let put = Put::builder()
                    .table_name(self.table_name(*table))
                    .set_item(Some(item_attrs(item)?))
                    .set_condition_expression(expr.text)
                    .set_expression_attribute_names(expr.names)
                    .set_expression_attribute_values(expr.values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().put(put).build()
            }
            Write::Delete {
                table,
                pk,
                sk,
                condition,
            } => {
                let expr = ConditionExpr::new(condition, now);
                let delete = Delete::builder()
                    .table_name(self.table_name(*table))
                    .set_key(Some(key_attrs(pk, sk)))
                    .set_condition_expression(expr.text)
                    .set_expression_attribute_names(expr.names)
                    .set_expression_attribute_values(expr.values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().delete(delete).build()
            }
            Write::Check {
                table,
                pk,
                sk,
                condition,
            } => {
                // ConditionCheck needs an expression; `None` always holds.
                let expr = ConditionExpr::new(condition, now);
                let (text, names) = match expr.text {
                    Some(text) => (text, expr.names),
                    None => (
                        "attribute_exists(#pk) OR attribute_not_exists(#pk)".to_owned(),
                        Some(names(&[("#pk", "pk")])),
                    ),
                };
                let check = ConditionCheck::builder()
                    .table_name(self.table_name(*table))
                    .set_key(Some(key_attrs(pk, sk)))
                    .condition_expression(text)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(expr.values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        };
        Ok(item)
    }
}

#[async_trait]
impl Table for DynamoDb {
    async fn get(&self, table: TableName, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table_name(table))
            .set_key(Some(key_attrs(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let now = now();
        Ok(out
            .item()
            .map(item_from)
            .transpose()?
            .filter(|i| is_live(i, now)))
    }

    async fn batch_get(
        &self,
        table: TableName,
        keys: &[(String, String)],
    ) -> Result<Vec<Item>, StoreError> {
        // BatchGetItem refuses duplicate keys.
        let mut seen = HashSet::new();
        let keys: Vec<&(String, String)> = keys.iter().filter(|k| seen.insert(*k)).collect();
        let name = self.table_name(table);
        let now = now();
        let mut items = Vec::new();
        for chunk in keys.chunks(BATCH_GET_KEYS) {
            let mut pending: Vec<Attrs> = chunk.iter().map(|(pk, sk)| key_attrs(pk, sk)).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&name, request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                for attrs in out
                    .responses()
                    .and_then(|r| r.get(&name))
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let item = item_from(attrs)?;
                    if is_live(&item, now) {
                        items.push(item);
                    }
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&name))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > UNPROCESSED_RETRIES {
                        return Err(StoreError::Backend(format!(
                            "BatchGetItem on {name}: keys still unprocessed after retries"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
                }
            }
        }
        Ok(items)
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        match &write {
            Write::Put {
                table,
                item,
                condition,
            } => self.put(*table, item, condition).await,
            Write::Delete {
                table,
                pk,
                sk,
                condition,
            } => self.delete(*table, pk, sk, condition).await,
            // DynamoDB has no single-item ConditionCheck; a one-item transaction is its equivalent.
            Write::Check { .. } => match self.transact(vec![write]).await {
                Err(StoreError::TransactionCanceled { index: Some(_) }) => {
                    Err(StoreError::ConditionFailed)
                }
                other => other,
            },
        }
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        validate_transaction(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        let now = now();
        let items = writes
            .iter()
            .map(|w| self.transact_item(w, now))
            .collect::<Result<Vec<_>, _>>()?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
                    let index = canceled
                        .cancellation_reasons()
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"));
                    Err(StoreError::TransactionCanceled { index })
                }
                _ => Err(sdk_error("TransactWriteItems", e)),
            },
        }
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        if query.limit == Some(0) {
            return Err(StoreError::Invalid("query limit must be at least 1".into()));
        }
        let (pk_attr, sk_attr) = match query.index {
            None => ("pk", "sk"),
            Some(index) => index_attributes(index),
        };
        let mut names = names(&[("#pk", pk_attr), ("#ttl", "ttl")]);
        let projection = query.keys_only.then(|| {
            let kept = [
                "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "ttl", "version",
            ];
            for attr in kept {
                names.insert(format!("#k_{attr}"), attr.to_owned());
            }
            kept.map(|attr| format!("#k_{attr}")).join(", ")
        });
        let mut values: Attrs = HashMap::from([
            (":pk".to_owned(), s(&query.pk)),
            (":now".to_owned(), AttributeValue::N(now().to_string())),
        ]);
        let mut key_condition = "#pk = :pk".to_owned();
        let mut sk_condition = |expression: &str, bounds: &[&str]| {
            names.insert("#sk".to_owned(), sk_attr.to_owned());
            for (name, value) in [":a", ":b"].into_iter().zip(bounds) {
                values.insert(name.to_owned(), s(value));
            }
            key_condition.push_str(" AND ");
            key_condition.push_str(expression);
        };
        match &query.range {
            SkRange::All => {}
            SkRange::BeginsWith(prefix) if prefix.is_empty() => {}
            SkRange::Eq(v) => sk_condition("#sk = :a", &[v]),
            SkRange::BeginsWith(prefix) => sk_condition("begins_with(#sk, :a)", &[prefix]),
            SkRange::Between(low, high) => {
                if low > high {
                    return Err(StoreError::Invalid(format!(
                        "sort-key range {low:?}..={high:?} is reversed"
                    )));
                }
                sk_condition("#sk BETWEEN :a AND :b", &[low, high])
            }
            SkRange::Lt(v) => sk_condition("#sk < :a", &[v]),
            SkRange::Le(v) => sk_condition("#sk <= :a", &[v]),
            SkRange::Gt(v) => sk_condition("#sk > :a", &[v]),
            SkRange::Ge(v) => sk_condition("#sk >= :a", &[v]),
        }
        let mut start = match (&query.start_after, query.index) {
            (None, _) => None,
            (Some(cursor), None) => Some(key_attrs(&cursor.pk, &cursor.sk)),
            (Some(cursor), Some(_)) => {
                let key = cursor.index.as_ref().ok_or_else(|| {
                    StoreError::Invalid("an index query needs a cursor with index keys".into())
                })?;
                let mut attrs = key_attrs(&cursor.pk, &cursor.sk);
                attrs.insert(pk_attr.to_owned(), s(&key.pk));
                attrs.insert(sk_attr.to_owned(), s(&key.sk));
                Some(attrs)
            }
        };
        let mut items = Vec::new();
        // DynamoDB applies Limit before the expiry filter, so a page may come back short: keep
        // reading until one item past the limit proves another page follows, or the partition ends.
        loop {
            let request_limit = query
                .limit
                .map(|limit| i32::try_from(limit - items.len() + 1).unwrap_or(i32::MAX));
            let out = self
                .client
                .query()
                .table_name(self.table_name(query.table))
                .set_index_name(query.index.map(|i| i.as_str().to_owned()))
                .key_condition_expression(&key_condition)
                .filter_expression("attribute_not_exists(#ttl) OR #ttl >= :now")
                .set_projection_expression(projection.clone())
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(query.forward)
                .set_limit(request_limit)
                .set_exclusive_start_key(start.take())
                // Index reads cannot be strongly consistent.
                .consistent_read(query.index.is_none())
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            for attrs in out.items() {
                items.push(item_from(attrs)?);
            }
            if let Some(limit) = query.limit {
                if items.len() > limit {
                    items.truncate(limit);
                    let last = items.last().map(|item| Cursor {
                        pk: item.pk.clone(),
                        sk: item.sk.clone(),
                        index: query.index.and_then(|index| item.index_key(index).cloned()),
                    });
                    return Ok(Page { items, last });
                }
            }
            match out.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(Page { items, last: None }),
            }
        }
    }

    async fn read_changes(
        &self,
        table: TableName,
        from: Option<&ChangePosition>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError> {
        self.read_stream(table, from, limit).await
    }
}

/// A write's condition as a ConditionExpression. An expired item is still stored until TTL
/// deletes it, so every test also treats `ttl < now` as absent.
struct ConditionExpr {
    text: Option<String>,
    names: Option<HashMap<String, String>>,
    values: Option<Attrs>,
}

impl ConditionExpr {
    fn new(condition: &Condition, now: i64) -> Self {
        let now = || HashMap::from([(":now".to_owned(), AttributeValue::N(now.to_string()))]);
        let (text, names, values) = match condition {
            Condition::None => {
                return ConditionExpr {
                    text: None,
                    names: None,
                    values: None,
                }
            }
            Condition::NotExists => (
                "attribute_not_exists(#pk) OR #ttl < :now",
                names(&[("#pk", "pk"), ("#ttl", "ttl")]),
                now(),
            ),
            Condition::Exists => (
                "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl >= :now)",
                names(&[("#pk", "pk"), ("#ttl", "ttl")]),
                now(),
            ),
            Condition::Version(version) => {
                let mut values = now();
                values.insert(":v".to_owned(), AttributeValue::N(version.to_string()));
                (
                    "#v = :v AND (attribute_not_exists(#ttl) OR #ttl >= :now)",
                    names(&[("#v", "version"), ("#ttl", "ttl")]),
                    values,
                )
            }
        };
        ConditionExpr {
            text: Some(text.to_owned()),
            names: Some(names),
            values: Some(values),
        }
    }
}

fn index_attributes(index: Index) -> (&'static str, &'static str) {
    match index {
        Index::Gsi1 => ("gsi1pk", "gsi1sk"),
        Index::Gsi2 => ("gsi2pk", "gsi2sk"),
    }
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn key_attrs(pk: &str, sk: &str) -> Attrs {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn item_attrs(item: &Item) -> Result<Attrs, StoreError> {
    let mut attrs = key_attrs(&item.pk, &item.sk);
    for index in [Index::Gsi1, Index::Gsi2] {
        if let Some(key) = item.index_key(index) {
            let (pk, sk) = index_attributes(index);
            attrs.insert(pk.to_owned(), s(&key.pk));
            attrs.insert(sk.to_owned(), s(&key.sk));
        }
    }
    if let Some(ttl) = item.ttl {
        attrs.insert("ttl".to_owned(), AttributeValue::N(ttl.to_string()));
    }
    attrs.insert(
        "version".to_owned(),
        AttributeValue::N(item.version.to_string()),
    );
    let data = serde_json::to_string(&item.data)
        .map_err(|e| StoreError::Invalid(format!("item data: {e}")))?;
    attrs.insert("data".to_owned(), AttributeValue::S(data));
    Ok(attrs)
}

/// The two SDKs (tables and streams) each have their own AttributeValue; items read the same
/// from both.
trait Attribute {
    fn text(&self) -> Option<&str>;
    fn number(&self) -> Option<&str>;
}

impl Attribute for AttributeValue {
    fn text(&self) -> Option<&str> {
        match self {
            AttributeValue::S(v) => Some(v),
            _ => None,
        }
    }
    fn number(&self) -> Option<&str> {
        match self {
            AttributeValue::N(v) => Some(v),
            _ => None,
        }
    }
}

impl Attribute for aws_sdk_dynamodbstreams::types::AttributeValue {
    fn text(&self) -> Option<&str> {
        match self {
            Self::S(v) => Some(v),
            _ => None,
        }
    }
    fn number(&self) -> Option<&str> {
        match self {
            Self::N(v) => Some(v),
            _ => None,
        }
    }
}

fn required_text<'a, A: Attribute>(
    attrs: &'a HashMap<String, A>,
    name: &str,
) -> Result<&'a str, StoreError> {
    attrs
        .get(name)
        .and_then(Attribute::text)
        .ok_or_else(|| StoreError::Backend(format!("item without string attribute {name}")))
}

fn number<T: std::str::FromStr, A: Attribute>(
    attrs: &HashMap<String, A>,
    name: &str,
) -> Result<Option<T>, StoreError> {
    match attrs.get(name).and_then(Attribute::number) {
        None => Ok(None),
        Some(n) => n.parse().map(Some).map_err(|_| {
            StoreError::Backend(format!("item attribute {name} is not an integer: {n}"))
        }),
    }
}

fn item_from<A: Attribute>(attrs: &HashMap<String, A>) -> Result<Item, StoreError> {
    let index_key = |index: Index| {
        let (pk, sk) = index_attributes(index);
        match (
            attrs.get(pk).and_then(Attribute::text),
            attrs.get(sk).and_then(Attribute::text),
        ) {
            (Some(pk), Some(sk)) => Some(IndexKey {
                pk: pk.to_owned(),
                sk: sk.to_owned(),
            }),
            _ => None,
        }
    };
    // A keys-only query leaves the document out.
    let data = match attrs.get("data") {
        None => Value::Null,
        Some(_) => serde_json::from_str(required_text(attrs, "data")?)
            .map_err(|e| StoreError::Backend(format!("item data is not JSON: {e}")))?,
    };
    Ok(Item {
        pk: required_text(attrs, "pk")?.to_owned(),
        sk: required_text(attrs, "sk")?.to_owned(),
        gsi1: index_key(Index::Gsi1),
        gsi2: index_key(Index::Gsi2),
        ttl: number(attrs, "ttl")?,
        version: number(attrs, "version")?
            .ok_or_else(|| StoreError::Backend("item without version".into()))?,
        data,
    })
}

fn is_unsupported(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "UnknownOperationException"
                | "NotImplemented"
                | "UnsupportedOperation"
                | "UnsupportedOperationException"
        )
    )
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Invalid(format!("cannot build DynamoDB request: {e}"))
}

fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(service) = err.as_service_error() {
        if service.code() == Some("ValidationException") {
            return StoreError::Invalid(format!(
                "{operation}: {}",
                service.message().unwrap_or("validation failed")
            ));
        }
    }
    StoreError::Backend(format!("{operation}: {}", DisplayErrorContext(&err)))
}
