//! Saving files without losing the old one: the documented flow overwrites
//! its own input (`-m x.h5 -s x.h5`), so every save writes a temporary file
//! beside the target and renames it over the target only once it is complete.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A temporary path in the same directory as `target` (so the rename is atomic).
pub fn temporary_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(tmp),
        _ => PathBuf::from(tmp),
    }
}

/// Runs `write` on a temporary path, then renames it over `target`. On any
/// error the temporary file is removed and `target` is left as it was.
pub fn save_with<E>(target: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<io::Error>,
{
    let tmp = temporary_path(target);
    let result = write(&tmp).and_then(|()| {
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, target).map_err(E::from)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `target` atomically.
pub fn atomic_write(target: &Path, bytes: &[u8]) -> io::Result<()> {
    save_with(target, |tmp| {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_save_keeps_the_old_file() {
        let dir = std::env::temp_dir().join(format!("akida-fsutil-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("model.bin");
        atomic_write(&target, b"old").unwrap();
        let r: io::Result<()> = save_with(&target, |tmp| {
            fs::write(tmp, b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(!temporary_path(&target).exists());
        atomic_write(&target, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }
}
