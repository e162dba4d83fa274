//! Query users on custom fields through the custom-field index, on both stores: `$eq` / `$in`
//! (arrays by element, numbers by value) find the users listed under those values and the
//! unindexed ones, updates move users between values, hard deletes remove them, and an index
//! missing its entries (users written before it existed) is completed by the first query.

mod support;

use serde_json::{json, Value};
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

async fn index_items(t: &TestChat) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pk in [
        "ufield#book#s:dune",
        "ufield#book#s:emma",
        "ufield#~unindexed",
    ] {
        for item in query_all(t.chat.store.as_ref(), Query::new(TableName::App, pk))
            .await
            .expect("index")
        {
            out.push((item.pk, item.sk));
        }
    }
    out
}

async fn scenario(t: TestChat) {
    let long = "x".repeat(300);
    upsert(
        &t,
        json!([
            {"id": "ix-1", "book": "dune", "age": 30, "tags": ["a", "b"]},
            {"id": "ix-2", "book": "emma", "age": 31.0},
            {"id": "ix-3", "book": "dune", "bio": long},
            {"id": "ix-4"}
        ]),
    )
    .await;
    assert_eq!(ids(&t, json!({"book": "dune"})).await, ["ix-1", "ix-3"]);
    assert_eq!(ids(&t, json!({"tags": "b"})).await, ["ix-1"]);
    assert_eq!(
        ids(&t, json!({"age": {"$in": [30.0, 31]}})).await,
        ["ix-1", "ix-2"]
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
        .contains(&("ufield#~unindexed".into(), "ix-3".into())));

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
        .contains(&("ufield#~unindexed".into(), "ix-3".into())));

    let hard = DeleteUserOptions {
        hard_delete: Some(true),
        ..Default::default()
    };
    t.chat
        .delete_user(&t.server().await, "ix-2", hard)
        .await
        .expect("delete");
    assert_eq!(ids(&t, json!({"book": "emma"})).await, ["ix-1"]);
    assert_eq!(
        index_items(&t).await,
        [
            ("ufield#book#s:dune".to_string(), "ix-3".to_string()),
            ("ufield#book#s:emma".to_string(), "ix-1".to_string())
        ]
    );

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
        pk: "ufield#~ready".into(),
        sk: "ready".into(),
        condition: Condition::None,
    });
    t.chat
        .store
        .transact(writes)
        .await
        .expect("forget the index");
    assert_eq!(ids(&t, json!({"book": "dune"})).await, ["ix-3"]);
    assert_eq!(index_items(&t).await.len(), 2);
}

#[tokio::test]
async fn custom_field_queries_use_the_index_on_the_embedded_store() {
    scenario(TestChat::embedded().await).await;
}

#[tokio::test]
async fn custom_field_queries_use_the_index_on_dynamodb() {
    scenario(TestChat::dynamodb().await).await;
}
