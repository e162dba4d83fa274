//! The Table port's contract: the same checks run on the embedded store (in memory and on disk)
//! and on the DynamoDB adapter against moto, so both engines behave alike for the product.
//!
//! Run one backend with e.g. `cargo test -p shared --test store_contract dynamodb::`.

mod support;

use serde_json::json;
use shared::store::dynamodb::DynamoDb;
use shared::store::embedded::Embedded;
use shared::store::{
    Change, ChangeBatch, ChangeKind, ChangePosition, Condition, Index, Item, Query, SkRange,
    StoreError, Table, TableName, Write, MAX_TRANSACTION_WRITES,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::moto::Moto;

/// A store under test and whatever must live as long as it (a temporary directory, moto).
struct Fixture {
    store: Arc<dyn Table>,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn in_memory() -> Fixture {
    Fixture {
        store: Arc::new(Embedded::in_memory().expect("in-memory store")),
        _keep: Box::new(()),
    }
}

async fn on_disk() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Embedded::open(dir.path()).expect("on-disk store");
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

async fn dynamodb() -> Fixture {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let moto = Moto::shared();
    let config = moto.sdk_config();
    // Each test gets its own tables on the shared server.
    let prefix = format!("t{}-", NEXT.fetch_add(1, Ordering::Relaxed));
    let store = DynamoDb::new(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_dynamodbstreams::Client::new(&config),
        prefix,
    );
    store.create_tables().await.expect("create tables on moto");
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(moto),
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            $(#[tokio::test] async fn $name() { let f = super::in_memory().await; super::$name(&*f.store).await; })*
        }
        mod on_disk {
            $(#[tokio::test] async fn $name() { let f = super::on_disk().await; super::$name(&*f.store).await; })*
        }
        mod dynamodb {
            $(#[tokio::test] async fn $name() { let f = super::dynamodb().await; super::$name(&*f.store).await; })*
        }
    };
}

contract!(
    put_get_delete,
    put_conditions,
    delete_conditions,
    check_writes_nothing,
    version_bumps,
    transact_is_all_or_nothing,
    transact_limits,
    sort_key_ranges,
    forward_and_backward,
    limit_and_cursor_page_through_a_partition,
    secondary_indexes,
    keys_only_queries,
    index_paging_through_ties,
    ttl_expiry,
    batch_get,
    change_feed,
    change_feed_resumes_from_position,
    outbox_feed_names_keys,
    concurrent_conditional_puts,
    concurrent_transactions_are_independent,
    invalid_requests,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn item(pk: &str, sk: &str) -> Item {
    Item::new(pk, sk, json!({ "pk": pk, "sk": sk }))
}

fn put(table: TableName, item: Item, condition: Condition) -> Write {
    Write::Put {
        table,
        item,
        condition,
    }
}

fn delete(table: TableName, pk: &str, sk: &str, condition: Condition) -> Write {
    Write::Delete {
        table,
        pk: pk.into(),
        sk: sk.into(),
        condition,
    }
}

fn sort_keys(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.sk.as_str()).collect()
}

async fn put_all(store: &dyn Table, table: TableName, items: impl IntoIterator<Item = Item>) {
    for item in items {
        store
            .write(put(table, item, Condition::None))
            .await
            .expect("put");
    }
}

/// Every page of a query, following cursors.
async fn all_pages(store: &dyn Table, query: Query) -> Vec<Vec<Item>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(query.clone().start_after(cursor))
            .await
            .expect("query");
        pages.push(page.items);
        match page.last {
            Some(last) => cursor = Some(last),
            None => return pages,
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

async fn get(store: &dyn Table, table: TableName, pk: &str, sk: &str) -> Option<Item> {
    store.get(table, pk, sk).await.expect("get")
}

async fn put_get_delete(store: &dyn Table) {
    let data = json!({ "text": "héllo 👋", "n": 42, "f": 1.5, "nested": { "z": [1, null, true], "a": "b" }, "empty": {} });
    let mut stored = Item::new("channel#1", "message#1", data)
        .with_gsi1("user#1", "t1")
        .with_gsi2("msg#1", "x");
    stored.ttl = Some(now() + 3600);
    stored.version = 7;
    store
        .write(put(TableName::Messages, stored.clone(), Condition::None))
        .await
        .expect("put");

    let read = get(store, TableName::Messages, "channel#1", "message#1").await;
    assert_eq!(
        read.as_ref(),
        Some(&stored),
        "an item reads back exactly as written"
    );
    let keys: Vec<String> = read
        .iter()
        .flat_map(|i| i.data["nested"].as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    assert_eq!(keys, ["z", "a"], "document key order survives");

    assert_eq!(
        get(store, TableName::Messages, "channel#1", "message#2").await,
        None
    );
    assert_eq!(
        get(store, TableName::Channels, "channel#1", "message#1").await,
        None,
        "tables are separate"
    );

    let replaced = Item::new("channel#1", "message#1", json!({ "text": "edited" }));
    store
        .write(put(TableName::Messages, replaced.clone(), Condition::None))
        .await
        .expect("overwrite");
    assert_eq!(
        get(store, TableName::Messages, "channel#1", "message#1").await,
        Some(replaced),
        "a put replaces the whole item"
    );

    store
        .write(delete(
            TableName::Messages,
            "channel#1",
            "message#1",
            Condition::None,
        ))
        .await
        .expect("delete");
    assert_eq!(
        get(store, TableName::Messages, "channel#1", "message#1").await,
        None
    );
    store
        .write(delete(
            TableName::Messages,
            "channel#1",
            "message#1",
            Condition::None,
        ))
        .await
        .expect("deleting nothing is fine");
}

async fn put_conditions(store: &dyn Table) {
    let t = TableName::App;
    let first = item("user", "u1");
    assert_failed(
        store
            .write(put(t, item("user", "u1"), Condition::Exists))
            .await,
    );
    assert_eq!(
        get(store, t, "user", "u1").await,
        None,
        "a failed put writes nothing"
    );
    assert_failed(
        store
            .write(put(t, item("user", "u1"), Condition::Version(1)))
            .await,
    );
    store
        .write(put(t, first.clone(), Condition::NotExists))
        .await
        .expect("NotExists on an absent item");
    assert_failed(
        store
            .write(put(
                t,
                Item::new("user", "u1", json!({ "second": true })),
                Condition::NotExists,
            ))
            .await,
    );
    assert_eq!(
        get(store, t, "user", "u1").await,
        Some(first.clone()),
        "the refused put changed nothing"
    );
    let mut updated = first.clone();
    updated.data = json!({ "updated": true });
    store
        .write(put(t, updated.clone(), Condition::Exists))
        .await
        .expect("Exists on a present item");
    assert_eq!(get(store, t, "user", "u1").await, Some(updated));
}

async fn delete_conditions(store: &dyn Table) {
    let t = TableName::Channels;
    assert_failed(
        store
            .write(delete(t, "c", "absent", Condition::Exists))
            .await,
    );
    assert_failed(
        store
            .write(delete(t, "c", "absent", Condition::Version(1)))
            .await,
    );
    store
        .write(delete(t, "c", "absent", Condition::NotExists))
        .await
        .expect("NotExists delete of nothing");

    let mut stored = item("c", "present");
    stored.version = 3;
    store
        .write(put(t, stored.clone(), Condition::None))
        .await
        .expect("put");
    assert_failed(
        store
            .write(delete(t, "c", "present", Condition::NotExists))
            .await,
    );
    assert_failed(
        store
            .write(delete(t, "c", "present", Condition::Version(2)))
            .await,
    );
    assert_eq!(
        get(store, t, "c", "present").await,
        Some(stored),
        "refused deletes leave the item"
    );
    store
        .write(delete(t, "c", "present", Condition::Version(3)))
        .await
        .expect("delete at the right version");
    assert_eq!(get(store, t, "c", "present").await, None);

    store
        .write(put(t, item("c", "other"), Condition::None))
        .await
        .expect("put");
    store
        .write(delete(t, "c", "other", Condition::Exists))
        .await
        .expect("Exists delete");
    assert_eq!(get(store, t, "c", "other").await, None);
}

async fn check_writes_nothing(store: &dyn Table) {
    let t = TableName::App;
    let check = |condition| Write::Check {
        table: t,
        pk: "k".into(),
        sk: "k".into(),
        condition,
    };
    assert_failed(store.write(check(Condition::Exists)).await);
    store
        .write(check(Condition::NotExists))
        .await
        .expect("NotExists check on nothing");
    store
        .write(check(Condition::None))
        .await
        .expect("unconditional check");
    assert_eq!(
        get(store, t, "k", "k").await,
        None,
        "a check writes nothing"
    );
    store
        .write(put(t, item("k", "k"), Condition::None))
        .await
        .expect("put");
    store
        .write(check(Condition::Version(1)))
        .await
        .expect("version check");
    assert_failed(store.write(check(Condition::Version(2))).await);
    assert_failed(store.write(check(Condition::NotExists)).await);
}

/// Optimistic concurrency as the services use it: read, write version + 1 on the version read.
async fn version_bumps(store: &dyn Table) {
    let t = TableName::App;
    store
        .write(put(t, item("settings", "app"), Condition::NotExists))
        .await
        .expect("create");
    for n in 1..=3u64 {
        let current = get(store, t, "settings", "app").await.expect("present");
        assert_eq!(current.version, n);
        let mut next = current.clone();
        next.version = n + 1;
        next.data = json!({ "revision": n + 1 });
        store
            .write(put(t, next, Condition::Version(n)))
            .await
            .expect("update at the version read");
    }
    let mut stale = item("settings", "app");
    stale.version = 3;
    assert_failed(store.write(put(t, stale, Condition::Version(2))).await);
    let last = get(store, t, "settings", "app").await.expect("present");
    assert_eq!(
        (last.version, last.data),
        (4, json!({ "revision": 4 })),
        "the stale writer lost"
    );
}

async fn transact_is_all_or_nothing(store: &dyn Table) {
    store
        .write(put(
            TableName::Channels,
            item("c", "existing"),
            Condition::None,
        ))
        .await
        .expect("put");
    let failing = vec![
        put(TableName::Channels, item("c", "new1"), Condition::NotExists),
        put(TableName::Messages, item("c", "new2"), Condition::None),
        delete(TableName::Channels, "c", "existing", Condition::None),
        put(TableName::App, item("a", "b"), Condition::Exists),
    ];
    match store.transact(failing).await {
        Err(StoreError::TransactionCanceled { index: Some(3) }) => {}
        other => panic!("expected the transaction to be canceled at write 3, got {other:?}"),
    }
    assert_eq!(
        get(store, TableName::Channels, "c", "new1").await,
        None,
        "nothing of a canceled transaction is written"
    );
    assert_eq!(get(store, TableName::Messages, "c", "new2").await, None);
    assert!(
        get(store, TableName::Channels, "c", "existing")
            .await
            .is_some(),
        "nor deleted"
    );

    match store
        .transact(vec![
            Write::Check {
                table: TableName::Channels,
                pk: "c".into(),
                sk: "missing".into(),
                condition: Condition::Exists,
            },
            put(TableName::Channels, item("c", "new1"), Condition::None),
        ])
        .await
    {
        Err(StoreError::TransactionCanceled { index: Some(0) }) => {}
        other => panic!("expected a failed check at write 0, got {other:?}"),
    }

    store
        .transact(vec![
            put(TableName::Channels, item("c", "new1"), Condition::NotExists),
            put(TableName::Messages, item("c", "new2"), Condition::None),
            delete(TableName::Channels, "c", "existing", Condition::Version(1)),
            Write::Check {
                table: TableName::App,
                pk: "a".into(),
                sk: "b".into(),
                condition: Condition::NotExists,
            },
        ])
        .await
        .expect("transaction whose conditions hold");
    assert!(get(store, TableName::Channels, "c", "new1").await.is_some());
    assert!(get(store, TableName::Messages, "c", "new2").await.is_some());
    assert_eq!(get(store, TableName::Channels, "c", "existing").await, None);
    assert_eq!(
        get(store, TableName::App, "a", "b").await,
        None,
        "a check writes nothing"
    );
    store
        .transact(Vec::new())
        .await
        .expect("an empty transaction is a no-op");
}

async fn transact_limits(store: &dyn Table) {
    let t = TableName::Messages;
    let writes = |n: usize| {
        (0..n)
            .map(|i| put(t, item("p", &format!("{i:03}")), Condition::NotExists))
            .collect::<Vec<_>>()
    };
    assert_invalid(store.transact(writes(MAX_TRANSACTION_WRITES + 1)).await);
    assert_eq!(
        get(store, t, "p", "000").await,
        None,
        "a refused transaction writes nothing"
    );

    let twice = vec![
        put(t, item("p", "x"), Condition::None),
        delete(t, "p", "x", Condition::None),
    ];
    assert_invalid(store.transact(twice).await);
    let check_and_put = vec![
        Write::Check {
            table: t,
            pk: "p".into(),
            sk: "x".into(),
            condition: Condition::NotExists,
        },
        put(t, item("p", "x"), Condition::None),
    ];
    assert_invalid(store.transact(check_and_put).await);
    assert_eq!(get(store, t, "p", "x").await, None);
    // The same key in two tables is two items.
    store
        .transact(vec![
            put(TableName::Messages, item("p", "y"), Condition::None),
            put(TableName::Channels, item("p", "y"), Condition::None),
        ])
        .await
        .expect("same key, different tables");

    store
        .transact(writes(MAX_TRANSACTION_WRITES))
        .await
        .expect("a full transaction");
    let page = store
        .query(Query::new(t, "p").range(SkRange::BeginsWith("0".into())))
        .await
        .expect("query");
    assert_eq!(page.items.len(), MAX_TRANSACTION_WRITES);
}

/// Sort keys compare as UTF-8 bytes: upper case before lower, and U+FF5E (EF BD 9E) before
/// U+1F600 (F0 9F 98 80) although UTF-16 would order them the other way.
const SORTED: [&str; 10] = ["Z", "a", "ab", "abc", "b", "ba", "c", "é", "\u{FF5E}", "😀"];

async fn sorted_partition(store: &dyn Table) {
    let mut shuffled = SORTED.to_vec();
    shuffled.reverse();
    shuffled.swap(2, 7);
    put_all(
        store,
        TableName::Messages,
        shuffled.iter().map(|sk| item("p", sk)),
    )
    .await;
    put_all(
        store,
        TableName::Messages,
        [item("other", "a"), item("p2", "ab"), item("q", "b")],
    )
    .await;
}

async fn sort_key_ranges(store: &dyn Table) {
    sorted_partition(store).await;
    let run = |range: SkRange| async move {
        let page = store
            .query(Query::new(TableName::Messages, "p").range(range.clone()))
            .await
            .expect("query");
        assert_eq!(page.last, None, "{range:?}: no limit, no cursor");
        page.items.into_iter().map(|i| i.sk).collect::<Vec<_>>()
    };
    assert_eq!(run(SkRange::All).await, SORTED);
    assert_eq!(run(SkRange::Eq("ab".into())).await, ["ab"]);
    assert_eq!(run(SkRange::Eq("abx".into())).await, Vec::<String>::new());
    assert_eq!(run(SkRange::BeginsWith("ab".into())).await, ["ab", "abc"]);
    assert_eq!(run(SkRange::BeginsWith("b".into())).await, ["b", "ba"]);
    assert_eq!(
        run(SkRange::BeginsWith("\u{FF5E}".into())).await,
        ["\u{FF5E}"]
    );
    assert_eq!(
        run(SkRange::Between("ab".into(), "b".into())).await,
        ["ab", "abc", "b"]
    );
    assert_eq!(run(SkRange::Between("b".into(), "b".into())).await, ["b"]);
    assert_eq!(run(SkRange::Lt("b".into())).await, ["Z", "a", "ab", "abc"]);
    assert_eq!(
        run(SkRange::Le("b".into())).await,
        ["Z", "a", "ab", "abc", "b"]
    );
    assert_eq!(run(SkRange::Gt("c".into())).await, ["é", "\u{FF5E}", "😀"]);
    assert_eq!(
        run(SkRange::Ge("c".into())).await,
        ["c", "é", "\u{FF5E}", "😀"]
    );
    assert_eq!(run(SkRange::Gt("😀".into())).await, Vec::<String>::new());
}

async fn forward_and_backward(store: &dyn Table) {
    sorted_partition(store).await;
    let backward = store
        .query(Query::new(TableName::Messages, "p").backward())
        .await
        .expect("query");
    let mut expected = SORTED.to_vec();
    expected.reverse();
    assert_eq!(sort_keys(&backward.items), expected);
    let range = store
        .query(
            Query::new(TableName::Messages, "p")
                .range(SkRange::Between("a".into(), "b".into()))
                .backward()
                .limit(2),
        )
        .await
        .expect("query");
    assert_eq!(
        sort_keys(&range.items),
        ["b", "abc"],
        "backward with a limit takes the highest keys first"
    );
    assert!(range.last.is_some());
}

async fn limit_and_cursor_page_through_a_partition(store: &dyn Table) {
    let keys: Vec<String> = (0..25).map(|i| format!("m{i:02}")).collect();
    put_all(
        store,
        TableName::Messages,
        keys.iter().map(|sk| item("chan", sk)),
    )
    .await;
    put_all(
        store,
        TableName::Messages,
        [item("chan2", "m00"), item("cha", "m99")],
    )
    .await;

    let pages = all_pages(store, Query::new(TableName::Messages, "chan").limit(10)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(
        pages
            .concat()
            .iter()
            .map(|i| i.sk.clone())
            .collect::<Vec<_>>(),
        keys
    );

    let pages = all_pages(
        store,
        Query::new(TableName::Messages, "chan").backward().limit(7),
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 7, 4]);
    let mut reversed = keys.clone();
    reversed.reverse();
    assert_eq!(
        pages
            .concat()
            .iter()
            .map(|i| i.sk.clone())
            .collect::<Vec<_>>(),
        reversed
    );

    // A limit that exactly covers what is left says so: no empty trailing page.
    let pages = all_pages(
        store,
        Query::new(TableName::Messages, "chan")
            .range(SkRange::Lt("m10".into()))
            .limit(5),
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5]);

    let first = store
        .query(
            Query::new(TableName::Messages, "chan")
                .range(SkRange::Ge("m20".into()))
                .limit(2),
        )
        .await
        .expect("query");
    assert_eq!(sort_keys(&first.items), ["m20", "m21"]);
    let cursor = first.last.expect("more follow");
    let rest = store
        .query(
            Query::new(TableName::Messages, "chan")
                .range(SkRange::Ge("m20".into()))
                .start_after(Some(cursor)),
        )
        .await
        .expect("query");
    assert_eq!(sort_keys(&rest.items), ["m22", "m23", "m24"]);
    assert_eq!(rest.last, None);
}

/// A keys-only query pages like any other and returns each item's keys, index keys, expiry and
/// version, with no document.
async fn keys_only_queries(store: &dyn Table) {
    let t = TableName::Channels;
    let mut stored = Vec::new();
    for sk in ["a", "b", "c"] {
        let mut it = item("p", sk)
            .with_gsi1("by-user", sk)
            .with_gsi2("other", sk);
        it.ttl = Some(now() + 3600);
        store
            .write(put(t, it.clone(), Condition::None))
            .await
            .expect("put");
        stored.push(Item {
            data: serde_json::Value::Null,
            ..it
        });
    }
    let first = store
        .query(Query::new(t, "p").keys_only().limit(2))
        .await
        .expect("query");
    assert_eq!(first.items, stored[..2]);
    let rest = store
        .query(Query::new(t, "p").keys_only().start_after(first.last))
        .await
        .expect("query");
    assert_eq!(rest.items, stored[2..]);
    let by_index = store
        .query(Query::new(t, "by-user").index(Index::Gsi1).keys_only())
        .await
        .expect("index query");
    assert_eq!(by_index.items, stored);
}

async fn secondary_indexes(store: &dyn Table) {
    let t = TableName::Channels;
    put_all(
        store,
        t,
        [
            item("channel#a", "member#u1")
                .with_gsi1("user#u1", "2024-01-02")
                .with_gsi2("role#admin", "u1"),
            item("channel#b", "member#u1").with_gsi1("user#u1", "2024-01-01"),
            item("channel#c", "member#u1")
                .with_gsi1("user#u1", "2024-01-03")
                .with_gsi2("role#admin", "u1c"),
            item("channel#a", "member#u2")
                .with_gsi1("user#u2", "2024-01-01")
                .with_gsi2("role#user", "u2"),
            item("channel#a", "settings"),
            item("channel#d", "read#u1").with_gsi2("role#admin", "u0"),
        ],
    )
    .await;
    put_all(
        store,
        TableName::Messages,
        [item("m", "1").with_gsi1("user#u1", "2024-01-01")],
    )
    .await;

    let by_user = store
        .query(Query::new(t, "user#u1").index(Index::Gsi1))
        .await
        .expect("gsi1 query");
    let channels: Vec<&str> = by_user.items.iter().map(|i| i.pk.as_str()).collect();
    assert_eq!(
        channels,
        ["channel#b", "channel#a", "channel#c"],
        "ordered by the index sort key"
    );
    assert_eq!(
        by_user.items[1],
        item("channel#a", "member#u1")
            .with_gsi1("user#u1", "2024-01-02")
            .with_gsi2("role#admin", "u1")
    );

    let recent = store
        .query(
            Query::new(t, "user#u1")
                .index(Index::Gsi1)
                .range(SkRange::Gt("2024-01-01".into()))
                .backward(),
        )
        .await
        .expect("gsi1 range");
    assert_eq!(
        recent
            .items
            .iter()
            .map(|i| i.pk.as_str())
            .collect::<Vec<_>>(),
        ["channel#c", "channel#a"]
    );

    let admins = store
        .query(Query::new(t, "role#admin").index(Index::Gsi2))
        .await
        .expect("gsi2 query");
    let keys: Vec<(&str, &str)> = admins
        .items
        .iter()
        .map(|i| (i.pk.as_str(), i.sk.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("channel#d", "read#u1"),
            ("channel#a", "member#u1"),
            ("channel#c", "member#u1")
        ]
    );
    let admins_u1 = store
        .query(
            Query::new(t, "role#admin")
                .index(Index::Gsi2)
                .range(SkRange::BeginsWith("u1".into())),
        )
        .await
        .expect("gsi2");
    assert_eq!(admins_u1.items.len(), 2);

    // Dropping the index keys takes the item out of the index.
    store
        .write(put(t, item("channel#a", "member#u1"), Condition::Exists))
        .await
        .expect("rewrite without index keys");
    let by_user = store
        .query(Query::new(t, "user#u1").index(Index::Gsi1))
        .await
        .expect("gsi1 query");
    assert_eq!(
        by_user
            .items
            .iter()
            .map(|i| i.pk.as_str())
            .collect::<Vec<_>>(),
        ["channel#b", "channel#c"]
    );
    let admins = store
        .query(Query::new(t, "role#admin").index(Index::Gsi2))
        .await
        .expect("gsi2 query");
    assert_eq!(admins.items.len(), 2);
    let nobody = store
        .query(Query::new(t, "settings").index(Index::Gsi1))
        .await
        .expect("gsi1 query");
    assert!(
        nobody.items.is_empty(),
        "base-table keys are not index keys"
    );
}

async fn index_paging_through_ties(store: &dyn Table) {
    let t = TableName::App;
    // Ten items share one index sort key: paging must still see each exactly once.
    let mut expected: Vec<(String, String)> = Vec::new();
    for i in 0..10 {
        let (pk, sk) = (format!("user#{i}"), "profile".to_owned());
        store
            .write(put(
                t,
                item(&pk, &sk).with_gsi1("users", "same"),
                Condition::None,
            ))
            .await
            .expect("put");
        expected.push((pk, sk));
    }
    for i in 0..3 {
        let (pk, sk) = (format!("user#{i}"), "z-later".to_owned());
        store
            .write(put(
                t,
                item(&pk, &sk).with_gsi1("users", "zz"),
                Condition::None,
            ))
            .await
            .expect("put");
        expected.push((pk, sk));
    }
    for forward in [true, false] {
        let mut query = Query::new(t, "users").index(Index::Gsi1).limit(3);
        if !forward {
            query = query.backward();
        }
        let pages = all_pages(store, query).await;
        let mut seen: Vec<(String, String)> =
            pages.concat().into_iter().map(|i| (i.pk, i.sk)).collect();
        let tail: Vec<&str> = if forward {
            seen[10..].iter().map(|(_, sk)| sk.as_str()).collect()
        } else {
            seen[..3].iter().map(|(_, sk)| sk.as_str()).collect()
        };
        assert_eq!(
            tail, ["z-later"; 3],
            "index sort key order (forward: {forward})"
        );
        seen.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(seen, want, "every item once (forward: {forward})");
    }
}

async fn ttl_expiry(store: &dyn Table) {
    let t = TableName::Connections;
    let expiring = |sk: &str, ttl: i64| {
        let mut i = item("conn", sk).with_gsi1("user#1", sk);
        i.ttl = Some(ttl);
        i
    };
    let live_until = now() + 3600;
    let expired_at = now() - 60;
    for i in 0..10 {
        let sk = format!("c{i}");
        let ttl = if i % 3 == 0 { live_until } else { expired_at };
        store
            .write(put(t, expiring(&sk, ttl), Condition::None))
            .await
            .expect("put");
    }
    assert_eq!(
        get(store, t, "conn", "c1").await,
        None,
        "an expired item is not returned"
    );
    assert!(
        get(store, t, "conn", "c0").await.is_some(),
        "an item before its ttl is"
    );

    let page = store.query(Query::new(t, "conn")).await.expect("query");
    assert_eq!(sort_keys(&page.items), ["c0", "c3", "c6", "c9"]);
    for query in [
        Query::new(t, "conn").limit(1),
        Query::new(t, "user#1").index(Index::Gsi1).limit(1),
    ] {
        let pages = all_pages(store, query.clone()).await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 1, 1, 1],
            "{query:?}: limits count live items"
        );
        assert_eq!(sort_keys(&pages.concat()), ["c0", "c3", "c6", "c9"]);
    }
    let backward = all_pages(store, Query::new(t, "conn").backward().limit(3)).await;
    assert_eq!(sort_keys(&backward.concat()), ["c9", "c6", "c3", "c0"]);

    let keys: Vec<(String, String)> = ["c0", "c1", "c2"]
        .iter()
        .map(|sk| ("conn".to_owned(), sk.to_string()))
        .collect();
    assert_eq!(
        sort_keys(&store.batch_get(t, &keys).await.expect("batch_get")),
        ["c0"]
    );

    // Conditions see an expired item as absent.
    assert_failed(
        store
            .write(put(t, expiring("c1", live_until), Condition::Exists))
            .await,
    );
    assert_failed(
        store
            .write(put(t, expiring("c1", live_until), Condition::Version(1)))
            .await,
    );
    assert_failed(
        store
            .write(delete(t, "conn", "c2", Condition::Exists))
            .await,
    );
    assert_failed(
        store
            .write(Write::Check {
                table: t,
                pk: "conn".into(),
                sk: "c2".into(),
                condition: Condition::Exists,
            })
            .await,
    );
    store
        .write(put(t, expiring("c1", live_until), Condition::NotExists))
        .await
        .expect("NotExists over an expired item");
    assert_eq!(
        get(store, t, "conn", "c1").await,
        Some(expiring("c1", live_until))
    );
    store
        .transact(vec![put(
            t,
            expiring("c2", live_until),
            Condition::NotExists,
        )])
        .await
        .expect("same in a transaction");
    assert!(get(store, t, "conn", "c2").await.is_some());
}

async fn batch_get(store: &dyn Table) {
    let t = TableName::Messages;
    assert!(store
        .batch_get(t, &[])
        .await
        .expect("empty batch")
        .is_empty());
    let stored: Vec<Item> = (0..120)
        .map(|i| item("p", &format!("{i:03}")).with_gsi1("g", format!("{i}")))
        .collect();
    for chunk in stored.chunks(MAX_TRANSACTION_WRITES) {
        store
            .transact(
                chunk
                    .iter()
                    .map(|i| put(t, i.clone(), Condition::None))
                    .collect(),
            )
            .await
            .expect("load");
    }
    // 150 distinct keys (more than one DynamoDB request), some missing, some asked twice.
    let mut keys: Vec<(String, String)> = (0..150)
        .map(|i| ("p".to_owned(), format!("{i:03}")))
        .collect();
    keys.push(("p".into(), "005".into()));
    keys.push(("other".into(), "000".into()));
    let mut found = store.batch_get(t, &keys).await.expect("batch_get");
    found.sort_by(|a, b| a.sk.cmp(&b.sk));
    assert_eq!(found, stored);
}

/// A table whose change feed carries whole images (DynamoDB's NEW_AND_OLD_IMAGES).
const FEED: TableName = TableName::Connections;
/// The append-only outbox, whose feed names keys.
const OUTBOX: TableName = TableName::Events;

/// Reads changes from `from` until at least `count` arrived (streams may lag) or time runs out.
async fn read_at_least(
    store: &dyn Table,
    from: Option<&ChangePosition>,
    count: usize,
) -> ChangeBatch {
    read_feed_at_least(store, FEED, from, count).await
}

async fn read_feed_at_least(
    store: &dyn Table,
    table: TableName,
    from: Option<&ChangePosition>,
    count: usize,
) -> ChangeBatch {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut changes = Vec::new();
    let mut position = from.cloned();
    loop {
        let batch = store
            .read_changes(table, position.as_ref(), 1000)
            .await
            .expect("read_changes");
        changes.extend(batch.changes);
        position = Some(batch.next);
        if changes.len() >= count || tokio::time::Instant::now() > deadline {
            return ChangeBatch {
                changes,
                next: position.unwrap_or_default(),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn summary(changes: &[Change]) -> Vec<(ChangeKind, String, Option<u64>, Option<u64>)> {
    changes
        .iter()
        .map(|c| {
            (
                c.kind,
                c.sk.clone(),
                c.old.as_ref().map(|i| i.version),
                c.new.as_ref().map(|i| i.version),
            )
        })
        .collect()
}

async fn change_feed(store: &dyn Table) {
    let first = item("event", "e1").with_gsi1("channel#1", "t1");
    let mut second = first.clone();
    second.version = 2;
    second.data = json!({ "changed": true });
    store
        .write(put(FEED, first.clone(), Condition::NotExists))
        .await
        .expect("insert");
    store
        .write(put(TableName::App, item("event", "e1"), Condition::None))
        .await
        .expect("a table without a feed");
    store
        .write(put(FEED, second.clone(), Condition::Version(1)))
        .await
        .expect("modify");
    assert_failed(
        store
            .write(put(FEED, item("event", "e1"), Condition::NotExists))
            .await,
    );
    assert!(matches!(
        store
            .transact(vec![
                put(FEED, item("event", "e9"), Condition::None),
                delete(FEED, "event", "e1", Condition::Version(9))
            ])
            .await,
        Err(StoreError::TransactionCanceled { .. })
    ));
    store
        .write(delete(FEED, "event", "e1", Condition::Exists))
        .await
        .expect("remove");
    store
        .write(delete(FEED, "event", "never", Condition::None))
        .await
        .expect("deleting nothing");
    store
        .transact(vec![
            put(FEED, item("event", "e2"), Condition::None),
            put(TableName::Channels, item("c", "c"), Condition::None),
        ])
        .await
        .expect("transaction");

    let batch = read_at_least(store, None, 4).await;
    assert_eq!(
        summary(&batch.changes),
        [
            (ChangeKind::Insert, "e1".into(), None, Some(1)),
            (ChangeKind::Modify, "e1".into(), Some(1), Some(2)),
            (ChangeKind::Remove, "e1".into(), Some(2), None),
            (ChangeKind::Insert, "e2".into(), None, Some(1)),
        ],
        "committed writes only, in order"
    );
    let [insert, modify, remove, _] = &batch.changes[..] else {
        panic!("four changes")
    };
    assert_eq!((insert.table, insert.pk.as_str()), (FEED, "event"));
    assert_eq!(
        insert.new.as_ref(),
        Some(&first),
        "the new image is the whole item"
    );
    assert_eq!(
        (modify.old.as_ref(), modify.new.as_ref()),
        (Some(&first), Some(&second))
    );
    assert_eq!(remove.old.as_ref(), Some(&second));

    assert_invalid(store.read_changes(TableName::App, None, 10).await);
    assert_invalid(
        store
            .read_changes(FEED, Some(&ChangePosition("not a position".into())), 10)
            .await,
    );
}

async fn change_feed_resumes_from_position(store: &dyn Table) {
    for i in 0..5 {
        store
            .write(put(FEED, item("event", &format!("e{i}")), Condition::None))
            .await
            .expect("put");
    }
    read_at_least(store, None, 5).await;
    let first = store.read_changes(FEED, None, 2).await.expect("read");
    assert_eq!(
        first
            .changes
            .iter()
            .map(|c| c.sk.as_str())
            .collect::<Vec<_>>(),
        ["e0", "e1"],
        "limit applies"
    );
    let rest = store
        .read_changes(FEED, Some(&first.next), 100)
        .await
        .expect("read");
    assert_eq!(
        rest.changes
            .iter()
            .map(|c| c.sk.as_str())
            .collect::<Vec<_>>(),
        ["e2", "e3", "e4"],
        "resumes after the position"
    );
    let again = store
        .read_changes(FEED, Some(&first.next), 100)
        .await
        .expect("read");
    assert_eq!(
        again.changes, rest.changes,
        "a position can be read again (at-least-once consumers)"
    );
    let caught_up = store
        .read_changes(FEED, Some(&rest.next), 100)
        .await
        .expect("read");
    assert!(caught_up.changes.is_empty());

    store
        .write(delete(FEED, "event", "e0", Condition::None))
        .await
        .expect("delete");
    store
        .write(put(FEED, item("event", "e5"), Condition::None))
        .await
        .expect("put");
    let later = read_at_least(store, Some(&caught_up.next), 2).await;
    assert_eq!(
        summary(&later.changes),
        [
            (ChangeKind::Remove, "e0".into(), Some(1), None),
            (ChangeKind::Insert, "e5".into(), None, Some(1))
        ]
    );
    let empty = store
        .read_changes(FEED, Some(&later.next), 100)
        .await
        .expect("read");
    assert!(empty.changes.is_empty());
}

/// The outbox's feed names each change by its keys; an insert comes with the item as stored
/// (read when the feed is read), a removal with no image.
async fn outbox_feed_names_keys(store: &dyn Table) {
    let event = item("user:1", "e1").with_gsi1("x", "y");
    store
        .write(put(OUTBOX, event.clone(), Condition::NotExists))
        .await
        .expect("insert");
    store
        .write(delete(OUTBOX, "user:1", "e1", Condition::Exists))
        .await
        .expect("remove");
    store
        .write(put(OUTBOX, item("user:1", "e2"), Condition::NotExists))
        .await
        .expect("insert");
    let batch = read_feed_at_least(store, OUTBOX, None, 3).await;
    let seen: Vec<(ChangeKind, &str, Option<&Item>, Option<&Item>)> = batch
        .changes
        .iter()
        .map(|c| (c.kind, c.sk.as_str(), c.old.as_ref(), c.new.as_ref()))
        .collect();
    let second = item("user:1", "e2");
    assert_eq!(
        seen,
        [
            // Removed before the feed was read: the insert has nothing left to show.
            (ChangeKind::Insert, "e1", None, None),
            (ChangeKind::Remove, "e1", None, None),
            (ChangeKind::Insert, "e2", None, Some(&second)),
        ]
    );
}

async fn concurrent_conditional_puts(store: &dyn Table) {
    let attempts = (0..8).map(|n| {
        store.write(put(
            TableName::App,
            Item::new("username", "alice", json!({ "owner": n })),
            Condition::NotExists,
        ))
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        won, 1,
        "exactly one of concurrent creators wins: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::ConditionFailed))),
        "{results:?}"
    );
}

/// Transactions committed at the same moment stay independent: each is all or nothing, whatever
/// the others do (the embedded store commits concurrent ones as a group).
async fn concurrent_transactions_are_independent(store: &dyn Table) {
    let t = TableName::Channels;
    let attempts = (0..24).map(|n| {
        // Every third transaction's last write fails its condition.
        let last = if n % 3 == 0 {
            Condition::Exists
        } else {
            Condition::NotExists
        };
        store.transact(vec![
            put(t, item(&format!("tx{n}"), "a"), Condition::NotExists),
            put(t, item(&format!("tx{n}"), "b"), last),
        ])
    });
    let results = futures::future::join_all(attempts).await;
    for (n, result) in results.iter().enumerate() {
        let stored = (
            get(store, t, &format!("tx{n}"), "a").await.is_some(),
            get(store, t, &format!("tx{n}"), "b").await.is_some(),
        );
        if n % 3 == 0 {
            assert!(
                matches!(result, Err(StoreError::TransactionCanceled { .. })),
                "{n}: {result:?}"
            );
            assert_eq!(
                stored,
                (false, false),
                "{n}: nothing of a canceled transaction"
            );
        } else {
            assert!(result.is_ok(), "{n}: {result:?}");
            assert_eq!(stored, (true, true), "{n}");
        }
    }
}

async fn invalid_requests(store: &dyn Table) {
    let t = TableName::Messages;
    assert_invalid(store.query(Query::new(t, "p").limit(0)).await);
    assert_invalid(
        store
            .query(Query::new(t, "p").range(SkRange::Between("b".into(), "a".into())))
            .await,
    );
    assert_invalid(store.write(put(t, item("", "x"), Condition::None)).await);
    assert_invalid(
        store
            .write(put(t, item("p", "x").with_gsi1("", "x"), Condition::None))
            .await,
    );
}

fn assert_failed<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::ConditionFailed)),
        "expected ConditionFailed, got {result:?}"
    );
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "expected Invalid, got {result:?}"
    );
}

/// What only the embedded store promises: durability across restarts and a commit notifier.
mod embedded_only {
    use super::*;

    #[tokio::test]
    async fn reopening_keeps_items_and_the_change_feed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let stored = item("channel#1", "member#1").with_gsi1("user#1", "c1");
        let position = {
            let store = Embedded::open(dir.path()).expect("open");
            store
                .write(put(
                    TableName::Channels,
                    stored.clone(),
                    Condition::NotExists,
                ))
                .await
                .expect("put");
            store
                .write(put(FEED, item("event", "e1"), Condition::None))
                .await
                .expect("put");
            store.read_changes(FEED, None, 10).await.expect("read").next
        };
        let store = Embedded::open(dir.path()).expect("reopen");
        assert_eq!(
            get(&store, TableName::Channels, "channel#1", "member#1").await,
            Some(stored.clone())
        );
        let by_user = store
            .query(Query::new(TableName::Channels, "user#1").index(Index::Gsi1))
            .await
            .expect("query");
        assert_eq!(by_user.items, [stored]);
        let before = store.read_changes(FEED, None, 10).await.expect("read");
        assert_eq!(before.changes.len(), 1, "the change log survives");
        store
            .write(put(FEED, item("event", "e2"), Condition::None))
            .await
            .expect("put");
        let after = store
            .read_changes(FEED, Some(&position), 10)
            .await
            .expect("read");
        assert_eq!(
            after
                .changes
                .iter()
                .map(|c| c.sk.as_str())
                .collect::<Vec<_>>(),
            ["e2"],
            "positions stay valid"
        );
    }

    /// Compaction of the outbox: the changes through a position and the events they inserted
    /// are gone; later ones stay readable from that position.
    #[tokio::test]
    async fn delivered_outbox_changes_are_forgotten() {
        let store = Embedded::in_memory().expect("store");
        for sk in ["e1", "e2"] {
            store
                .write(put(OUTBOX, item("user:1", sk), Condition::NotExists))
                .await
                .expect("insert");
        }
        let delivered = store.read_changes(OUTBOX, None, 1).await.expect("read");
        store
            .write(put(OUTBOX, item("user:1", "e3"), Condition::NotExists))
            .await
            .expect("insert");
        assert_eq!(
            store
                .forget_through(OUTBOX, &delivered.next)
                .await
                .expect("forget"),
            1
        );
        assert_eq!(get(&store, OUTBOX, "user:1", "e1").await, None);
        let rest = store.read_changes(OUTBOX, None, 10).await.expect("read");
        let seen: Vec<&str> = rest.changes.iter().map(|c| c.sk.as_str()).collect();
        assert_eq!(seen, ["e2", "e3"]);
        assert!(rest.changes.iter().all(|c| c.new.is_some()));
        assert_invalid(store.forget_through(FEED, &delivered.next).await);
    }

    /// A database of schema 1 (items in a WITHOUT ROWID table) opens with its items moved to
    /// the current table, indexes included.
    #[tokio::test]
    async fn a_schema_1_database_is_migrated() {
        let dir = tempfile::tempdir().expect("temporary directory");
        {
            let conn = rusqlite::Connection::open(dir.path().join("chat.db")).expect("open");
            conn.execute_batch(
                "CREATE TABLE items (tbl TEXT NOT NULL, pk TEXT NOT NULL, sk TEXT NOT NULL,
                     gsi1pk TEXT, gsi1sk TEXT, gsi2pk TEXT, gsi2sk TEXT, ttl INTEGER,
                     version INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tbl, pk, sk))
                     WITHOUT ROWID;
                 CREATE INDEX items_gsi1 ON items (tbl, gsi1pk, gsi1sk, pk, sk) WHERE gsi1pk IS NOT NULL;
                 INSERT INTO items VALUES ('channels', 'channel#1', 'member#1', 'user#1', 'c1',
                     NULL, NULL, NULL, 3, '{\"role\":\"member\"}');
                 PRAGMA user_version = 1;",
            )
            .expect("a schema 1 database");
        }
        let store = Embedded::open(dir.path()).expect("open and migrate");
        let mut expected = Item::new("channel#1", "member#1", json!({ "role": "member" }))
            .with_gsi1("user#1", "c1");
        expected.version = 3;
        assert_eq!(
            get(&store, TableName::Channels, "channel#1", "member#1").await,
            Some(expected.clone())
        );
        let by_user = store
            .query(Query::new(TableName::Channels, "user#1").index(Index::Gsi1))
            .await
            .expect("query");
        assert_eq!(by_user.items, [expected]);
        store
            .write(put(
                TableName::Channels,
                item("channel#1", "member#1"),
                Condition::NotExists,
            ))
            .await
            .expect_err("a put under the key finds the migrated item");
        drop(store);
        Embedded::open(dir.path()).expect("a migrated database reopens");
    }

    /// Like DynamoDB's TTL deletes, purging an expired item records its removal in the feed.
    #[tokio::test]
    async fn expired_items_are_purged_with_a_remove_change() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut expired = item("conn", "c1");
        expired.ttl = Some(now() - 60);
        {
            let store = Embedded::open(dir.path()).expect("open");
            store
                .write(put(
                    TableName::Connections,
                    expired.clone(),
                    Condition::None,
                ))
                .await
                .expect("put");
            store
                .write(put(TableName::App, expired.clone(), Condition::None))
                .await
                .expect("put");
        }
        // Opening runs the housekeeping pass.
        let store = Embedded::open(dir.path()).expect("reopen");
        let batch = store
            .read_changes(TableName::Connections, None, 10)
            .await
            .expect("read");
        let kinds: Vec<ChangeKind> = batch.changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ChangeKind::Insert, ChangeKind::Remove]);
        assert_eq!(batch.changes[1].old.as_ref(), Some(&expired));
        // Gone for good: a new item with no ttl under the key is an insert, not a modify.
        store
            .write(put(
                TableName::Connections,
                item("conn", "c1"),
                Condition::None,
            ))
            .await
            .expect("put");
        let next = store
            .read_changes(TableName::Connections, Some(&batch.next), 10)
            .await
            .expect("read");
        assert_eq!(next.changes[0].kind, ChangeKind::Insert);
        assert_eq!(next.changes[0].old, None);
    }

    #[tokio::test]
    async fn change_notifier_wakes_a_waiting_worker() {
        let store = Embedded::in_memory().expect("store");
        let notify = store.change_notifier();
        let waiter = tokio::spawn(async move { notify.notified().await });
        tokio::task::yield_now().await;
        store
            .write(put(TableName::App, item("a", "b"), Condition::None))
            .await
            .expect("put");
        store
            .write(put(FEED, item("event", "e1"), Condition::None))
            .await
            .expect("put");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken after the commit")
            .expect("waiter");
    }
}

mod dynamodb_only {
    use super::*;

    #[tokio::test]
    async fn create_tables_is_idempotent_and_complete() {
        let moto = Moto::shared();
        let config = moto.sdk_config();
        let client = aws_sdk_dynamodb::Client::new(&config);
        let store = DynamoDb::new(
            client.clone(),
            aws_sdk_dynamodbstreams::Client::new(&config),
            "idem-",
        );
        store.create_tables().await.expect("create");
        store.create_tables().await.expect("create again");
        for table in TableName::ALL {
            let name = store.table_name(table);
            let described = client
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .expect("describe");
            let description = described.table().expect("table description");
            let mut indexes: Vec<&str> = description
                .global_secondary_indexes()
                .iter()
                .filter_map(|i| i.index_name())
                .collect();
            indexes.sort();
            assert_eq!(indexes, ["gsi1", "gsi2"], "{name}");
            assert_eq!(
                description.latest_stream_arn().is_some(),
                table.has_change_feed(),
                "{name} stream"
            );
            let ttl = client
                .describe_time_to_live()
                .table_name(&name)
                .send()
                .await
                .expect("describe ttl");
            let ttl = ttl.time_to_live_description().expect("ttl description");
            assert_eq!(ttl.attribute_name(), Some("ttl"), "{name}");
        }
    }
}
