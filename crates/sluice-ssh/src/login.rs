//! The SSH user name a client gives: `connection`, or `login+connection` to pick one of the
//! target logins the connection allows.

/// What the client asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Login<'a> {
    /// The target login, when chosen.
    pub login: Option<&'a str>,
    /// The connection.
    pub connection: &'a str,
}

/// The user name of a connection that only jumps on (`ssh -J jump@gateway connection`).
pub const JUMP: &str = "jump";

/// What an SSH login through a jump asks for: the connection is the jump's destination
/// host, and the user name picks a target login when the connection allows it (else the
/// default login: the client sends its local user name).
pub fn through_jump<'a>(user: &'a str, destination: &'a str) -> Login<'a> {
    Login {
        login: Some(user),
        connection: destination,
    }
}

/// Splits `user` at its last `+`.
pub fn parse(user: &str) -> Login<'_> {
    match user.rsplit_once('+') {
        Some((login, connection)) if !login.is_empty() => Login {
            login: Some(login),
            connection,
        },
        _ => Login {
            login: None,
            connection: user,
        },
    }
}

/// The target login for `requested` on a connection whose default is `username` and whose
/// other allowed logins are `others`; `None` when the login is not allowed.
pub fn choose<'a>(
    requested: Option<&'a str>,
    username: &'a str,
    others: &'a [String],
) -> Option<&'a str> {
    match requested {
        None => Some(username),
        Some(l) if l == username || others.iter().any(|o| o == l) => Some(l),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_name_a_connection_and_maybe_a_login() {
        assert_eq!(
            parse("web-1"),
            Login {
                login: None,
                connection: "web-1"
            }
        );
        assert_eq!(
            parse("deploy+web-1"),
            Login {
                login: Some("deploy"),
                connection: "web-1"
            }
        );
        assert_eq!(
            parse("+web-1"),
            Login {
                login: None,
                connection: "+web-1"
            }
        );
        let others = vec!["deploy".to_string()];
        assert_eq!(choose(None, "ubuntu", &others), Some("ubuntu"));
        assert_eq!(choose(Some("deploy"), "ubuntu", &others), Some("deploy"));
        assert_eq!(choose(Some("root"), "ubuntu", &others), None);
    }
}
