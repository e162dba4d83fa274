//! Query users on custom fields through the custom-field index, on both stores: `$eq` / `$in`
//! (arrays by element, numbers by value) and ranges (`$gt`, `$lte`, ... by the filter's order)
//! find the users listed in those spans and the unindexed ones, updates move users between
//! values, hard deletes remove them, and an index missing its entries (users written before it
//! existed) is completed by the first query. Every answer is checked against a walk of every
//! user (a filter on `name` is never answered from the index).

mod support;

use serde_json::{json, Value};
use shared::domain::user_index::entry_user_id;
use shared::service::users::{DeleteUserOptions, QueryUsers};
use shared::store::{query_all, Condition, Query, TableName, Write};
use support::chat::{obj, TestChat};

async fn upsert(t: &TestChat, users: Value) {
    let users = users
        .as_array()
        .expect("users")
        .iter()
        .map(|u| obj(u.clone()))
        .collect();
    t.chat
        .upsert_users(&t.server().await, users)
        .await
        .expect("upsert");
}

async fn ids(t: &TestChat, filter: Value) -> Vec<String> {
    let q: QueryUsers = serde_json::from_value(json!({
        "filter_conditions": filter, "sort": [{"field": "id", "direction": 1}]
    }))
    .expect("query");
    t.chat
        .query_users(&t.server().await, q)
        .await
        .expect("query users")
        .into_iter()
        .map(|u| u.id)
        .collect()
}

/// The index's entries as (field or `~unindexed`, user id).
async fn index_items(t: &TestChat) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pk in ["uindex#book", "uindex#~unindexed"] {
        for item in query_all(t.chat.store.as_ref(), Query::new(TableName::App, pk))
            .await
            .expect("index")
        {
            let id = entry_user_id(&item.sk).unwrap_or(&item.sk).to_string();
            out.push((pk.trim_start_matches("uindex#").to_string(), id));
        }
    }
    out
}

/// A page sorted on a custom field, from the index (read in the field's order) and from a walk
/// of every user.
async fn page_same_as_walk(
    t: &TestChat,
    filter: Value,
    sort: Value,
    offset: usize,
    limit: usize,
) -> Vec<String> {
    let page = |filter: Value| {
        let q: QueryUsers = serde_json::from_value(json!({
            "filter_conditions": filter, "sort": sort, "limit": limit, "offset": offset
        }))
        .expect("query");
        async move {
            t.chat
                .query_users(&t.server().await, q)
                .await
                .expect("query users")
                .into_iter()
                .map(|u| u.id)
                .collect::<Vec<String>>()
        }
    };
    let indexed = page(filter.clone()).await;
    let walked = page(json!({"$or": [filter.clone(), {"id": "nobody"}]})).await;
    assert_eq!(indexed, walked, "{filter} {sort} {offset} {limit}");
    indexed
}

/// The same query answered by the index and by a walk of every user.
async fn same_as_walk(t: &TestChat, filter: Value) -> Vec<String> {
    let indexed = ids(t, filter.clone()).await;
    // A branch on another field leaves no custom field confined.
    let walked = ids(t, json!({"$or": [filter.clone(), {"id": "nobody"}]})).await;
    assert_eq!(indexed, walked, "{filter}");
    indexed
}

async fn scenario(t: TestChat) {
    let long = "x".repeat(300);
    upsert(
        &t,
        json!([
            {"id": "ix-1", "book": "dune", "age": 30, "tags": ["a", "b"]},
            {"id": "ix-2", "book": "emma", "age": 31.0},
            {"id": "ix-3", "book": "dune", "bio": long},
            {"id": "ix-4"},
            {"id": "ix-5", "age": 9007199254740993u64, "book": "2026-01-01", "tags": [1, 100]},
            {"id": "ix-6", "age": -3, "book": "2025-12-31T23:00:00-02:00", "vip": true},
            {"id": "ix-7", "age": "30", "book": "", "vip": false},
            {"id": "ix-8", "age": 30, "tags": [2]},
            {"id": "ix-9", "tags": 60}
        ]),
    )
    .await;
    for (filter, expected) in [
        (json!({"age": {"$gt": 30}}), &["ix-2", "ix-5"][..]),
        (
            json!({"age": {"$gte": 30}}),
            &["ix-1", "ix-2", "ix-5", "ix-8"],
        ),
        (json!({"age": {"$lt": 30.5, "$gt": -3}}), &["ix-1", "ix-8"]),
        (
            json!({"age": {"$lte": 9007199254740992u64}}),
            &["ix-1", "ix-2", "ix-6", "ix-8"],
        ),
        (json!({"age": {"$gte": "3"}}), &["ix-7"]),
        (
            json!({"book": {"$lt": "emma"}}),
            &["ix-1", "ix-3", "ix-5", "ix-6", "ix-7"],
        ),
        (
            json!({"book": {"$gt": "2026-01-01T01:30:00+01:00"}}),
            &["ix-1", "ix-2", "ix-3", "ix-6", "ix-7"],
        ),
        (json!({"book": {"$lte": "2026-01-01T00:00:00Z"}}), &["ix-5"]),
        (json!({"tags": {"$gt": 50}}), &["ix-5", "ix-9"]),
        (json!({"tags": {"$gt": 50, "$lt": 5}}), &["ix-5"]),
        (json!({"tags": {"$gte": "b"}}), &["ix-1"]),
        (json!({"vip": {"$gt": false}}), &["ix-6"]),
        (
            json!({"$or": [{"age": {"$lt": 0}}, {"age": 31}]}),
            &["ix-2", "ix-6"],
        ),
        (json!({"age": {"$gt": 1}, "book": "dune"}), &["ix-1"]),
    ] {
        let found = same_as_walk(&t, filter.clone()).await;
        // The unindexed user (ix-3) is read by every query and filtered like the others.
        let expected: Vec<&str> = expected.to_vec();
        assert_eq!(found, expected, "{filter}");
    }
    assert_eq!(ids(&t, json!({"book": "dune"})).await, ["ix-1", "ix-3"]);
    assert_eq!(ids(&t, json!({"tags": "b"})).await, ["ix-1"]);
    assert_eq!(
        ids(&t, json!({"age": {"$in": [30.0, 31]}})).await,
        ["ix-1", "ix-2", "ix-8"]
    );
    assert_eq!(
        ids(&t, json!({"book": {"$in": ["dune", "emma"]}, "age": 30})).await,
        ["ix-1"]
    );
    assert_eq!(
        ids(&t, json!({"book": "nobody"})).await,
        Vec::<String>::new()
    );
    // The unindexed user (its bio is too long to list) is read by every custom-field query.
    assert!(index_items(&t)
        .await
        .contains(&("~unindexed".into(), "ix-3".into())));

    // Sorted on the field: the index is read in its order, as far as the page needs.
    assert_eq!(
        page_same_as_walk(
            &t,
            json!({"age": {"$gte": -5}}),
            json!([{"field": "age", "direction": -1}, {"field": "id", "direction": 1}]),
            0,
            2
        )
        .await,
        ["ix-5", "ix-2"]
    );
    assert_eq!(
        page_same_as_walk(
            &t,
            json!({"age": {"$gte": -5}}),
            json!([{"field": "age", "direction": 1}, {"field": "id", "direction": -1}]),
            1,
            2
        )
        .await,
        ["ix-8", "ix-1"]
    );
    assert_eq!(
        page_same_as_walk(
            &t,
            json!({"tags": {"$gte": 1}}),
            json!([{"field": "tags", "direction": -1}]),
            0,
            1
        )
        .await,
        ["ix-8"]
    );
    for (field, direction) in [
        ("age", 1),
        ("age", -1),
        ("book", 1),
        ("book", -1),
        ("tags", -1),
    ] {
        for filter in [
            json!({field: {"$gt": 0}}),
            json!({field: {"$lte": "zz"}}),
            json!({"$or": [{field: {"$lt": 31}}, {field: {"$gt": 29, "$lt": 1000}}]}),
            json!({field: {"$in": [30, "dune", "b", 100]}}),
        ] {
            for (offset, limit) in [(0, 1), (0, 2), (1, 1), (2, 3), (0, 30)] {
                let sort = json!([{"field": field, "direction": direction}, {"field": "id", "direction": -1}]);
                page_same_as_walk(&t, filter.clone(), sort, offset, limit).await;
            }
        }
    }

    // Moving between values, and leaving the unindexed list.
    upsert(
        &t,
        json!([{"id": "ix-1", "book": "emma"}, {"id": "ix-3", "book": "dune"}]),
    )
    .await;
    assert_eq!(ids(&t, json!({"book": "dune"})).await, ["ix-3"]);
    assert_eq!(ids(&t, json!({"book": "emma"})).await, ["ix-1", "ix-2"]);
    assert!(!index_items(&t)
        .await
        .contains(&("~unindexed".into(), "ix-3".into())));

    let hard = DeleteUserOptions {
        hard_delete: Some(true),
        ..Default::default()
    };
    t.chat
        .delete_user(&t.server().await, "ix-2", hard)
        .await
        .expect("delete");
    assert_eq!(ids(&t, json!({"book": "emma"})).await, ["ix-1"]);
    let mut listed = index_items(&t).await;
    listed.sort();
    let books: Vec<(String, String)> = ["ix-1", "ix-3", "ix-5", "ix-6", "ix-7"]
        .iter()
        .map(|id| ("book".to_string(), id.to_string()))
        .collect();
    assert_eq!(listed, books);

    // An index without its entries (users written before it existed): the first custom-field
    // query lists everyone, then answers from it.
    let mut writes: Vec<Write> = index_items(&t)
        .await
        .into_iter()
        .map(|(pk, sk)| Write::Delete {
            table: TableName::App,
            pk,
            sk,
            condition: Condition::None,
        })
        .collect();
    writes.push(Write::Delete {
        table: TableName::App,
        pk: "uindex#~ready".into(),
        sk: "ready".into(),
        condition: Condition::None,
    });
    t.chat
        .store
        .transact(writes)
        .await
        .expect("forget the index");
    assert_eq!(ids(&t, json!({"book": "dune"})).await, ["ix-3"]);
    assert_eq!(index_items(&t).await.len(), 5);
    assert_eq!(
        same_as_walk(&t, json!({"book": {"$gte": "dune"}})).await,
        ["ix-1", "ix-3"]
    );
}

#[tokio::test]
async fn custom_field_queries_use_the_index_on_the_embedded_store() {
    scenario(TestChat::embedded().await).await;
}

#[tokio::test]
async fn custom_field_queries_use_the_index_on_dynamodb() {
    scenario(TestChat::dynamodb().await).await;
}
