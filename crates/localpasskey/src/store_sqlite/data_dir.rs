//! The data directory and the database file, private from their first
//! byte: the directory 0700 and ours, the file created 0600 before SQLite
//! opens it, symbolic links refused.

use anyhow::{bail, Context};
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates the data directory (and missing parents) 0700, or tightens an
/// existing one: the database holds key blobs and the user's account names.
pub(super) fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "the data directory {} belongs to uid {}, not to this user (uid {me}); refusing to keep passkeys there",
            dir.display(),
            meta.uid()
        );
    }
    tighten(dir, &meta, 0o700)
}

/// Creates the database file 0600 if it does not exist, so it is never
/// visible with the umask's wider default; an existing one is tightened.
pub(super) fn create_private_file(path: &Path, dir: &Path) -> anyhow::Result<()> {
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(file) => {
            file.sync_all()?;
            // The new directory entry must be durable too, or a power cut
            // could leave SQLite's first commits in a file nobody can find.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot sync {}", dir.display()))?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => tighten_existing(path, 0o600),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Tightens `path` to `mode` if it exists; a missing file is fine.
pub(super) fn tighten_existing(path: &Path, mode: u32) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!("{} is a symbolic link; refusing to follow it", path.display())
        }
        Ok(meta) => tighten(path, &meta, mode),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

fn tighten(path: &Path, meta: &std::fs::Metadata, mode: u32) -> anyhow::Result<()> {
    let current = meta.mode() & 0o777;
    if current & !mode != 0 {
        tracing::warn!(
            path = %path.display(),
            "permissions were {current:o}, wider than {mode:o}; tightening them"
        );
        std::fs::set_permissions(path, Permissions::from_mode(mode))
            .with_context(|| format!("cannot restrict the permissions of {}", path.display()))?;
    }
    Ok(())
}
