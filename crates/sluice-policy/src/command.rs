//! What a protocol adapter tells the guard about a command.

/// Facts about one statement, as a parser saw them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatementFacts {
    /// Statement classes (`select`, `delete`, `delete_without_where`, `drop_table`, …), every
    /// class of every nested statement (a `DELETE` inside a CTE, an `EXPLAIN ANALYZE`d
    /// `UPDATE`, the SQL inside a `DO` block as far as the parser can see).
    pub classes: Vec<String>,
    /// Tables touched, lower-case, schema-qualified when the statement qualified them.
    pub tables: Vec<String>,
    /// Functions called, lower-case, schema-qualified when the statement qualified them.
    pub functions: Vec<String>,
    /// Files touched (SFTP and scp operations), absolute when the gateway could resolve them.
    pub paths: Vec<String>,
    /// Kubernetes resources (`pods`, `pods/exec`, `deployments.apps`, `deployments`).
    pub resources: Vec<String>,
    /// Kubernetes namespace of the request.
    pub namespaces: Vec<String>,
    /// Kubernetes object name of the request.
    pub names: Vec<String>,
    /// Dangers of the pod concerned (`privileged`, `root`, `host_path`, `host_namespaces`).
    pub pod_risks: Vec<String>,
}

/// One command from a client: what the guard judges.
#[derive(Clone, Debug, Default)]
pub struct Command<'a> {
    /// The text as sent.
    pub text: &'a str,
    /// The normalized text (constants replaced, comments and case folded by the parser);
    /// regex rules match against it. Empty when the command could not be parsed.
    pub normalized: &'a str,
    /// One entry per statement.
    pub statements: &'a [StatementFacts],
    /// Why the command could not be parsed, if it could not.
    pub unparsable: Option<&'a str>,
}
