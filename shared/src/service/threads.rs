//! Threads: kept with every reply (thread item and participants, in the reply's transaction),
//! query threads, get a thread, partial update of title and custom data, and per-participant
//! read state.

use super::acting_user;
use super::channel_record::channel_event;
use super::{to_doc, Chat, QueryParts};
use crate::domain::caller::Session;
use crate::domain::channel::ChannelView;
use crate::domain::filter::compare_json;
use crate::domain::message::{Message, MessageAnchor, MessagePage};
use crate::domain::thread::{
    query_threads_rules, thread_sort, Thread, ThreadParticipant, DEFAULT_PARTICIPANT_LIMIT,
    DEFAULT_REPLY_LIMIT, DEFAULT_THREADS_LIMIT, MAX_THREADS_LIMIT, MAX_THREAD_SUB_LIMIT,
};
use crate::domain::ApiError;
use crate::service::decode;
use crate::store::layout::{
    outbox_write, thread_participant_sk, thread_pk, threads_of_pk, THREAD_SK,
};
use crate::store::{query_all, Condition, Index, Item, Query, StoreError, TableName, Write};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /threads`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryThreads {
    pub filter: Option<Value>,
    pub sort: Option<Value>,
    pub limit: Option<usize>,
    pub next: Option<String>,
    pub reply_limit: Option<usize>,
    pub participant_limit: Option<usize>,
    pub member_limit: Option<usize>,
    pub watch: Option<bool>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// How much of each thread a response shows.
#[derive(Clone, Copy, Debug)]
pub struct ThreadView {
    pub reply_limit: usize,
    pub participant_limit: usize,
}

impl ThreadView {
    pub fn new(
        reply_limit: Option<usize>,
        participant_limit: Option<usize>,
    ) -> Result<ThreadView, ApiError> {
        let reply_limit = reply_limit.unwrap_or(DEFAULT_REPLY_LIMIT);
        let participant_limit = participant_limit.unwrap_or(DEFAULT_PARTICIPANT_LIMIT);
        for (field, n) in [
            ("reply_limit", reply_limit),
            ("participant_limit", participant_limit),
        ] {
            if n > MAX_THREAD_SUB_LIMIT {
                return Err(ApiError::field(
                    field,
                    format!("{field} must be at most {MAX_THREAD_SUB_LIMIT}"),
                ));
            }
        }
        Ok(ThreadView {
            reply_limit,
            participant_limit,
        })
    }
}

fn participant_item(p: &ThreadParticipant) -> Result<Item, ApiError> {
    Ok(Item::new(
        thread_pk(&p.thread_id),
        thread_participant_sk(&p.user_id),
        to_doc(p)?,
    )
    .with_gsi1(threads_of_pk(&p.user_id), p.thread_id.clone()))
}

/// A loaded thread: the item's version, and its participants.
pub(crate) struct StoredThread {
    pub thread: Thread,
    pub version: u64,
    pub participants: Vec<ThreadParticipant>,
}

impl Chat {
    /// The thread of a parent message, with its participants.
    pub(crate) async fn load_thread(
        &self,
        parent_id: &str,
    ) -> Result<Option<StoredThread>, ApiError> {
        let mut thread = None;
        let mut participants = Vec::new();
        let query = Query::new(TableName::Messages, thread_pk(parent_id));
        for item in query_all(self.store.as_ref(), query).await? {
            if item.sk == THREAD_SK {
                let version = item.version;
                thread = Some((decode::<Thread>(item.data, "thread")?, version));
            } else {
                participants.push(decode::<ThreadParticipant>(
                    item.data,
                    "thread participant",
                )?);
            }
        }
        Ok(thread.map(|(thread, version)| StoredThread {
            thread,
            version,
            participants,
        }))
    }

    /// The thread writes of a new reply (`parent` already counts it): the thread item (created
    /// with the first reply), the sender as a participant who has read it all, and on creation
    /// the parent's author; with the thread's participants after the reply.
    pub(crate) async fn thread_reply_writes(
        &self,
        parent: &Message,
        reply: &Message,
    ) -> Result<(Vec<Write>, Vec<String>), ApiError> {
        let stored = self.load_thread(&parent.id).await?;
        let now = &reply.created_at;
        let (mut thread, condition, version, mut participants) = match stored {
            Some(s) => (
                s.thread,
                Condition::Version(s.version),
                s.version + 1,
                s.participants,
            ),
            None => (
                Thread {
                    parent_message_id: parent.id.clone(),
                    channel_cid: parent.cid.clone(),
                    created_by_user_id: parent.user_id.clone().unwrap_or_default(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    last_message_at: None,
                    reply_count: 0,
                    participant_count: 0,
                    title: String::new(),
                    custom: Map::new(),
                },
                Condition::NotExists,
                1,
                Vec::new(),
            ),
        };
        thread.reply_count = u64::from(parent.reply_count);
        thread.last_message_at = Some(now.clone());
        thread.updated_at = now.clone();
        let mut writes = Vec::new();
        let mut joining: Vec<&str> = reply.user_id.as_deref().into_iter().collect();
        if condition == Condition::NotExists {
            joining.extend(parent.user_id.as_deref());
        }
        joining.dedup();
        for uid in joining {
            let existing = participants.iter().position(|p| p.user_id == uid);
            let mut p = match existing {
                Some(i) => participants[i].clone(),
                None => {
                    thread.participant_count += 1;
                    ThreadParticipant {
                        user_id: uid.to_string(),
                        thread_id: parent.id.clone(),
                        channel_cid: parent.cid.clone(),
                        created_at: now.clone(),
                        last_read_at: now.clone(),
                        read_reply_count: 0,
                        last_thread_message_at: None,
                    }
                }
            };
            if reply.user_id.as_deref() == Some(uid) {
                p.read_reply_count = thread.reply_count;
                p.last_read_at = now.clone();
                p.last_thread_message_at = Some(now.clone());
            }
            writes.push(Write::Put {
                table: TableName::Messages,
                item: participant_item(&p)?,
                condition: Condition::None,
            });
            if existing.is_none() {
                participants.push(p);
            }
        }
        let mut item = Item::new(thread_pk(&parent.id), THREAD_SK, to_doc(&thread)?);
        item.version = version;
        writes.insert(
            0,
            Write::Put {
                table: TableName::Messages,
                item,
                condition,
            },
        );
        let ids = participants.into_iter().map(|p| p.user_id).collect();
        Ok((writes, ids))
    }

    /// A thread as responses carry it, for `reader`.
    async fn thread_wire(
        &self,
        session: &Session,
        stored: &StoredThread,
        reader: Option<&str>,
        view: ThreadView,
    ) -> Result<Value, ApiError> {
        let t = &stored.thread;
        let parent = self.require_message(&t.parent_message_id).await?;
        let (config, loaded) = self.message_channel(session, &parent.message).await?;
        let viewer = self.viewer(session, &config, &loaded, reader).await?;
        let replies = if view.reply_limit == 0 {
            Vec::new()
        } else {
            let page = MessagePage {
                anchor: MessageAnchor::Latest,
                limit: view.reply_limit,
            };
            let source_floor = loaded.channel.messages_floor(None);
            self.thread_replies(&t.parent_message_id, &page, source_floor, &viewer)
                .await?
        };
        let mut latest = self.messages_wire(&replies, reader).await?;
        self.as_seen_by(&t.channel_cid, reader, &mut latest).await?;
        let mut parent_wire = [self
            .messages_wire(std::slice::from_ref(&parent.message), reader)
            .await?
            .remove(0)];
        self.as_seen_by(&t.channel_cid, reader, &mut parent_wire)
            .await?;
        let [parent_wire] = parent_wire;
        let shown: Vec<&ThreadParticipant> = stored
            .participants
            .iter()
            .take(view.participant_limit)
            .collect();
        let mut ids: Vec<&str> = shown.iter().map(|p| p.user_id.as_str()).collect();
        ids.push(t.created_by_user_id.as_str());
        let users = self.users_by_id(&ids).await?;
        let user = |id: &str| {
            users
                .get(id)
                .map(|(u, _)| u.to_json())
                .unwrap_or_else(|| json!({ "id": id }))
        };
        let mut doc = t.to_wire();
        doc.insert(
            "channel".into(),
            Value::Object(loaded.channel.to_wire(&ChannelView::default())),
        );
        doc.insert("parent_message".into(), parent_wire);
        doc.insert("created_by".into(), user(&t.created_by_user_id));
        doc.insert("latest_replies".into(), Value::Array(latest));
        doc.insert(
            "thread_participants".into(),
            shown
                .iter()
                .map(|p| p.to_wire(Some(&user(&p.user_id))))
                .collect::<Vec<_>>()
                .into(),
        );
        doc.insert(
            "read".into(),
            shown.iter().map(|p| json!({ "user": user(&p.user_id), "last_read": p.last_read_at, "unread_messages": p.unread(t) })).collect::<Vec<_>>().into(),
        );
        Ok(Value::Object(doc))
    }

    /// `GET /threads/{id}`.
    pub async fn get_thread(
        &self,
        session: &Session,
        parent_id: &str,
        view: ThreadView,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let stored = self
            .load_thread(parent_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("thread {parent_id} does not exist")))?;
        let reader = acting_user(session, &user_id, &None);
        Ok(json!({ "thread": self.thread_wire(session, &stored, reader.as_deref(), view).await? }))
    }

    /// `PATCH /threads/{id}`: title and custom data; `thread.updated`.
    pub async fn update_thread_partial(
        &self,
        session: &Session,
        parent_id: &str,
        set: Map<String, Value>,
        unset: Vec<String>,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let stored = self
            .load_thread(parent_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("thread {parent_id} does not exist")))?;
        let parent = self.require_message(parent_id).await?;
        let (config, loaded) = self.message_channel(session, &parent.message).await?;
        // Title and custom data follow the parent message's update rules.
        self.check_action_on(
            session,
            &config,
            Some(&loaded),
            &loaded.channel,
            "UpdateMessage",
            Some(&stored.thread.created_by_user_id),
        )?;
        let next = stored.thread.apply_partial(&set, &unset, &self.now_str())?;
        let mut item = Item::new(thread_pk(parent_id), THREAD_SK, to_doc(&next)?);
        item.version = stored.version + 1;
        let event = channel_event("thread.updated", &loaded.channel, self.now())
            .with("thread", Value::Object(next.to_wire()));
        match self
            .store
            .transact(vec![
                Write::Put {
                    table: TableName::Messages,
                    item,
                    condition: Condition::Version(stored.version),
                },
                outbox_write(&event),
            ])
            .await
        {
            Ok(()) => {}
            Err(StoreError::TransactionCanceled { .. }) => {
                return Err(ApiError::input(format!(
                    "thread {parent_id} was changed concurrently; try again"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let updated = StoredThread {
            thread: next,
            version: stored.version + 1,
            participants: stored.participants,
        };
        let reader = acting_user(session, &user_id, &None);
        Ok(
            json!({ "thread": self.thread_wire(session, &updated, reader.as_deref(), ThreadView::new(None, None)?).await? }),
        )
    }

    /// The threads a user takes part in.
    pub(crate) async fn user_threads(
        &self,
        user_id: &str,
    ) -> Result<Vec<(StoredThread, ThreadParticipant)>, ApiError> {
        let query = Query::new(TableName::Messages, threads_of_pk(user_id))
            .index(Index::Gsi1)
            .keys_only();
        let ids: Vec<String> = query_all(self.store.as_ref(), query)
            .await?
            .into_iter()
            .filter_map(|i| i.gsi1.map(|k| k.sk))
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(stored) = self.load_thread(&id).await? {
                if let Some(p) = stored
                    .participants
                    .iter()
                    .find(|p| p.user_id == user_id)
                    .cloned()
                {
                    out.push((stored, p));
                }
            }
        }
        Ok(out)
    }

    /// `POST /threads`: the reader's threads matching the filter, sorted (default: unread first,
    /// then newest reply), paged with `next`.
    pub async fn query_threads(
        &self,
        session: &Session,
        q: QueryThreads,
    ) -> Result<Value, ApiError> {
        let QueryParts {
            filter,
            sort,
            limit,
            ..
        } = QueryParts::parse(
            q.filter.as_ref(),
            &query_threads_rules(),
            q.sort.as_ref(),
            q.limit,
            (DEFAULT_THREADS_LIMIT, MAX_THREADS_LIMIT),
            None,
        )?;
        let mut sort = thread_sort(sort)?;
        sort.push(crate::domain::filter::SortField::new(
            "parent_message_id",
            -1,
        ));
        let view = ThreadView::new(q.reply_limit, q.participant_limit)?;
        let reader = acting_user(session, &q.user_id, &q.user).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        let position = match q.next.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| ApiError::field("next", "next is not a value this API returned"))?,
            None => 0,
        };
        let mut matched = Vec::new();
        for (stored, me) in self.user_threads(&reader).await? {
            let Some(loaded) = self.load_channel(&stored.thread.channel_cid).await? else {
                continue;
            };
            let mut doc = stored.thread.to_wire();
            doc.insert(
                "channel".into(),
                json!({ "disabled": loaded.channel.disabled, "team": loaded.channel.team }),
            );
            doc.insert(
                "has_unread".into(),
                Value::Bool(me.unread(&stored.thread) > 0),
            );
            let doc = Value::Object(doc);
            if filter.matches_json(&doc) {
                matched.push((stored, doc));
            }
        }
        matched.sort_by(|(_, a), (_, b)| compare_json(&sort, a, b));
        let total = matched.len();
        let mut threads = Vec::new();
        for (stored, _) in matched.into_iter().skip(position).take(limit) {
            threads.push(
                self.thread_wire(session, &stored, Some(&reader), view)
                    .await?,
            );
        }
        let mut out = json!({ "threads": threads });
        if position + limit < total {
            out["next"] = Value::String((position + limit).to_string());
        }
        Ok(out)
    }

    /// A thread marked unread by one participant: its newest reply is unread again.
    pub(crate) async fn mark_thread_unread(
        &self,
        parent_id: &str,
        user_id: &str,
    ) -> Result<(), ApiError> {
        self.set_thread_read(parent_id, user_id, false).await
    }

    /// A thread read to its newest reply by one participant.
    pub(crate) async fn mark_thread_read(
        &self,
        parent_id: &str,
        user_id: &str,
    ) -> Result<(), ApiError> {
        self.set_thread_read(parent_id, user_id, true).await
    }

    /// One participant's read position in a thread: at its newest reply (`read`), or just
    /// before it.
    async fn set_thread_read(
        &self,
        parent_id: &str,
        user_id: &str,
        read: bool,
    ) -> Result<(), ApiError> {
        let stored = self.load_thread(parent_id).await?.ok_or_else(|| {
            ApiError::field("thread_id", format!("thread {parent_id} does not exist"))
        })?;
        let mut me = stored
            .participants
            .iter()
            .find(|p| p.user_id == user_id)
            .cloned()
            .ok_or_else(|| {
                ApiError::field(
                    "thread_id",
                    format!("user {user_id:?} does not take part in thread {parent_id}"),
                )
            })?;
        if read {
            me.read_reply_count = stored.thread.reply_count;
            me.last_read_at = self.now_str();
        } else {
            me.read_reply_count = stored.thread.reply_count.saturating_sub(1);
        }
        self.store
            .write(Write::Put {
                table: TableName::Messages,
                item: participant_item(&me)?,
                condition: Condition::None,
            })
            .await?;
        Ok(())
    }
}
