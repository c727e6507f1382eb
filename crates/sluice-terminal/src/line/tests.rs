use super::*;

fn typed(keys: &[u8]) -> (LineInput, Option<usize>) {
    let mut line = LineInput::default();
    let enter = line.feed(keys);
    (line, enter)
}

#[test]
fn plain_typing_is_exact_up_to_enter() {
    let (line, enter) = typed(b"ls -la\rpwd\r");
    assert_eq!(enter, Some(6));
    assert_eq!(line.text(), "ls -la");
    assert!(line.exact());
    assert_eq!(line.raw(), b"ls -la");
}

#[test]
fn editing_keys_the_model_follows() {
    // Backspace over a multi-byte character, Ctrl-W, Ctrl-U.
    let (line, _) = typed("rm -rf /tmpé\x7f\x7fx".as_bytes());
    assert_eq!(line.text(), "rm -rf /tmx");
    let (line, _) = typed(b"echo hello world\x17there");
    assert_eq!(line.text(), "echo hello there");
    let (line, _) = typed(b"garbage\x15id");
    assert_eq!(line.text(), "id");
    assert!(line.exact());
}

#[test]
fn the_tail_is_what_was_typed_after_the_last_key_the_model_cannot_follow() {
    let (line, _) = typed(b"X -f /v\x1b[H\x1b[3~rm");
    assert!(!line.exact());
    assert_eq!(line.tail(), "rm");
    let (line, _) = typed(b"ls\t");
    assert_eq!(line.tail(), "");
}

#[test]
fn keys_the_model_does_not_follow_make_it_inexact() {
    for keys in [
        &b"ls\x1b[D-l"[..],
        b"ls\t",
        b"\x1b[A",
        b"ls\x01rm",
        b"x\x1bb",
    ] {
        let (line, _) = typed(keys);
        assert!(!line.exact(), "{keys:?}");
    }
}

#[test]
fn a_bracketed_paste_keeps_its_newlines_until_the_real_enter() {
    let (line, enter) = typed(b"\x1b[200~ls\rrm -rf /\x1b[201~\r");
    assert_eq!(enter, Some(23));
    assert_eq!(line.text(), "ls\nrm -rf /");
    assert!(line.exact());
}

#[test]
fn ctrl_c_starts_over() {
    let (line, _) = typed(b"ls\x1b[D\x03");
    assert!(line.at_start() && line.exact() && line.text().is_empty());
}

#[test]
fn an_escape_sequence_split_across_chunks_is_followed() {
    let mut line = LineInput::default();
    assert_eq!(line.feed(b"a\x1b["), None);
    assert_eq!(line.feed(b"200~b\rc\x1b[20"), None);
    assert_eq!(line.feed(b"1~\r"), Some(2));
    assert_eq!(line.text(), "ab\nc");
}

fn screen(output: &str) -> Screen {
    let mut s = Screen::new(24, 40);
    assert!(s.process(output.as_bytes()));
    s
}

#[test]
fn the_screen_line_is_what_follows_the_prompt() {
    let mut s = screen("last login\r\nroot@box:~# ");
    s.mark_start();
    assert_eq!(s.line().text, "");
    // Typed "X -rf /tmp/v", then Home, Delete, "rm": the shell redraws the line.
    assert!(s.process(b"X -rf /tmp/v\x1b[12D\x1b[P\x1b[2@rm"));
    let line = s.line();
    assert_eq!(line.text, "rm -rf /tmp/v");
    assert!(s.echoed("rm") && !s.echoed("rmx"));
    assert!(!line.secret_prompt && !line.full_screen);
}

#[test]
fn a_wrapped_line_is_read_whole() {
    let mut s = screen("$ ");
    s.mark_start();
    let long = format!("echo {}", "a".repeat(60));
    assert!(s.process(long.as_bytes()));
    assert_eq!(s.line().text, long);
}

#[test]
fn history_search_shows_the_command() {
    let mut s = screen("$ ");
    s.mark_start();
    assert!(s.process(b"\r(reverse-i-search)`rm': rm -rf /srv"));
    assert_eq!(s.line().text, "rm -rf /srv");
}

#[test]
fn password_prompts_and_full_screen_programs_are_told_apart() {
    let mut s = screen("$ sudo id\r\n[sudo] password for root: ");
    s.mark_start();
    assert!(s.line().secret_prompt);
    let mut s = screen("\x1b[?1049hvim");
    s.mark_start();
    assert!(s.line().full_screen);
}

#[test]
fn a_terminal_without_a_size_gets_a_usable_one() {
    // `ssh -tt` from a pipe asks for a 0×0 pty; a huge one must not allocate millions of cells.
    let mut s = Screen::new(0, 0);
    assert!(s.process(b"$ echo a\r\na\r\n$ "));
    assert_eq!(s.parser.screen().size(), (24, 80));
    s.resize(100_000, 100_000);
    assert_eq!(s.parser.screen().size(), (300, 600));
    s.resize(1, 1);
    assert!(s.process("x\r\n".repeat(50).as_bytes()));
}
