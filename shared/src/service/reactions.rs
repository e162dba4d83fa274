//! Reactions on messages: send (one per user and type, `enforce_unique`), delete, list, with
//! the message's aggregates and the events written in the same transaction.

use super::acting_user;
use super::channel_record::channel_event;
use super::messages::message_write;
use super::{contention_pause, to_doc, Chat, QueryParts, CONTENDED_ATTEMPTS};
use crate::domain::caller::Session;
use crate::domain::ids::time_ordered_id;
use crate::domain::reaction::{
    Reaction, DEFAULT_REACTIONS_LIMIT, LATEST_REACTIONS, MAX_REACTIONS_LIMIT, MAX_REACTIONS_OFFSET,
};
use crate::domain::ApiError;
use crate::service::decode;
use crate::store::layout::{outbox_write, reaction_sk, reactions_pk};
use crate::store::{
    query_all, Condition, Index, Item, Query, SkRange, StoreError, TableName, Write,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /messages/{id}/reaction`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendReaction {
    pub reaction: Map<String, Value>,
    pub enforce_unique: bool,
    pub skip_push: bool,
    pub user_id: Option<String>,
}

/// Body of `POST /messages/{id}/reactions`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryReactions {
    pub filter: Option<Value>,
    pub sort: Option<Value>,
    pub limit: Option<usize>,
    pub next: Option<String>,
}

fn reaction_item(r: &Reaction) -> Result<Item, ApiError> {
    let created = crate::domain::clock::parse_time(&r.created_at).unwrap_or_else(chrono::Utc::now);
    Ok(Item::new(
        reactions_pk(&r.message_id),
        reaction_sk(&r.user_id, &r.kind),
        to_doc(r)?,
    )
    .with_gsi1(reactions_pk(&r.message_id), time_ordered_id(created)))
}

impl Chat {
    /// Seed: a frozen channel refuses sending and deleting reactions (403) unless the role has
    /// `UseFrozenChannel`.
    fn check_reactions_open(
        &self,
        session: &Session,
        config: &crate::domain::channel_type::ChannelTypeConfig,
        loaded: &super::channel_record::Loaded,
    ) -> Result<(), ApiError> {
        if !loaded.channel.frozen || session.caller.is_server() {
            return Ok(());
        }
        self.check_channel_action(
            session,
            config,
            Some(loaded),
            &loaded.channel,
            "UseFrozenChannel",
        )
        .map_err(|_| {
            ApiError::not_allowed(format!(
                "channel {} is frozen: reactions are not allowed",
                loaded.channel.cid
            ))
        })
    }

    /// `POST /messages/{id}/reaction`.
    pub async fn send_reaction(
        &self,
        session: &Session,
        message_id: &str,
        req: SendReaction,
    ) -> Result<Value, ApiError> {
        let payload_user = req
            .reaction
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(req.user_id.clone());
        let payload_user_obj = req.reaction.get("user").and_then(Value::as_object).cloned();
        let actor = acting_user(session, &payload_user, &payload_user_obj).ok_or_else(|| {
            ApiError::field(
                "reaction.user_id",
                "reaction.user_id is required with server-side authentication",
            )
        })?;
        let (user, _) = self
            .get_user(&actor)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {actor:?} does not exist")))?;
        let stored = self.require_message(message_id).await?;
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        let effective = loaded.channel.effective_config(&config, &[])?;
        if !effective.reactions {
            return Err(ApiError::input("reactions are disabled for this channel"));
        }
        if stored.message.kind == "deleted" {
            return Err(ApiError::input(format!("message {message_id} was deleted")));
        }
        self.check_channel_action(
            session,
            &config,
            Some(&loaded),
            &loaded.channel,
            "CreateReaction",
        )?;
        self.check_not_banned(&user, loaded.members.iter().find(|m| m.user_id == actor))?;
        self.check_reactions_open(session, &config, &loaded)?;
        let reaction = Reaction::from_payload(&req.reaction, message_id, &actor, &self.now_str())?;
        let user_json = user.to_json();
        let mut stored = stored;
        // Reactions to one message from this process take turns (its aggregates are rewritten).
        let (_turn, waited) = self.writers.turn(&format!("message:{message_id}")).await;
        if waited {
            stored = self.require_message(message_id).await?;
        }
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let mine = self.user_reactions(message_id, &actor).await?;
            let old = mine.iter().find(|r| r.kind == reaction.kind).cloned();
            let mut next = stored.message.clone();
            let mut writes = Vec::new();
            if req.enforce_unique {
                for other in mine.iter().filter(|r| r.kind != reaction.kind) {
                    writes.push(Write::Delete {
                        table: TableName::Messages,
                        pk: reactions_pk(message_id),
                        sk: reaction_sk(&actor, &other.kind),
                        condition: Condition::None,
                    });
                    next.reactions.remove(other, Vec::new());
                }
            }
            let mut r = reaction.clone();
            if let Some(o) = &old {
                r.created_at.clone_from(&o.created_at);
            }
            next.reactions.add(&r, old.as_ref());
            if req.enforce_unique {
                let newest = next.reactions.latest.clone();
                next.reactions.latest = newest
                    .into_iter()
                    .filter(|x| x.user_id != actor || x.kind == r.kind)
                    .collect();
            }
            writes.push(Write::Put {
                table: TableName::Messages,
                item: reaction_item(&r)?,
                condition: Condition::None,
            });
            writes.push(message_write(&stored, &next)?);
            let message_wire = self
                .messages_wire(std::slice::from_ref(&next), None)
                .await?
                .remove(0);
            let reaction_wire = r.to_wire(Some(&user_json));
            let kind = if old.is_some() {
                "reaction.updated"
            } else {
                "reaction.new"
            };
            writes.push(outbox_write(
                &channel_event(kind, &loaded.channel, self.now())
                    .with("message", message_wire.clone())
                    .with("reaction", reaction_wire.clone())
                    .with("user", user_json.clone()),
            ));
            match self.store.transact(writes).await {
                Ok(()) => {
                    let mut message = message_wire;
                    message["own_reactions"] =
                        self.own_reactions(message_id, &actor, &user_json).await?;
                    return Ok(json!({ "message": message, "reaction": reaction_wire }));
                }
                Err(StoreError::TransactionCanceled { .. }) => {
                    contention_pause(attempt).await;
                    stored = self.require_message(message_id).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::input(format!(
            "message {message_id} is too busy; try again"
        )))
    }

    /// `DELETE /messages/{id}/reaction/{type}`.
    pub async fn delete_reaction(
        &self,
        session: &Session,
        message_id: &str,
        kind: &str,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let actor = acting_user(session, &user_id, &None).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        let mut stored = self.require_message(message_id).await?;
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        let found = self
            .store
            .get(
                TableName::Messages,
                &reactions_pk(message_id),
                &reaction_sk(&actor, kind),
            )
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "reaction {kind} of {actor} on message {message_id} does not exist"
                ))
            })?;
        let reaction: Reaction = decode(found.data, "reaction")?;
        self.check_action_on(
            session,
            &config,
            Some(&loaded),
            &loaded.channel,
            "DeleteReaction",
            Some(&reaction.user_id),
        )?;
        self.check_reactions_open(session, &config, &loaded)?;
        let users = self.users_by_id(&[actor.as_str()]).await?;
        let user_json = crate::service::users::shown(&users, &actor);
        let (_turn, waited) = self.writers.turn(&format!("message:{message_id}")).await;
        if waited {
            stored = self.require_message(message_id).await?;
        }
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let newest: Vec<Reaction> = self
                .newest_reactions(message_id, LATEST_REACTIONS + 1)
                .await?
                .into_iter()
                .filter(|r| !(r.user_id == actor && r.kind == kind))
                .take(LATEST_REACTIONS)
                .collect();
            let mut next = stored.message.clone();
            next.reactions.remove(&reaction, newest);
            let message_wire = self
                .messages_wire(std::slice::from_ref(&next), None)
                .await?
                .remove(0);
            let reaction_wire = reaction.to_wire(Some(&user_json));
            let writes = vec![
                Write::Delete {
                    table: TableName::Messages,
                    pk: reactions_pk(message_id),
                    sk: reaction_sk(&actor, kind),
                    condition: Condition::Exists,
                },
                message_write(&stored, &next)?,
                outbox_write(
                    &channel_event("reaction.deleted", &loaded.channel, self.now())
                        .with("message", message_wire.clone())
                        .with("reaction", reaction_wire.clone())
                        .with("user", user_json.clone()),
                ),
            ];
            match self.store.transact(writes).await {
                Ok(()) => return Ok(json!({ "message": message_wire, "reaction": reaction_wire })),
                Err(StoreError::TransactionCanceled { index: Some(0) }) => {
                    return Err(ApiError::not_found(format!(
                        "reaction {kind} of {actor} on message {message_id} does not exist"
                    )))
                }
                Err(StoreError::TransactionCanceled { .. }) => {
                    contention_pause(attempt).await;
                    stored = self.require_message(message_id).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::input(format!(
            "message {message_id} is too busy; try again"
        )))
    }

    /// `GET /messages/{id}/reactions`: newest first, limit ≤ 300, offset ≤ 1000.
    pub async fn get_reactions(
        &self,
        session: &Session,
        message_id: &str,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> Result<Value, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_REACTIONS_LIMIT);
        if limit > MAX_REACTIONS_LIMIT {
            return Err(ApiError::field(
                "limit",
                format!("limit must be at most {MAX_REACTIONS_LIMIT}"),
            ));
        }
        let offset = offset.unwrap_or(0);
        if offset > MAX_REACTIONS_OFFSET {
            return Err(ApiError::field(
                "offset",
                format!("offset must be at most {MAX_REACTIONS_OFFSET}"),
            ));
        }
        let stored = self.require_message(message_id).await?;
        self.message_channel(session, &stored.message).await?;
        let reactions: Vec<Reaction> = self
            .newest_reactions(message_id, offset + limit)
            .await?
            .into_iter()
            .skip(offset)
            .collect();
        let ids: Vec<&str> = reactions.iter().map(|r| r.user_id.as_str()).collect();
        let users = self.users_by_id(&ids).await?;
        let out: Vec<Value> = reactions
            .iter()
            .map(|r| r.to_wire(users.get(&r.user_id).map(|(u, _)| u.to_json()).as_ref()))
            .collect();
        Ok(json!({ "reactions": out }))
    }

    /// `POST /messages/{id}/reactions`: reactions matching a filter, newest first (or oldest
    /// with `created_at: 1`), paged by `next`.
    pub async fn query_reactions(
        &self,
        session: &Session,
        message_id: &str,
        q: QueryReactions,
    ) -> Result<Value, ApiError> {
        let QueryParts {
            filter,
            sort,
            limit,
            ..
        } = QueryParts::parse(
            q.filter.as_ref(),
            &crate::domain::reaction::query_reactions_rules(),
            q.sort.as_ref(),
            q.limit,
            (
                crate::domain::reaction::DEFAULT_REACTIONS_LIMIT,
                MAX_REACTIONS_LIMIT,
            ),
            None,
        )?;
        if let Some(bad) = sort.iter().find(|s| s.field != "created_at") {
            return Err(ApiError::field(
                "sort",
                format!("reactions sort only by created_at, not {}", bad.field),
            ));
        }
        let oldest_first = sort.first().is_some_and(|s| s.direction > 0);
        let position = match q.next.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| ApiError::field("next", "next is not a value this API returned"))?,
            None => 0,
        };
        let stored = self.require_message(message_id).await?;
        self.message_channel(session, &stored.message).await?;
        let mut all = Vec::new();
        let query = Query::new(TableName::Messages, reactions_pk(message_id))
            .index(Index::Gsi1)
            .backward();
        for item in query_all(self.store.as_ref(), query).await? {
            let r: Reaction = decode(item.data, "reaction")?;
            if filter.matches_json(&serde_json::to_value(&r).unwrap_or(Value::Null)) {
                all.push(r);
            }
        }
        if oldest_first {
            all.reverse();
        }
        let total = all.len();
        let page: Vec<Reaction> = all.into_iter().skip(position).take(limit).collect();
        let ids: Vec<&str> = page.iter().map(|r| r.user_id.as_str()).collect();
        let users = self.users_by_id(&ids).await?;
        let reactions: Vec<Value> = page
            .iter()
            .map(|r| r.to_wire(users.get(&r.user_id).map(|(u, _)| u.to_json()).as_ref()))
            .collect();
        let mut out = json!({ "reactions": reactions });
        if position + limit < total {
            out["next"] = Value::String((position + limit).to_string());
        }
        Ok(out)
    }

    /// The message's newest reactions, newest first.
    async fn newest_reactions(
        &self,
        message_id: &str,
        n: usize,
    ) -> Result<Vec<Reaction>, ApiError> {
        let page = self
            .store
            .query(
                Query::new(TableName::Messages, reactions_pk(message_id))
                    .index(Index::Gsi1)
                    .backward()
                    .limit(n),
            )
            .await?;
        page.items
            .into_iter()
            .map(|i| decode(i.data, "reaction"))
            .collect()
    }

    /// One user's reactions on a message.
    pub(crate) async fn user_reactions(
        &self,
        message_id: &str,
        user_id: &str,
    ) -> Result<Vec<Reaction>, ApiError> {
        let page = self
            .store
            .query(
                Query::new(TableName::Messages, reactions_pk(message_id))
                    .range(SkRange::BeginsWith(format!("{user_id}#"))),
            )
            .await?;
        page.items
            .into_iter()
            .map(|i| decode(i.data, "reaction"))
            .collect()
    }

    /// A message's reactions by user (at most `limit`), as `own_reactions` entries: what each
    /// recipient of an event about the message gets as its own.
    pub(crate) async fn reactions_by_user(
        &self,
        message_id: &str,
        limit: usize,
    ) -> Result<std::collections::HashMap<String, Vec<Value>>, ApiError> {
        let mut out: std::collections::HashMap<String, Vec<Value>> = Default::default();
        let mut cursor = None;
        let mut read = 0;
        loop {
            let page = self
                .store
                .query(
                    Query::new(TableName::Messages, reactions_pk(message_id))
                        .limit(limit.saturating_sub(read).clamp(1, 1000))
                        .start_after(cursor),
                )
                .await?;
            read += page.items.len();
            for item in page.items {
                if let Ok(r) = serde_json::from_value::<Reaction>(item.data) {
                    let user = json!({ "id": r.user_id });
                    out.entry(r.user_id.clone())
                        .or_default()
                        .push(r.to_wire(Some(&user)));
                }
            }
            match page.last {
                Some(c) if read < limit => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// `own_reactions` of a message for one reader.
    pub(crate) async fn own_reactions(
        &self,
        message_id: &str,
        user_id: &str,
        user: &Value,
    ) -> Result<Value, ApiError> {
        Ok(self
            .user_reactions(message_id, user_id)
            .await?
            .iter()
            .map(|r| r.to_wire(Some(user)))
            .collect::<Vec<_>>()
            .into())
    }
}
