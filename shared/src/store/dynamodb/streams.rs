//! The change feed from DynamoDB Streams: the table's stream, its shards (a child after its
//! parent), records read from a position kept per shard, and an append-only table's inserts read
//! back from the table (its stream names keys only).

use super::*;

impl DynamoDb {
    /// The table's changes after `from` (see `Table::read_changes`): every shard of its stream,
    /// a child shard only once its parent is read to the end.
    pub(super) async fn read_stream(
        &self,
        table: TableName,
        from: Option<&ChangePosition>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError> {
        if !table.has_change_feed() {
            return Err(StoreError::Invalid(format!(
                "table {} has no change feed",
                table.as_str()
            )));
        }
        let arn = self.stream_arn(table).await?;
        let mut position = match from.map(|p| p.0.as_str()) {
            None | Some("") => StreamPosition::default(),
            Some(text) => serde_json::from_str(text)
                .map_err(|_| StoreError::Invalid(format!("bad change position {text:?}")))?,
        };
        if position.stream != arn {
            // A position from another stream (the table was re-created): start from its beginning.
            position = StreamPosition {
                stream: arn.clone(),
                ..StreamPosition::default()
            };
        }
        let shards = self.shards(&arn).await?;
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        position.shards.retain(|id, _| listed.contains(id.as_str()));
        position.done.retain(|id| listed.contains(id.as_str()));

        let mut changes = Vec::new();
        let mut visited = HashSet::new();
        // A child shard holds later changes to the same keys as its parent, so it is read only
        // once the parent is exhausted (or already trimmed away).
        loop {
            let ready = shards.iter().find(|shard| {
                !visited.contains(&shard.id)
                    && !position.done.contains(&shard.id)
                    && shard.parent.as_ref().is_none_or(|parent| {
                        !listed.contains(parent.as_str()) || position.done.contains(parent)
                    })
            });
            let Some(shard) = ready else { break };
            if changes.len() >= limit {
                break;
            }
            visited.insert(shard.id.clone());
            self.read_shard(table, &arn, shard, &mut position, &mut changes, limit)
                .await?;
        }
        let next = serde_json::to_string(&position)
            .map_err(|e| StoreError::Backend(format!("cannot encode change position: {e}")))?;
        Ok(ChangeBatch {
            changes,
            next: ChangePosition(next),
        })
    }

    async fn stream_arn(&self, table: TableName) -> Result<String, StoreError> {
        if let Some(arn) = self.cached_stream_arn(table)? {
            return Ok(arn);
        }
        let name = self.table_name(table);
        let out = self
            .client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        let arn = out
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "table {name} has no stream; was it created by create_tables?"
                ))
            })?
            .to_owned();
        self.stream_arns
            .lock()
            .map_err(|_| StoreError::Backend("stream cache lock poisoned".into()))?
            .insert(table, arn.clone());
        Ok(arn)
    }

    fn cached_stream_arn(&self, table: TableName) -> Result<Option<String>, StoreError> {
        let cache = self
            .stream_arns
            .lock()
            .map_err(|_| StoreError::Backend("stream cache lock poisoned".into()))?;
        Ok(cache.get(&table).cloned())
    }

    async fn shards(&self, arn: &str) -> Result<Vec<Shard>, StoreError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeStream", e))?;
            let Some(description) = out.stream_description() else {
                break;
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                shards.push(Shard {
                    id: id.to_owned(),
                    parent: shard.parent_shard_id().map(str::to_owned),
                });
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_owned()),
                None => break,
            }
        }
        Ok(shards)
    }

    /// Reads one shard from where `position` left it, appending to `changes` up to `limit`.
    async fn read_shard(
        &self,
        table: TableName,
        arn: &str,
        shard: &Shard,
        position: &mut StreamPosition,
        changes: &mut Vec<Change>,
        limit: usize,
    ) -> Result<(), StoreError> {
        let mut iterator = self
            .shard_iterator(arn, &shard.id, position.shards.get(&shard.id))
            .await?;
        while changes.len() < limit {
            let Some(current) = iterator else {
                // Only a closed shard runs out of iterators; its children may be read now.
                position.done.insert(shard.id.clone());
                position.shards.remove(&shard.id);
                break;
            };
            let want = (limit - changes.len()).min(GET_RECORDS_LIMIT);
            let out = self
                .streams
                .get_records()
                .shard_iterator(current)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| sdk_error("GetRecords", e))?;
            for record in out.records() {
                let Some(data) = record.dynamodb() else {
                    continue;
                };
                let kind = match record.event_name() {
                    Some(OperationType::Insert) => ChangeKind::Insert,
                    Some(OperationType::Modify) => ChangeKind::Modify,
                    Some(OperationType::Remove) => ChangeKind::Remove,
                    other => {
                        return Err(StoreError::Backend(format!(
                            "stream record with event {other:?}"
                        )))
                    }
                };
                let image = |image: Option<
                    &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
                >| {
                    image.filter(|m| !m.is_empty()).map(item_from).transpose()
                };
                let keys = data
                    .keys()
                    .ok_or_else(|| StoreError::Backend("stream record without keys".into()))?;
                let pk = required_text(keys, "pk")?.to_owned();
                let sk = required_text(keys, "sk")?.to_owned();
                // An append-only table's stream names keys; an insert's image is the item.
                let new = match (table.is_append_only(), kind) {
                    (true, ChangeKind::Insert) => self.get(table, &pk, &sk).await?,
                    (true, _) => None,
                    (false, _) => image(data.new_image())?,
                };
                changes.push(Change {
                    table,
                    kind,
                    pk,
                    sk,
                    new,
                    old: image(data.old_image())?,
                });
                if let Some(seq) = data.sequence_number() {
                    position.shards.insert(shard.id.clone(), seq.to_owned());
                }
            }
            let caught_up = out.records().is_empty();
            iterator = out.next_shard_iterator().map(str::to_owned);
            if caught_up && iterator.is_some() {
                break;
            }
        }
        Ok(())
    }

    async fn shard_iterator(
        &self,
        arn: &str,
        shard: &str,
        after: Option<&String>,
    ) -> Result<Option<String>, StoreError> {
        let request = |kind: ShardIteratorType, seq: Option<String>| {
            self.streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_sequence_number(seq)
                .send()
        };
        let out = match after {
            None => request(ShardIteratorType::TrimHorizon, None).await,
            Some(seq) => {
                match request(ShardIteratorType::AfterSequenceNumber, Some(seq.clone())).await {
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_trimmed_data_access_exception()) =>
                    {
                        tracing::warn!(shard, "change position is older than the stream retains; resuming at the oldest record");
                        request(ShardIteratorType::TrimHorizon, None).await
                    }
                    other => other,
                }
            }
        };
        Ok(out
            .map_err(|e| sdk_error("GetShardIterator", e))?
            .shard_iterator()
            .map(str::to_owned))
    }
}

struct Shard {
    id: String,
    parent: Option<String>,
}

/// Where a reader stands in a table's stream: the last sequence number read per shard, and the
/// closed shards read to their end.
#[derive(Default, Serialize, Deserialize)]
struct StreamPosition {
    stream: String,
    shards: BTreeMap<String, String>,
    done: BTreeSet<String>,
}
