//! The embedded store's writer: one thread owns the writing connection and commits what is
//! queued for it in groups. Each write runs in a savepoint of the group's transaction (a write
//! that fails is rolled back alone), the group commits once, and only then is each write
//! answered; a commit that fails answers every write of the group with its error. A read on
//! the writer's connection (a store in memory has no other) runs between groups.

use super::{db, State, HOUSEKEEPING_INTERVAL_SECS};
use crate::store::{now, StoreError};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use tokio::sync::{oneshot, Notify};

/// Writes committed together at most.
const GROUP: usize = 64;

/// A read on the writer's connection.
type Read = Box<dyn FnOnce(&mut Connection, i64) + Send>;
/// How a write is answered once its group's commit is known (`Some` error: it failed).
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Work for the writer thread.
pub(super) enum Job {
    Write(Box<dyn GroupWrite>),
    Read(Read),
}

/// A write as the group runs it: on the connection inside its savepoint, or failed unrun.
pub(super) trait GroupWrite: Send {
    fn run(self: Box<Self>, conn: &Connection, now: i64) -> Done;
    fn fail(self: Box<Self>, error: StoreError);
}

/// A write that ran: whether it kept its effects, the changes it logged, and how to answer it
/// once the group's commit is known (`Some` error: the commit failed).
pub(super) struct Done {
    ok: bool,
    changes: usize,
    answer: Answer,
}

struct WriteJob<T, F> {
    f: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> GroupWrite for WriteJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, i64) -> Result<(T, usize), StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, now: i64) -> Done {
        let WriteJob { f, reply } = *self;
        let outcome = catch_unwind(AssertUnwindSafe(|| f(conn, now)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a store write panicked".into())));
        match outcome {
            Ok((value, changes)) => Done {
                ok: true,
                changes,
                answer: Box::new(move |failed: Option<&StoreError>| {
                    let _ = reply.send(match failed {
                        None => Ok(value),
                        Some(e) => Err(StoreError::Backend(e.to_string())),
                    });
                }),
            },
            Err(e) => Done {
                ok: false,
                changes: 0,
                answer: Box::new(move |_| {
                    let _ = reply.send(Err(e));
                }),
            },
        }
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Queues `f` as a write and waits for its group's commit.
pub(super) async fn write<T, F>(writer: &Sender<Job>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Connection, i64) -> Result<(T, usize), StoreError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    writer
        .send(Job::Write(Box::new(WriteJob { f, reply })))
        .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?;
    answer
        .await
        .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?
}

/// Runs `f` on the writer's connection, between groups.
pub(super) async fn read<T, F>(writer: &Sender<Job>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection, i64) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = move |conn: &mut Connection, now: i64| {
        let outcome = catch_unwind(AssertUnwindSafe(|| f(conn, now)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a store read panicked".into())));
        let _ = reply.send(outcome);
    };
    writer
        .send(Job::Read(Box::new(job)))
        .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?;
    answer
        .await
        .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?
}

/// The writer thread's loop: until every sender is gone.
pub(super) fn run(mut state: State, jobs: Receiver<Job>, notify: Arc<Notify>) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut changes = match job {
            Job::Read(f) => {
                f(&mut state.conn, now());
                0
            }
            Job::Write(first) => {
                let mut group = vec![first];
                while group.len() < GROUP {
                    match jobs.try_recv() {
                        Ok(Job::Write(w)) => group.push(w),
                        Ok(read) => {
                            next = Some(read);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&state.conn, group)
            }
        };
        let now = now();
        if now - state.last_housekeeping >= HOUSEKEEPING_INTERVAL_SECS {
            match state.housekeeping(now) {
                Ok(removed) => changes += removed,
                Err(e) => tracing::warn!(error = %e, "store housekeeping failed"),
            }
        }
        if changes > 0 {
            // notify_waiters wakes every worker already waiting; notify_one leaves a permit for a
            // worker that is between its read and its wait.
            notify.notify_waiters();
            notify.notify_one();
        }
    }
}

/// Runs the group's writes in one transaction, each in a savepoint; answers them once the
/// commit is known. Returns the changes logged by what committed.
fn commit_group(conn: &Connection, group: Vec<Box<dyn GroupWrite>>) -> usize {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = db(e).to_string();
        for w in group {
            w.fail(StoreError::Backend(message.clone()));
        }
        return 0;
    }
    let now = now();
    let mut done = Vec::with_capacity(group.len());
    for w in group {
        if let Err(e) = conn.execute_batch("SAVEPOINT w") {
            w.fail(db(e));
            continue;
        }
        let d = w.run(conn, now);
        let end = if d.ok {
            "RELEASE w"
        } else {
            "ROLLBACK TO w; RELEASE w"
        };
        if let Err(e) = conn.execute_batch(end) {
            // The transaction is in an unknown state: nothing of the group is kept.
            let _ = conn.execute_batch("ROLLBACK");
            let e = db(e);
            for d in done.into_iter().chain(std::iter::once(d)) {
                let Done { ok, answer, .. } = d;
                answer(ok.then_some(&e));
            }
            return 0;
        }
        done.push(d);
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            let mut changes = 0;
            for d in done {
                if d.ok {
                    changes += d.changes;
                }
                (d.answer)(None);
            }
            changes
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let e = db(e);
            for d in done {
                let Done { ok, answer, .. } = d;
                answer(ok.then_some(&e));
            }
            0
        }
    }
}
