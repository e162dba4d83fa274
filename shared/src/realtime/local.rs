//! The in-process gateway of `chat-local`: each open WebSocket registers a sender, and
//! delivery writes to it.

use super::{Gateway, GatewayError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc;

#[derive(Default)]
pub struct LocalGateway {
    sockets: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
}

impl LocalGateway {
    /// A connection's outgoing frames.
    pub fn register(&self, connection_id: &str) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut s) = self.sockets.lock() {
            s.insert(connection_id.to_string(), tx);
        }
        rx
    }

    pub fn unregister(&self, connection_id: &str) {
        if let Ok(mut s) = self.sockets.lock() {
            s.remove(connection_id);
        }
    }

    pub fn connection_ids(&self) -> Vec<String> {
        self.sockets
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Gateway for LocalGateway {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), GatewayError> {
        let tx = self
            .sockets
            .lock()
            .map_err(|_| GatewayError::Other("gateway lock poisoned".into()))?
            .get(connection_id)
            .cloned();
        match tx {
            Some(tx) => tx.send(frame.to_string()).map_err(|_| GatewayError::Gone),
            None => Err(GatewayError::Gone),
        }
    }

    async fn close(&self, connection_id: &str) -> Result<(), GatewayError> {
        self.unregister(connection_id);
        Ok(())
    }
}
