//! A moto server (the AWS emulator, `moto[server]` from PyPI) on a free loopback port, and an
//! SDK configuration pointing at it. One server is shared by the tests of a binary running at
//! the same time; it is killed when the last of them drops its handle.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Moto {
    /// The running shared server, started if none is. Panics (failing the test) with the reason
    /// when moto cannot be started: these tests are never skipped silently.
    pub fn shared() -> Arc<Moto> {
        static CURRENT: Mutex<Weak<Moto>> = Mutex::new(Weak::new());
        let mut current = CURRENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(running) = current.upgrade() {
            return running;
        }
        let started = Arc::new(Moto::start());
        *current = Arc::downgrade(&started);
        started
    }

    /// A server of one's own.
    pub fn start() -> Moto {
        let binary = binary();
        if !binary.exists() {
            panic!(
                "moto_server not found at {}. Create it with `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'` \
                 in the workspace root, or set MOTO_SERVER to the binary",
                binary.display()
            );
        }
        let port = free_port();
        let log_dir = tempfile::tempdir().expect("temporary directory for the moto log");
        let log = log_dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).expect("moto log file");
        let log_err = log_file.try_clone().expect("moto log file handle");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _log_dir: log_dir,
        };
        moto.wait_until_listening(port);
        moto
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration for any AWS client: this endpoint, us-east-1, static test credentials.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "moto",
            )))
            .behavior_version(BehaviorVersion::latest())
            .build()
    }

    fn wait_until_listening(&mut self, port: u16) {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited during startup ({status}):\n{}",
                    self.log_text()
                );
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "moto_server did not listen on {address} within {STARTUP_TIMEOUT:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `MOTO_SERVER`, or the workspace's `.venv/bin/moto_server`.
fn binary() -> PathBuf {
    match std::env::var_os("MOTO_SERVER") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server"),
    }
}

/// A port the OS just handed out; another process could take it before moto binds it, which is
/// rare enough on loopback for tests.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}
