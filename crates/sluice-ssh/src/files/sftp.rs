//! The SFTP requests and answers of one channel: which operation each request is (for the
//! guard), and the finished operations (for the recording), matched by request id.

use super::wire::{kind, Packet};
use super::{resolve, Transfer};
use sluice_core::FileOp;
use std::collections::HashMap;

/// `SSH_FXF_WRITE | SSH_FXF_APPEND | SSH_FXF_CREAT | SSH_FXF_TRUNC`: an open that changes the
/// file.
const WRITE_FLAGS: u32 = 0x02 | 0x04 | 0x08 | 0x10;

/// A request the guard judges.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FileRequest {
    pub id: u32,
    /// `read`, `write`, `remove`, `rename`, `mkdir`, `rmdir`, `setstat`, `symlink`, `link`.
    pub op: &'static str,
    pub paths: Vec<String>,
}

impl FileRequest {
    /// The statement class rules match (`file_write`).
    pub fn class(&self) -> String {
        format!("file_{}", self.op)
    }

    /// How the request reads in the recording: `write /etc/hosts`.
    pub fn text(&self) -> String {
        format!("{} {}", self.op, self.paths.join(" "))
    }
}

/// An operation and its paths, for the guard.
type Judged = (&'static str, Vec<String>);

/// What a request waits for.
enum Pending {
    Open {
        path: String,
        write: bool,
    },
    OpenDir,
    Read {
        handle: Vec<u8>,
        offset: u64,
    },
    Close {
        handle: Vec<u8>,
    },
    Op {
        op: &'static str,
        path: String,
        to: Option<String>,
    },
    Realpath {
        home: bool,
    },
}

/// A file open on the target.
struct OpenFile {
    path: String,
    write: bool,
    content: Transfer,
}

/// One SFTP channel's state.
#[derive(Default)]
pub(crate) struct Sftp {
    channel: u32,
    pending: HashMap<u32, Pending>,
    files: HashMap<Vec<u8>, OpenFile>,
    /// The login's home directory (the answer to `realpath .`): relative paths resolve there.
    home: Option<String>,
}

impl Sftp {
    pub fn new(channel: u32) -> Sftp {
        Sftp {
            channel,
            ..Sftp::default()
        }
    }

    /// Notes a client request; returns it when it is a file operation the guard judges.
    pub fn request(&mut self, frame: &[u8]) -> Option<FileRequest> {
        let mut p = Packet::parse(frame)?;
        let id = p.id;
        let home = self.home.as_deref();
        let path = |r: &mut super::wire::Reader<'_>| r.text().map(|t| resolve(home, &t));
        let (pending, judged) = match p.kind {
            kind::OPEN => {
                let file = path(&mut p.body)?;
                let write = p.body.u32()? & WRITE_FLAGS != 0;
                let op = if write { "write" } else { "read" };
                (
                    Pending::Open {
                        path: file.clone(),
                        write,
                    },
                    Some((op, vec![file])),
                )
            }
            kind::OPENDIR => (Pending::OpenDir, None),
            kind::READ => {
                let handle = p.body.bytes()?.to_vec();
                let offset = p.body.u64()?;
                (Pending::Read { handle, offset }, None)
            }
            kind::WRITE => {
                let handle = p.body.bytes()?;
                let offset = p.body.u64()?;
                let data = p.body.bytes()?;
                if let Some(f) = self.files.get_mut(handle) {
                    f.content.add(offset, data);
                }
                return None;
            }
            kind::CLOSE => {
                let handle = p.body.bytes()?.to_vec();
                (Pending::Close { handle }, None)
            }
            kind::REALPATH => {
                let asked = p.body.text()?;
                let home = self.home.is_none() && matches!(asked.as_str(), "." | "");
                (Pending::Realpath { home }, None)
            }
            kind::REMOVE | kind::MKDIR | kind::RMDIR | kind::SETSTAT => {
                let op = match p.kind {
                    kind::REMOVE => "remove",
                    kind::MKDIR => "mkdir",
                    kind::RMDIR => "rmdir",
                    _ => "setstat",
                };
                let file = path(&mut p.body)?;
                let pending = Pending::Op {
                    op,
                    path: file.clone(),
                    to: None,
                };
                (pending, Some((op, vec![file])))
            }
            kind::RENAME | kind::SYMLINK => {
                let op = if p.kind == kind::RENAME {
                    "rename"
                } else {
                    "symlink"
                };
                self.two_paths(op, &mut p.body)?
            }
            kind::EXTENDED => match p.body.bytes()? {
                b"posix-rename@openssh.com" => self.two_paths("rename", &mut p.body)?,
                b"hardlink@openssh.com" => self.two_paths("link", &mut p.body)?,
                _ => return None,
            },
            _ => return None,
        };
        self.pending.insert(id, pending);
        judged.map(|(op, paths)| FileRequest { id, op, paths })
    }

    fn two_paths(
        &self,
        op: &'static str,
        body: &mut super::wire::Reader<'_>,
    ) -> Option<(Pending, Option<Judged>)> {
        let home = self.home.as_deref();
        let from = resolve(home, &body.text()?);
        let to = resolve(home, &body.text()?);
        let pending = Pending::Op {
            op,
            path: from.clone(),
            to: Some(to.clone()),
        };
        Some((pending, Some((op, vec![from, to]))))
    }

    /// Forgets a request the gateway answered itself.
    pub fn refused(&mut self, request: &FileRequest, message: &str) -> FileOp {
        self.pending.remove(&request.id);
        FileOp {
            channel: self.channel,
            op: request.op.to_string(),
            path: request.paths.first().cloned().unwrap_or_default(),
            to: request.paths.get(1).cloned(),
            error: Some(message.to_string()),
            ..FileOp::default()
        }
    }

    /// Notes the target's answer; returns the operation it finished, if any.
    pub fn response(&mut self, frame: &[u8]) -> Option<FileOp> {
        let mut p = Packet::parse(frame)?;
        match p.kind {
            kind::DATA => {
                if let Some(Pending::Read { handle, offset }) = self.pending.remove(&p.id) {
                    let data = p.body.bytes()?;
                    if let Some(f) = self.files.get_mut(&handle) {
                        f.content.add(offset, data);
                    }
                }
                None
            }
            kind::HANDLE => {
                if let Some(Pending::Open { path, write }) = self.pending.remove(&p.id) {
                    let handle = p.body.bytes()?.to_vec();
                    let content = Transfer::new();
                    self.files.insert(
                        handle,
                        OpenFile {
                            path,
                            write,
                            content,
                        },
                    );
                }
                None
            }
            kind::NAME => {
                if let Some(Pending::Realpath { home: true }) = self.pending.remove(&p.id) {
                    if p.body.u32()? >= 1 {
                        self.home = p.body.text();
                    }
                }
                None
            }
            kind::STATUS => {
                let code = p.body.u32()?;
                let error = (code != 0).then(|| {
                    let message = p.body.text().unwrap_or_default();
                    if message.is_empty() {
                        format!("status {code}")
                    } else {
                        message
                    }
                });
                self.status(p.id, error)
            }
            _ => {
                self.pending.remove(&p.id);
                None
            }
        }
    }

    fn status(&mut self, id: u32, error: Option<String>) -> Option<FileOp> {
        let channel = self.channel;
        match self.pending.remove(&id)? {
            Pending::Close { handle } => {
                let f = self.files.remove(&handle)?;
                Some(f.finish(channel))
            }
            Pending::Open { path, write } => Some(FileOp {
                channel,
                op: (if write { "write" } else { "read" }).to_string(),
                path,
                error,
                ..FileOp::default()
            }),
            Pending::Op { op, path, to } => Some(FileOp {
                channel,
                op: op.to_string(),
                path,
                to,
                error,
                ..FileOp::default()
            }),
            // End of file, end of a listing, a failed realpath: nothing to record.
            Pending::Read { .. } | Pending::OpenDir | Pending::Realpath { .. } => None,
        }
    }

    /// The files still open when the channel ended.
    pub fn finish(&mut self) -> Vec<FileOp> {
        let channel = self.channel;
        self.files.drain().map(|(_, f)| f.finish(channel)).collect()
    }
}

impl OpenFile {
    fn finish(self, channel: u32) -> FileOp {
        let op = if self.write { "write" } else { "read" };
        self.content.finish(channel, op, self.path)
    }
}
