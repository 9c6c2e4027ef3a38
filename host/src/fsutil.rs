//! Saving files without losing the old one: the documented flow overwrites
//! its own input (`-m x.h5 -s x.h5`), so every save writes a temporary file
//! beside the target and renames it over the target only once it is complete.
//!
//! The temporary file is made by `tempfile`: created exclusively (`O_EXCL`,
//! never through a planted link) under an unpredictable name, and removed
//! when the save fails.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Opens `path` for reading, refusing what is not a regular file (a device
/// such as `/dev/zero`, a FIFO, a directory: their size is not known, and
/// reading them may never end), and files over `limit` bytes, before reading
/// anything. Returns the file and its size.
pub fn open_regular(path: &Path, limit: u64) -> io::Result<(fs::File, u64)> {
    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, device or FIFO)",
        )
    };
    // Checked before opening too: opening a FIFO waits for a writer.
    if !fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes, over the {} bytes this kind of file may hold",
                meta.len(),
                limit
            ),
        ));
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `limit` bytes (see [`open_regular`]).
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let (file, size) = open_regular(path, limit)?;
    let mut bytes = Vec::with_capacity(size as usize);
    // `take`: a file growing while it is read still stops at the limit.
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Bytes of the target's name kept in the temporary file's name (a long
/// legal name must not make an over-long temporary one).
const NAME_PREFIX_LEN: usize = 40;

/// The directory a save into `target` works in.
fn directory(target: &Path) -> &Path {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The start of the temporary file names of saves into `target`:
/// `.<up to 40 bytes of the name>.`.
pub fn temporary_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let mut end = name.len().min(NAME_PREFIX_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.", &name[..end])
}

/// Random characters at the end of a temporary file's name.
const RANDOM_LEN: usize = 6;

/// The process that made a temporary file of a save into `target`, from its
/// name `.<name>.<pid>.<6 random characters>.tmp`; `None` for any other name.
fn temporary_owner(target: &Path, file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix(&temporary_prefix(target))?;
    let rest = rest.strip_suffix(".tmp")?;
    let (pid, random) = rest.split_once('.')?;
    let random_ok = random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric());
    random_ok.then(|| pid.parse().ok()).flatten()
}

/// Whether process `pid` is running (from `/proc`; where there is no
/// `/proc`, every process is taken as running, so nothing is removed).
fn process_exists(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Removes the temporary files that killed saves into `target` left behind
/// (those whose process is gone); a save running in another process keeps
/// its own.
fn remove_stale(target: &Path) {
    let Ok(entries) = fs::read_dir(directory(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = temporary_owner(target, &name) {
            if !process_exists(pid) {
                // Best effort: a file that cannot be removed stays.
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Temporary files of saves into `target` left in its directory (there are
/// none after a save, failed or not, unless the process was killed; the
/// next save into `target` removes those).
pub fn leftovers(target: &Path) -> io::Result<Vec<PathBuf>> {
    let prefix = temporary_prefix(target);
    let mut found = Vec::new();
    for entry in fs::read_dir(directory(target))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// What a save does with an existing target that is not a regular file.
enum Special {
    /// Nothing there, a regular file or a link: rename over it.
    No,
    /// A character device or FIFO (`/dev/null`, a pipe): write into it.
    Stream,
}

/// Refuses targets a save cannot replace (a directory, a socket, a block
/// device) and says whether the target is a stream written in place.
fn special(target: &Path) -> io::Result<Special> {
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(Special::No);
    };
    let kind = meta.file_type();
    if kind.is_file() || kind.is_symlink() {
        return Ok(Special::No);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() || kind.is_fifo() {
            return Ok(Special::Stream);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "the output exists and is not a regular file (a directory, socket or block device): refusing to replace it",
    ))
}

/// Runs `write` on a new temporary path beside `target`, then renames it over
/// `target`. On any error the temporary file is removed and `target` is left
/// as it was. A target that is a character device or FIFO (`/dev/null`, a
/// pipe) is not replaced: the finished file is copied into it.
pub fn save_with<E>(target: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<io::Error>,
{
    if let Special::Stream = special(target)? {
        let tmp = tempfile::NamedTempFile::new()?;
        write(tmp.path())?;
        let mut finished = fs::File::open(tmp.path())?;
        let mut out = fs::OpenOptions::new().write(true).open(target)?;
        io::copy(&mut finished, &mut out)?;
        return Ok(());
    }
    remove_stale(target);
    // `.<name>.<pid>.<random>.tmp`: the pid tells a later save whether the
    // file is a leftover of a killed process.
    let prefix = format!("{}{}.", temporary_prefix(target), std::process::id());
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(&prefix)
        .suffix(".tmp")
        .rand_bytes(RANDOM_LEN);
    // A new file gets the usual mode (0666 less the umask), not tempfile's
    // private 0600; an overwritten one keeps its own.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(directory(target))?;
    if let Ok(old) = fs::metadata(target) {
        fs::set_permissions(tmp.path(), old.permissions())?;
    }
    write(tmp.path())?;
    fs::File::open(tmp.path())?.sync_all()?;
    tmp.persist(target).map_err(|e| E::from(e.error))?;
    Ok(())
}

/// Writes `bytes` to `target` atomically.
pub fn atomic_write(target: &Path, bytes: &[u8]) -> io::Result<()> {
    save_with(target, |tmp| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn failed_save_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.bin");
        atomic_write(&target, b"old").unwrap();
        let r: io::Result<()> = save_with(&target, |tmp| {
            fs::write(tmp, b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(leftovers(&target).unwrap().is_empty());
        atomic_write(&target, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[cfg(unix)]
    #[test]
    fn special_targets_are_written_in_place_or_refused() {
        // A character device is written into, not replaced.
        atomic_write(Path::new("/dev/null"), b"x").unwrap();
        assert!(fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        // A directory is refused, and left as it was.
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("out.akd");
        fs::create_dir(&sub).unwrap();
        let e = atomic_write(&sub, b"x").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(sub.is_dir());
        assert!(leftovers(&sub).unwrap().is_empty());
    }

    #[test]
    fn leftovers_of_dead_processes_go_with_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.akd");
        // What a killed save leaves (no process has pid 2^30: pids stay below
        // 2^22 on Linux), one of a running save (ours), and a user's file.
        let dead = dir.path().join(".model.akd.1073741824.a1B2c3.tmp");
        let alive = dir
            .path()
            .join(format!(".model.akd.{}.x9Y8z7.tmp", std::process::id()));
        let other = dir.path().join(".model.akd.notes.tmp");
        for f in [&dead, &alive, &other] {
            fs::write(f, b"partial").unwrap();
        }
        atomic_write(&target, b"new").unwrap();
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn a_name_of_255_bytes_saves() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m".repeat(251) + ".akd");
        atomic_write(&target, b"x").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"x");
    }
}
