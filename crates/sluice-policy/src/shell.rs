//! What the guard sees of a shell command line: the programs it runs.
//!
//! A small POSIX-shell word splitter (written here: the shell-parser crates are either
//! unmaintained or whole shells). It knows quotes, backslashes, the control operators
//! (`;`, `&`, `&&`, `|`, `||`, newlines), command substitution (`$(…)`, backticks) and
//! leading `NAME=value` assignments, and looks through the wrappers that run another program
//! (`sudo`, `env`, `nohup`, `exec`, `time`, `nice`, `timeout`, `xargs`). Each simple command
//! becomes one statement whose classes are the programs' base names (`/bin/rm` → `rm`), so a
//! rule `match: { statements: [rm] }` catches `sudo /bin/rm -rf /`. Regex rules see the line
//! with runs of blanks collapsed. What it cannot see: commands a script builds or reads at
//! run time (`sh -c "$X"`, `eval`, a script file's content, aliases and functions).

use crate::analysis::Analysis;
use crate::StatementFacts;

/// Programs that run the program named after their options.
const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "nohup", "exec", "time", "nice", "ionice", "timeout", "xargs",
    "command", "builtin", "stdbuf", "setsid", "chroot", "su",
];

/// Analyzes one command line.
pub fn analyze(line: &str) -> Analysis {
    let mut statements = Vec::new();
    split_commands(line, &mut statements, 0);
    Analysis {
        statements,
        normalized: line.split_whitespace().collect::<Vec<_>>().join(" "),
        unparsable: None,
    }
}

/// Programs whose `-c` argument is a shell script.
pub const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"];

/// Adds the statements of `args`' `-c SCRIPT` (the script a shell `program` runs) to
/// `analysis`.
pub fn add_shell_script(analysis: &mut Analysis, program: &str, args: &[String]) {
    let name = program.rsplit('/').next().unwrap_or(program);
    if !SHELLS.contains(&name) {
        return;
    }
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg.starts_with('-') && !arg.starts_with("--") && arg.contains('c') {
            if let Some(script) = args.next() {
                analysis.statements.extend(analyze(script).statements);
            }
        }
    }
}

/// Splits `line` into simple commands, appending one statement per command. Command
/// substitutions are analyzed as commands of their own (to a small depth).
fn split_commands(line: &str, out: &mut Vec<StatementFacts>, depth: u8) {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush_word = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n != '\n' {
                        word.push(n);
                        in_word = true;
                    }
                }
            }
            '\'' => {
                in_word = true;
                for n in chars.by_ref() {
                    if n == '\'' {
                        break;
                    }
                    word.push(n);
                }
            }
            '"' => {
                in_word = true;
                while let Some(n) = chars.next() {
                    match n {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                word.push(e);
                            }
                        }
                        '$' if chars.peek() == Some(&'(') => {
                            chars.next();
                            let inner = take_until_close(&mut chars);
                            if depth < 4 {
                                split_commands(&inner, out, depth + 1);
                            }
                        }
                        '`' => {
                            let inner: String = chars.by_ref().take_while(|c| *c != '`').collect();
                            if depth < 4 {
                                split_commands(&inner, out, depth + 1);
                            }
                        }
                        n => word.push(n),
                    }
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                chars.next();
                let inner = take_until_close(&mut chars);
                if depth < 4 {
                    split_commands(&inner, out, depth + 1);
                }
                in_word = true;
            }
            '`' => {
                let inner: String = chars.by_ref().take_while(|c| *c != '`').collect();
                if depth < 4 {
                    split_commands(&inner, out, depth + 1);
                }
                in_word = true;
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                flush_word(&mut word, &mut in_word, &mut words);
                push_command(&words, out);
                words.clear();
            }
            '#' if !in_word => {
                // A comment runs to the end of the line.
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                flush_word(&mut word, &mut in_word, &mut words);
                push_command(&words, out);
                words.clear();
            }
            c if c.is_whitespace() => flush_word(&mut word, &mut in_word, &mut words),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    flush_word(&mut word, &mut in_word, &mut words);
    push_command(&words, out);
}

/// The text up to the `)` that closes an already opened `(`.
fn take_until_close(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut depth = 1;
    let mut inner = String::new();
    for c in chars.by_ref() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        inner.push(c);
    }
    inner
}

/// One simple command's statement: the programs it runs (through wrappers).
fn push_command(words: &[String], out: &mut Vec<StatementFacts>) {
    let mut classes = Vec::new();
    let mut rest = words
        .iter()
        .skip_while(|w| is_assignment(w))
        .map(String::as_str)
        .peekable();
    while let Some(program) = rest.next() {
        if is_redirection(program) {
            // `> file` names its file in the next word; `>file` does not.
            if program
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '&')
                .trim_start_matches(['<', '>'])
                .is_empty()
            {
                rest.next();
            }
            continue;
        }
        let name = program.rsplit('/').next().unwrap_or(program).to_string();
        let wraps = WRAPPERS.contains(&name.as_str());
        classes.push(name);
        if !wraps {
            break;
        }
        // Skip the wrapper's options (with their arguments), `timeout`'s duration, `env`'s
        // assignments and `chroot`'s directory.
        let wrapper = classes.last().map(String::as_str).unwrap_or_default();
        let mut operands_to_skip = usize::from(wrapper == "chroot");
        while let Some(next) = rest.peek() {
            if next.starts_with('-') && *next != "-" {
                let takes_value = option_takes_value(wrapper, next);
                rest.next();
                if takes_value {
                    rest.next();
                }
                continue;
            }
            let skip = is_assignment(next)
                || (wrapper == "timeout" && next.starts_with(|c: char| c.is_ascii_digit()))
                || operands_to_skip > 0;
            if !skip {
                break;
            }
            operands_to_skip = operands_to_skip.saturating_sub(1);
            rest.next();
        }
    }
    let mut paths = Vec::new();
    if classes.last().is_some_and(|p| p == "scp") {
        // The target side of a legacy scp: `scp -t DIR` receives files, `scp -f FILE` sends.
        let (options, operands): (Vec<&str>, Vec<&str>) = rest.partition(|w| w.starts_with('-'));
        let flag = |f: char| {
            options
                .iter()
                .any(|o| !o.starts_with("--") && o.contains(f))
        };
        for (flag_char, class) in [('t', "file_write"), ('f', "file_read")] {
            if flag(flag_char) {
                classes.push(class.to_string());
                paths.extend(operands.iter().map(|p| (*p).to_string()));
            }
        }
    }
    if !classes.is_empty() {
        out.push(StatementFacts {
            classes,
            paths,
            ..StatementFacts::default()
        });
    }
}

/// Whether `option` of `wrapper` takes the next word as its value (`sudo -u root`).
fn option_takes_value(wrapper: &str, option: &str) -> bool {
    if option.starts_with("--") || option.len() != 2 {
        // `--user=root`, `-uroot`: the value is attached.
        return false;
    }
    let with_value: &str = match wrapper {
        "sudo" => "ughpCDrtUT",
        "doas" => "uC",
        "env" => "uCS",
        "timeout" => "sk",
        "nice" => "n",
        "ionice" => "cnp",
        "xargs" => "IndPLsEa",
        "stdbuf" => "ioe",
        "su" => "sgG",
        _ => "",
    };
    option[1..]
        .chars()
        .next()
        .is_some_and(|c| with_value.contains(c))
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

fn is_redirection(word: &str) -> bool {
    word.trim_start_matches(|c: char| c.is_ascii_digit())
        .starts_with(['<', '>'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(line: &str) -> Vec<Vec<String>> {
        analyze(line)
            .statements
            .into_iter()
            .map(|s| s.classes)
            .collect()
    }

    #[test]
    fn programs_are_found_through_operators_quotes_and_wrappers() {
        assert_eq!(programs("ls -la"), vec![vec!["ls"]]);
        assert_eq!(
            programs("cd /tmp && rm -rf x; echo ok"),
            vec![vec!["cd"], vec!["rm"], vec!["echo"]]
        );
        assert_eq!(
            programs("sudo -u root /bin/rm -rf /"),
            vec![vec!["sudo", "rm"]]
        );
        assert_eq!(
            programs("FOO=1 env -i BAR=2 timeout 5 shutdown -h now"),
            vec![vec!["env", "timeout", "shutdown"]]
        );
        assert_eq!(
            programs("cat x | grep 'a;b' | wc -l"),
            vec![vec!["cat"], vec!["grep"], vec!["wc"]]
        );
        assert_eq!(
            programs("echo \"$(rm -rf /)\""),
            vec![vec!["rm"], vec!["echo"]]
        );
        assert_eq!(
            programs("echo `reboot`"),
            vec![vec!["reboot"], vec!["echo"]]
        );
        assert_eq!(programs("r\\m -rf /"), vec![vec!["rm"]]);
        assert_eq!(programs("'rm' -rf /"), vec![vec!["rm"]]);
        assert_eq!(programs("echo hi # rm -rf /"), vec![vec!["echo"]]);
        assert_eq!(programs("> out.txt ls"), vec![vec!["ls"]]);
        assert!(programs("   ").is_empty());
    }

    #[test]
    fn a_legacy_scp_names_the_files_it_writes_or_reads() {
        let facts = &analyze("scp -r -t /etc/ssh").statements[0];
        assert_eq!(facts.classes, ["scp", "file_write"]);
        assert_eq!(facts.paths, ["/etc/ssh"]);
        let facts = &analyze("sudo scp -f /srv/1").statements[0];
        assert_eq!(facts.classes, ["sudo", "scp", "file_read"]);
        assert_eq!(facts.paths, ["/srv/1"]);
    }

    #[test]
    fn the_normalized_line_collapses_blanks() {
        assert_eq!(analyze("rm   -rf\t/").normalized, "rm -rf /");
    }
}
