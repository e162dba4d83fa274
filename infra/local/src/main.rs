//! chat-local: every function's routes on one port, on the embedded store, as one process.
//! Prints the URL and credentials on start; stops cleanly on Ctrl-C / SIGTERM.

mod files;
mod hooks;
mod longpoll;
mod scheduler;
mod ws;

use clap::Parser;
use shared::domain::clock::SystemClock;
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::embedded::Embedded;
use shared::store::Table;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every request builds and drops many small JSON values; mimalloc's thread-local free lists
/// keep that off the contended, consolidating paths of the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "chat-local",
    about = "Stream-compatible chat backend as one local process"
)]
struct Args {
    /// Port for REST and WebSocket (not 3030: the JS client rewrites it to 8800 for WebSocket).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Where data and generated credentials are kept.
    #[arg(long, default_value = "./.chat-data")]
    data_dir: PathBuf,
    /// Keep everything in memory (nothing survives the process).
    #[arg(long)]
    in_memory: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
    /// Browser origins allowed to call the API (CORS): `*` for any, or a comma-separated list
    /// such as `https://app.example.com,http://localhost:5173`.
    #[arg(long, env = "CHAT_CORS_ORIGINS", default_value = "*")]
    cors_origins: String,
    /// The address clients reach this process at, for the links to uploads and export files
    /// (default: the address it listens on).
    #[arg(long, env = "CHAT_PUBLIC_URL")]
    public_url: Option<String>,
}

/// How long a stop waits for requests in flight before it ends them.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Campaign jobs (expansion steps, delivery batches) run at once.
const CAMPAIGN_WORKERS: usize = 4;
/// How long a stop waits for every WebSocket to send its close frame.
const SOCKET_CLOSE_GRACE: Duration = Duration::from_secs(5);

fn random_string(len: usize) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric
        .sample_string(&mut rand::rng(), len)
        .to_lowercase()
}

/// `CHAT_API_KEY` / `CHAT_API_SECRET` win; otherwise the credentials kept in the data
/// directory, generated on first start.
fn credentials(data_dir: Option<&Path>) -> Result<AppKeys, String> {
    let env_key = std::env::var("CHAT_API_KEY").ok().filter(|v| !v.is_empty());
    let env_secret = std::env::var("CHAT_API_SECRET")
        .ok()
        .filter(|v| !v.is_empty());
    let path = data_dir.map(|d| d.join("credentials.json"));
    let stored: Option<serde_json::Value> = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let stored_field = |f: &str| {
        stored
            .as_ref()
            .and_then(|s| s.get(f))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let keys = AppKeys {
        api_key: env_key
            .or_else(|| stored_field("api_key"))
            .unwrap_or_else(|| random_string(12)),
        api_secret: env_secret
            .or_else(|| stored_field("api_secret"))
            .unwrap_or_else(|| random_string(48)),
    };
    if let (Some(path), None) = (&path, &stored) {
        let doc = serde_json::json!({"api_key": keys.api_key, "api_secret": keys.api_secret});
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(keys)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("chat-local: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (embedded, data_dir) = if args.in_memory {
        (Embedded::in_memory().map_err(|e| e.to_string())?, None)
    } else {
        std::fs::create_dir_all(&args.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
        (
            Embedded::open(&args.data_dir).map_err(|e| e.to_string())?,
            Some(args.data_dir.as_path()),
        )
    };
    let outbox = shared::store::TableName::Events;
    let start = embedded
        .change_feed_end(outbox)
        .await
        .map_err(|e| e.to_string())?;
    // The hooks resume where they stopped; a new data directory starts at the end.
    let hooks_start = match hooks::stored_position(&embedded).await? {
        Some(stored) => hooks::earlier(&stored, &start),
        None => start.clone(),
    };
    // Events left from a previous run were for sockets that are gone (and are kept only while
    // the hooks have not had them).
    embedded
        .forget_through(outbox, &hooks::earlier(&start, &hooks_start))
        .await
        .map_err(|e| e.to_string())?;
    let (handed, held) = tokio::sync::watch::channel(hooks_start.clone());
    let feed = ws::OutboxFeed {
        start,
        store: embedded.clone(),
        held,
    };
    let hook_store = embedded.clone();
    let store: Arc<dyn Table> = Arc::new(embedded);
    let keys = credentials(data_dir)?;
    // Export files and uploads: in the data directory (or memory), served by this process.
    let public_url = args.public_url.clone().unwrap_or_else(|| {
        let host = if local.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            local.ip().to_string()
        };
        match local.ip() {
            std::net::IpAddr::V6(_) if !local.ip().is_unspecified() => {
                format!("http://[{host}]:{}", local.port())
            }
            _ => format!("http://{host}:{}", local.port()),
        }
    });
    let files = Arc::new(match data_dir {
        Some(d) => shared::files::local::LocalFiles::in_directory(
            d.join("files"),
            &public_url,
            &keys.api_secret,
        ),
        None => shared::files::local::LocalFiles::in_memory(&public_url, &keys.api_secret),
    });
    // Campaign fan-out: jobs kept in the store, run by this process (a restart resumes them).
    let campaign_queue = shared::service::campaigns::StoreQueue::new(store.clone());
    let chat = Chat::new(
        store,
        Arc::new(SystemClock),
        keys.clone(),
        TaskMode::Background,
    )
    .with_files(files.clone())
    .with_public_url(&public_url)
    .with_campaign_queue(campaign_queue.clone())
    // CHAT_CAMPAIGN_BATCH, CHAT_CAMPAIGN_CONCURRENCY: how fast campaigns go.
    .with_campaign_limits(shared::service::campaigns::CampaignLimits::from_env()?);
    // CHAT_TRANSLATOR=amazon: messages translate with Amazon Translate (AWS credentials and
    // region from the environment, AWS_ENDPOINT_URL_TRANSLATE to point elsewhere).
    let chat = shared::environment::with_translator_from_env(chat).await;
    // GIPHY_API_KEY: `/giphy` searches Giphy; without it GIFs are made locally.
    let chat = shared::environment::with_gifs_from_env(chat).map_err(|e| e.to_string())?;
    // Link previews from the web (CHAT_URL_PREVIEW_ALLOW: internal addresses they may reach).
    let chat = shared::environment::with_previews_from_env(chat).map_err(|e| e.to_string())?;
    chat.bootstrap().await.map_err(|e| e.to_string())?;
    let resumed = chat
        .resume_pending_tasks()
        .await
        .map_err(|e| e.to_string())?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed unfinished tasks");
    }
    // Sockets of a previous run are gone: no ghost watchers or presence survive a restart.
    let stale = chat
        .close_host_connections(ws::LOCAL_HOST)
        .await
        .map_err(|e| e.to_string())?;
    if stale > 0 {
        tracing::info!(stale, "closed connections left by the previous run");
    }

    let cors = shared::http::CorsOrigins::parse(&args.cors_origins)
        .map_err(|e| format!("--cors-origins: {e}"))?;
    let routes = api_app::routes()
        .merge(api_users::routes())
        .merge(api_channels::routes())
        .merge(api_messages::routes())
        .merge(api_campaigns::routes());
    let gateway = Arc::new(shared::realtime::local::LocalGateway::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let realtime = ws::Realtime {
        chat: chat.clone(),
        gateway: gateway.clone(),
        polls: Arc::default(),
        stopping: stop_rx.clone(),
        sockets: Arc::default(),
    };
    let idle_polls = tokio::spawn(longpoll::close_idle(realtime.clone()));
    // CHAT_MESSAGE_THROTTLE=off: clients get every message (seed: throttling "can be disabled").
    let delivery = shared::realtime::delivery::Delivery::new(gateway).throttling_from_env();
    let fan_out = tokio::spawn(ws::fan_out(chat.clone(), delivery, stop_rx.clone(), feed));
    // Every event to the app's webhooks, SQS queues and SNS topics.
    let dispatcher = tokio::spawn(hooks::dispatch(
        chat.clone(),
        shared::hooks::Hooks::new(&chat),
        hook_store,
        hooks_start,
        handed,
        stop_rx.clone(),
    ));
    // Timers: unread reminders.
    let timers = tokio::spawn(scheduler::run(chat.clone(), stop_rx.clone()));
    let expiring = tokio::spawn(files::expire_exports(files.clone(), stop_rx.clone()));
    let campaigns = tokio::spawn(campaign_queue.run(chat.clone(), CAMPAIGN_WORKERS));
    // Responses are gzip-compressed for clients that accept it (seed 002); in AWS API Gateway
    // compresses (the template's MinimumCompressionSize).
    let rest = shared::http::with_edge_for(
        routes.merge(longpoll::routes(realtime.clone())),
        chat,
        &cors,
    )
    .layer(tower_http::compression::CompressionLayer::new().gzip(true));
    let sockets = realtime.sockets.clone();
    let app = rest.merge(ws::routes(realtime));
    println!("chat-local listening on http://{local}");
    println!("api_key:    {}", keys.api_key);
    println!("api_secret: {}", keys.api_secret);
    match data_dir {
        Some(d) => println!("data dir:   {}", d.display()),
        None => println!("data dir:   (in memory)"),
    }
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown().await;
        // Sockets close with a restart code, so clients reconnect to the next process.
        let _ = stop_tx.send(true);
    });
    let mut serving = tokio::spawn(async move { server.await });
    let mut stopping = stop_rx;
    tokio::select! {
        served = &mut serving => {
            served.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        }
        _ = async {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {
            tracing::warn!("requests still in flight after {STOP_GRACE:?}; stopping anyway");
            serving.abort();
        }
    }
    // Every socket sends its close frame (1012) before the process ends.
    sockets.wait_closed(SOCKET_CLOSE_GRACE).await;
    // The dispatcher saves its position as it stops.
    let _ = tokio::time::timeout(Duration::from_secs(2), dispatcher).await;
    // The other tasks are cancelled and gone before the runtime shuts down (a task polled
    // while it does would find its timers gone).
    for task in [fan_out, idle_polls, timers, expiring, campaigns] {
        task.abort();
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
