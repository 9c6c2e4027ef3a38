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
    let file = fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, device or FIFO)",
        ));
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

/// Temporary files of saves into `target` left in its directory (there are
/// none after a save, failed or not, unless the process was killed).
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
    let prefix = temporary_prefix(target);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
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
    fn a_name_of_255_bytes_saves() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m".repeat(251) + ".akd");
        atomic_write(&target, b"x").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"x");
    }
}
