//! SSH peers for the tests: a private OpenSSH `sshd` on a free port with its own host key
//! and authorized keys, user key pairs made by `ssh-keygen`, and the OpenSSH client aimed at
//! the gateway.

use super::{unique, wait_for, Gateway};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A key pair made by `ssh-keygen` (no passphrase).
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl KeyPair {
    /// A new Ed25519 key pair in `dir`.
    pub fn new(dir: &Path, name: &str) -> KeyPair {
        let private = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private)
            .output()
            .expect("ssh-keygen runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        KeyPair {
            public: private.with_extension("pub"),
            private,
        }
    }

    /// The public key line.
    pub fn public_line(&self) -> String {
        std::fs::read_to_string(&self.public)
            .unwrap()
            .trim()
            .to_string()
    }
}

/// A private OpenSSH server on 127.0.0.1.
pub struct Sshd {
    child: Child,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub host_key: KeyPair,
    authorized: PathBuf,
    /// Whether it serves the `sftp` subsystem.
    sftp: bool,
}

pub use super::free_port;

impl Sshd {
    /// Starts sshd letting in whoever holds a key in its authorized_keys (as root).
    pub fn start() -> Sshd {
        Self::fresh(true)
    }

    /// The same, with no `sftp` subsystem (sshd refuses it, as many hardened hosts do).
    pub fn start_without_sftp() -> Sshd {
        Self::fresh(false)
    }

    /// A new directory, host key and port.
    fn fresh(sftp: bool) -> Sshd {
        let dir = std::env::temp_dir().join(unique("sshd"));
        std::fs::create_dir_all(&dir).unwrap();
        let host_key = KeyPair::new(&dir, "host_ed25519");
        Self::start_with(dir, host_key, free_port(), sftp)
    }

    fn start_with(dir: PathBuf, host_key: KeyPair, port: u16, sftp: bool) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let authorized = dir.join("authorized_keys");
        if !authorized.exists() {
            std::fs::write(&authorized, "").unwrap();
        }
        let trusted_ca = dir.join("trusted_user_ca");
        if !trusted_ca.exists() {
            std::fs::write(&trusted_ca, "").unwrap();
        }
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        // Its own config file: the machine's /etc/ssh/sshd_config is not ours to depend on.
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                 StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nMaxSessions 100\nMaxStartups 100\n\
                 {}AcceptEnv LANG LC_* SECRET_*\nAllowTcpForwarding yes\n\
                 TrustedUserCAKeys {}\n",
                host_key.private.display(),
                dir.join("sshd.pid").display(),
                authorized.display(),
                if sftp {
                    "Subsystem sftp internal-sftp\n"
                } else {
                    ""
                },
                trusted_ca.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for("sshd listening", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sshd exited ({status}): {}",
                    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                );
            }
            TcpStream::connect(addr).ok()
        });
        Sshd {
            child,
            dir,
            addr,
            host_key,
            authorized,
            sftp,
        }
    }

    /// Lets `public_line` log in.
    pub fn authorize(&self, public_line: &str) {
        let mut keys = std::fs::read_to_string(&self.authorized).unwrap();
        keys.push_str(public_line.trim());
        keys.push('\n');
        std::fs::write(&self.authorized, keys).unwrap();
    }

    /// Lets in whoever holds a certificate signed by `ca_line` (`TrustedUserCAKeys`).
    pub fn trust_user_ca(&self, ca_line: &str) {
        std::fs::write(
            self.dir.join("trusted_user_ca"),
            format!("{}\n", ca_line.trim()),
        )
        .unwrap();
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Restarts on the same port with a new host key (a target whose key changed).
    pub fn restart_with_new_host_key(mut self) -> Sshd {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let key = KeyPair::new(&self.dir, &unique("host2"));
        Self::start_with(self.dir.clone(), key, self.addr.port(), self.sftp)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The OpenSSH options every test uses toward the gateway: its key only, no host-key prompts
/// (the gateway's host key is new in every test), no passwords.
pub const CLIENT_OPTIONS: &[&str] = &[
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
];

/// `ssh`, `scp` or `sftp` aimed at the gateway's SSH port with `key` (host not yet given).
pub fn client(program: &str, gw: &Gateway, key: &KeyPair) -> Command {
    let port = gw.ssh.expect("the gateway has an SSH listener").port();
    let port_flag = if program == "ssh" { "-p" } else { "-P" };
    let mut c = Command::new(program);
    c.args([port_flag, &port.to_string(), "-i"])
        .arg(&key.private)
        .args(CLIENT_OPTIONS)
        .stdin(Stdio::null());
    c
}

/// `ssh` to `user` (a connection, or `login+connection`) at the gateway.
pub fn ssh_command(gw: &Gateway, key: &KeyPair, user: &str) -> Command {
    let mut c = client("ssh", gw, key);
    c.args(["-l", user, "127.0.0.1"]);
    c
}

/// Runs `command` on `connection` through the gateway.
pub fn ssh_exec(gw: &Gateway, key: &KeyPair, connection: &str, command: &str) -> Output {
    ssh_command(gw, key, connection)
        .arg(command)
        .output()
        .expect("ssh runs")
}

/// The gateway config for an SSH connection `name` to `sshd`, plus `policy` (indented
/// connection keys) and a grant to group `ops`.
pub fn ssh_config(sshd: &Sshd, name: &str, policy: &str) -> String {
    format!(
        "listeners:\n  postgres:\n    address: 127.0.0.1:0\n  ssh:\n    address: 127.0.0.1:0\n  api:\n    address: 127.0.0.1:0\nconnections:\n  - name: {name}\n    type: ssh\n    host: 127.0.0.1\n    port: {}\n    username: root\n{policy}grants:\n  - group: ops\n    connection: {name}\n",
        sshd.addr.port()
    )
}

/// A gateway in front of a fresh sshd that trusts the gateway's key, and an identity in
/// group `ops` with a registered key.
pub struct SshSetup {
    pub sshd: Sshd,
    pub gw: Gateway,
    pub key: KeyPair,
    pub identity: String,
    pub token: String,
}

impl SshSetup {
    pub fn new(connection: &str, policy: &str) -> SshSetup {
        Self::with_sshd(Sshd::start(), connection, policy)
    }

    /// The same in front of `sshd`.
    pub fn with_sshd(sshd: Sshd, connection: &str, policy: &str) -> SshSetup {
        let gw = Gateway::start(&ssh_config(&sshd, connection, policy));
        let gateway_key = gw.cli_ok(&["ssh", "gateway-key"]);
        sshd.authorize(&gateway_key);
        let identity = unique("eng");
        let token = gw.named_service_account(&identity, "ops");
        let key = KeyPair::new(&sshd.dir, &unique("user"));
        let key_file = key.public.to_str().unwrap().to_string();
        gw.cli_ok(&[
            "identities",
            "keys",
            "add",
            &identity,
            "--key-file",
            &key_file,
        ]);
        SshSetup {
            sshd,
            gw,
            key,
            identity,
            token,
        }
    }

    pub fn exec(&self, connection: &str, command: &str) -> Output {
        ssh_exec(&self.gw, &self.key, connection, command)
    }
}

/// An interactive `ssh -tt` to a connection, in a private tmux server's pane (tmux plays the
/// person at the terminal: `send-keys` types, `capture-pane` reads the screen).
pub struct Terminal {
    tmux: String,
}

impl Terminal {
    /// Opens a 120×30 terminal running ssh to `connection` and waits for the shell prompt.
    pub fn open(s: &SshSetup, connection: &str) -> Terminal {
        let port = s.gw.ssh.expect("the gateway has an SSH listener").port();
        let ssh = format!(
            "ssh -tt -p {port} -i {} {} {connection}@127.0.0.1",
            s.key.private.display(),
            CLIENT_OPTIONS.join(" ")
        );
        Terminal::run(&ssh, |screen| screen.contains("root@"))
    }

    /// Opens a 120×30 terminal running the shell command line `command` and waits until
    /// the screen shows it is `ready`.
    pub fn run(command: &str, ready: impl Fn(&str) -> bool) -> Terminal {
        let t = Terminal {
            tmux: unique("tmux"),
        };
        let started = t.tmux(&["new-session", "-d", "-x", "120", "-y", "30", command]);
        assert!(started.status.success(), "{started:?}");
        t.wait("the program to be ready", ready);
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.tmux])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Types keys (tmux key names such as `Enter`, `Home`, `DC` are keys, the rest text).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        assert!(self.tmux(&args).status.success());
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `done`, failing with the screen after 20 s.
    pub fn wait(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Lossy UTF-8 of a process's output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The recorded events of one kind.
pub fn kinds<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Connection policy (indented keys) with a rule denying `rm`, a review rule for
/// `systemctl restart`, and masking of the client's copy.
pub const GUARD: &str = "    guardrails:
      approvers: [security]
      rules:
        - name: no-rm
          action: deny
          reason: deleting files is not allowed here
          match: { statements: [rm, shred] }
        - name: review-restart
          action: review
          reason: restarts need approval
          match: { regex: '^systemctl restart' }
    masking:
      mask_client: true
";
