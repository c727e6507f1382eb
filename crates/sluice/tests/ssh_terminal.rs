//! Interactive SSH shells through the gateway, driven in a real terminal (tmux): line
//! judging, recording, asciicast export, input typed with echo off, shells fed from a pipe.

mod common;

use common::ssh::{kinds, ssh_command, text, SshSetup, Terminal, GUARD};
use serde_json::Value;

#[test]
fn an_interactive_shell_works_in_a_terminal_and_is_recorded() {
    let s = SshSetup::new("box", "");
    let term = Terminal::open(&s, "box");
    term.keys(&["echo interactive-$((6*7))", "Enter"]);
    term.wait("the command's output", |screen| {
        screen.lines().any(|l| l.trim() == "interactive-42")
    });
    term.keys(&["exit", "Enter"]);
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    let channel = kinds(&events, "channel")[0];
    assert_eq!(channel["purpose"], "shell");
    assert_eq!(channel["pty"]["cols"], 120);
    assert!(
        io_stream(&events, "in").contains("echo interactive-$((6*7))\r"),
        "{:?}",
        io_stream(&events, "in")
    );
    assert!(io_stream(&events, "out").contains("interactive-42"));
    let commands: Vec<_> = kinds(&events, "query")
        .iter()
        .map(|q| q["text"].clone())
        .collect();
    assert_eq!(commands, ["echo interactive-$((6*7))", "exit"]);
}

#[test]
fn a_shell_driven_from_a_pipe_with_a_sizeless_pty_works() {
    // `ssh -tt HOST < script`: a pty of 0×0, the keys all at once, before the prompt.
    let s = SshSetup::new("box", GUARD);
    let mut child = ssh_command(&s.gw, &s.key, "box")
        .arg("-tt")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"echo piped-$((2+3))\recho piped-$((3+4))\rexit\r",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = text(&out.stdout);
    // Lines typed ahead of the prompt run, as they do without the gateway.
    assert!(
        shown.contains("piped-5") && shown.contains("piped-7"),
        "{shown}"
    );
    let session = s.gw.wait_ended_session("box");
    let commands: Vec<_> = kinds(&s.gw.events(&session), "query")
        .iter()
        .map(|q| q["text"].clone())
        .collect();
    assert_eq!(
        commands,
        ["echo piped-$((2+3))", "echo piped-$((3+4))", "exit"]
    );
}

/// A terminal stream's recorded text (`in` or `out`).
fn io_stream(events: &[Value], which: &str) -> String {
    kinds(events, "io")
        .iter()
        .filter(|e| e["stream"] == which)
        .map(|e| e["data"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_denied_interactive_command_is_dropped_with_the_reason() {
    let s = SshSetup::new("box", GUARD);
    let victim = s.sshd.dir.join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let term = Terminal::open(&s, "box");
    let denied = "denied by rule \"no-rm\": deleting files is not allowed here";
    // Typed plainly.
    term.keys(&[&format!("rm -f {}", victim.display()), "Enter"]);
    // The reason, then the shell's new prompt (keys typed before it would reach the
    // terminal driver, not the line editor).
    term.wait("the denial and a new prompt", |screen| {
        screen.matches(denied).count() == 1 && screen.trim_end().ends_with('#')
    });
    // Edited with keys only the screen shows the result of: Home, Delete, then "rm".
    term.keys(&[
        &format!("X -f {}", victim.display()),
        "Home",
        "DC",
        "rm",
        "Enter",
    ]);
    term.wait("the second denial and a new prompt", |screen| {
        screen.matches(denied).count() == 2 && screen.trim_end().ends_with('#')
    });
    // The shell is still there and runs what is allowed.
    term.keys(&["echo still-$((1+1))", "Enter"]);
    term.wait("the next command", |screen| {
        screen.lines().any(|l| l.trim() == "still-2")
    });
    assert!(victim.exists());
    term.keys(&["exit", "Enter"]);
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    let guards = kinds(&events, "guard");
    assert_eq!(guards.len(), 2, "{guards:?}");
    assert!(guards
        .iter()
        .all(|g| g["action"] == "denied" && g["rule"] == "no-rm"));
    let line = format!("rm -f {}", victim.display());
    let commands: Vec<_> = kinds(&events, "query")
        .iter()
        .map(|q| q["text"].clone())
        .collect();
    assert_eq!(
        commands[..2],
        [line.as_str(), line.as_str()],
        "{commands:?}"
    );
    // The terminal exports as asciicast v2, and asciinema plays it: the user's screen,
    // the gateway's messages included.
    let cast = s.sshd.dir.join("session.cast");
    let exported =
        s.gw.cli_ok(&["sessions", "export", &session, "--format", "asciicast"]);
    std::fs::write(&cast, exported).unwrap();
    // (asciinema wants a terminal: `script` gives it a pty.)
    let played = std::process::Command::new("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("asciinema cat {}", cast.display()),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(played.status.success(), "{}", text(&played.stderr));
    let played = text(&played.stdout);
    assert_eq!(played.matches(denied).count(), 2, "{played}");
    assert!(played.contains("still-2"), "{played}");
}

#[test]
fn input_typed_with_echo_off_is_judged_but_not_recorded() {
    let s = SshSetup::new("box", GUARD);
    let term = Terminal::open(&s, "box");
    term.keys(&["read -s -p 'password: ' P; echo; echo got-${#P}", "Enter"]);
    term.wait("the password prompt", |screen| {
        screen.lines().any(|l| l.trim() == "password:")
    });
    term.keys(&["hunter2-secret", "Enter"]);
    term.wait("the length", |screen| {
        screen.lines().any(|l| l.trim() == "got-14")
    });
    term.keys(&["exit", "Enter"]);
    let session = s.gw.wait_ended_session("box");
    let all = serde_json::to_string(&s.gw.events(&session)).unwrap();
    assert!(!all.contains("hunter2"), "the secret is in the recording");
    assert!(all.contains("[input not echoed: 14 characters]"));
}
