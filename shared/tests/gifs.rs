//! The Giphy adapter against a loopback stand-in for Giphy's search API: the request it makes
//! (key, query, position, rating) and the GIF it reads from the answer; no result and a failing
//! API are told apart.

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use shared::gifs::{GifSearch, GiphyApi};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

async fn stand_in(status: u16) -> (String, Arc<Mutex<Vec<HashMap<String, String>>>>) {
    let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/gifs/search",
        get(move |Query(q): Query<HashMap<String, String>>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(q.clone());
                let data = if q.get("q").map(String::as_str) == Some("nothing") {
                    json!([])
                } else {
                    json!([{
                        "url": "https://giphy.com/gifs/cat-123",
                        "title": "Cat GIF",
                        "images": {
                            "original": {"url": "https://media.giphy.com/media/123/giphy.gif", "width": "480", "height": "270"},
                            "fixed_height": {"url": "https://media.giphy.com/media/123/200.gif", "width": "356", "height": "200"}
                        }
                    }])
                };
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(json!({ "data": data })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn giphy_search_reads_the_gif_at_a_position() {
    let (url, seen) = stand_in(200).await;
    let giphy = GiphyApi::new("the key", &url, "pg").unwrap();
    let gif = giphy.find("funny cat", 2).await.unwrap().expect("a gif");
    assert_eq!(gif.page_url, "https://giphy.com/gifs/cat-123");
    let attachment = gif.attachment("funny cat");
    assert_eq!(attachment["type"], "giphy");
    assert_eq!(attachment["title"], "funny cat");
    assert_eq!(
        attachment["image_url"],
        "https://media.giphy.com/media/123/200.gif"
    );
    assert_eq!(attachment["giphy"]["original"]["width"], "480");
    let asked = seen.lock().unwrap()[0].clone();
    assert_eq!(asked["api_key"], "the key");
    assert_eq!(asked["q"], "funny cat");
    assert_eq!(asked["offset"], "2");
    assert_eq!(asked["limit"], "1");
    assert_eq!(asked["rating"], "pg");
    assert!(giphy.find("nothing", 0).await.unwrap().is_none());
}

#[tokio::test]
async fn a_failing_giphy_is_an_error_not_an_empty_result() {
    let (url, _) = stand_in(500).await;
    let giphy = GiphyApi::new("k", &url, "g").unwrap();
    let err = giphy.find("cat", 0).await.expect_err("unavailable");
    assert!(err.to_string().contains("500"), "{err}");
}
