//! The sync of a signature counter's commit, run on a thread of its own so
//! that it overlaps the TPM's signature instead of preceding it.
//!
//! The signature covers the counter's new value, not its being on disk:
//! durability only asks that no answer carrying that value leave before the
//! value is on disk. So the counter's transaction commits with
//! `synchronous=NORMAL` (SQLite writes the WAL frame and does not sync it),
//! this thread runs `fdatasync` on the WAL while the TPM signs, and
//! [`WalSync::wait`] (reached through `CredentialStore::durable`, which the
//! authenticator calls before every answer) returns only once it has.
//! A power cut before then loses a counter value no client has seen.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

#[derive(Debug)]
pub(super) struct WalSync {
    wal: PathBuf,
    start: Option<Sender<()>>,
    done: Receiver<io::Result<()>>,
    in_flight: bool,
}

impl WalSync {
    /// A syncer for the WAL at `wal` (the database's path with `-wal`).
    pub(super) fn new(wal: PathBuf) -> io::Result<Self> {
        let (start, requests) = mpsc::channel::<()>();
        let (finished, done) = mpsc::channel();
        let path = wal.clone();
        thread::Builder::new().name("wal-sync".into()).spawn(move || {
            for () in requests {
                if finished.send(sync_file(&path)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Self {
            wal,
            start: Some(start),
            done,
            in_flight: false,
        })
    }

    /// Start syncing what has been written to the WAL so far.
    pub(super) fn start(&mut self) -> io::Result<()> {
        self.wait()?;
        let sent = self.start.as_ref().is_some_and(|s| s.send(()).is_ok());
        if sent {
            self.in_flight = true;
            Ok(())
        } else {
            // The thread is gone (it cannot panic, but if it did): sync here.
            sync_file(&self.wal)
        }
    }

    /// Wait for the sync in flight, if any, and return its outcome.
    pub(super) fn wait(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        self.done
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the WAL sync thread ended")))
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        let _ = self.wait();
        // Closing the channel ends the thread's loop.
        self.start = None;
    }
}

/// `fdatasync` of the file: any descriptor of the inode flushes its data.
/// NOFOLLOW, as for the database: a link planted in the WAL's place is not
/// the file SQLite writes.
fn sync_file(path: &PathBuf) -> io::Result<()> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.sync_data()
}
