//! Limits checked before any recursive work on a GraphQL document.
//!
//! async-graphql's parser and validation recurse over the document, and its validation expands
//! fragment spreads without memoising them, so a few kilobytes can overflow a worker's stack
//! (values nested thousands deep) or take exponential time (fragments spreading the previous
//! one twice). Everything here is bounded by the input's length: a flat scan of the text first,
//! then, once nesting is known to be shallow, the parse, then a memoised walk that computes how
//! large the document becomes once its fragments are expanded. Only then does the schema see it.

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{
    BatchRequest, BatchResponse, Data, Executor, Request, Response, Value, Variables,
};
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::sync::Arc;

/// Tokens in one document. The introspection query has about 300.
pub const MAX_TOKENS: usize = 5_000;
/// Brackets (`{`, `[`, `(`) open at once, in selections and in argument values alike.
pub const MAX_NESTING: usize = 40;
/// Fragment definitions in one document.
pub const MAX_FRAGMENTS: usize = 50;
/// Fragment spreads and inline fragments in one document.
pub const MAX_SPREADS: usize = 200;
/// Selections once every fragment spread is replaced by its fragment.
pub const MAX_EXPANDED_SELECTIONS: usize = 2_000;
/// Nesting of a variable's value (objects and lists).
pub const MAX_VARIABLE_DEPTH: usize = 32;

/// Why a document was refused; each is a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    TooManyTokens,
    TooDeep,
    TooManyFragments,
    TooManySpreads,
    TooLarge,
    FragmentCycle(String),
    VariablesTooDeep,
    Parse(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooManyTokens
            | Refusal::TooManyFragments
            | Refusal::TooManySpreads
            | Refusal::TooLarge => "QUERY_TOO_LARGE",
            Refusal::TooDeep | Refusal::VariablesTooDeep => "QUERY_TOO_DEEP",
            Refusal::FragmentCycle(_) => "GRAPHQL_VALIDATION_FAILED",
            Refusal::Parse(_) => "GRAPHQL_PARSE_FAILED",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::TooManyTokens => format!("a document may have at most {MAX_TOKENS} tokens"),
            Refusal::TooDeep => {
                format!("brackets may be nested at most {MAX_NESTING} deep")
            }
            Refusal::TooManyFragments => {
                format!("a document may define at most {MAX_FRAGMENTS} fragments")
            }
            Refusal::TooManySpreads => {
                format!("a document may hold at most {MAX_SPREADS} fragment spreads")
            }
            Refusal::TooLarge => format!(
                "a document may select at most {MAX_EXPANDED_SELECTIONS} fields once its \
                 fragments are expanded"
            ),
            Refusal::FragmentCycle(name) => format!("fragment \"{name}\" spreads itself"),
            Refusal::VariablesTooDeep => {
                format!("variables may be nested at most {MAX_VARIABLE_DEPTH} deep")
            }
            Refusal::Parse(m) => m.clone(),
        }
    }
}

/// What the flat scan learnt about a document.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// One entry per operation definition: its name, if it has one.
    pub operations: Vec<Option<&'a str>>,
}

impl<'a> Scan<'a> {
    /// The name of the document's only operation.
    pub fn single_operation_name(&self) -> Option<&'a str> {
        match self.operations.as_slice() {
            [only] => *only,
            _ => None,
        }
    }
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_continue(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// A single pass over the text: counts tokens, brackets, fragments and spreads, and notes the
/// operations. Recurses into nothing, so any input is safe here. Malformed text is left for the
/// parser to describe, once it is known to be small and shallow.
pub fn scan(query: &str) -> Result<Scan<'_>, Refusal> {
    #[derive(PartialEq)]
    enum Header {
        /// Between definitions.
        None,
        /// After `query`/`mutation`/`subscription`: the next name is the operation's.
        OperationKeyword,
        /// Inside an operation's header, name already seen (or not given).
        Operation,
        /// Inside a fragment definition's header.
        Fragment,
    }
    let bytes = query.as_bytes();
    let mut out = Scan::default();
    let (mut i, mut tokens, mut depth) = (0usize, 0usize, 0usize);
    let (mut fragments, mut spreads) = (0usize, 0usize);
    let mut header = Header::None;
    let mut op_name: Option<&str> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        tokens += 1;
        if tokens > MAX_TOKENS {
            return Err(Refusal::TooManyTokens);
        }
        match b {
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\n' | b'\r') {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' | b'(' => {
                if depth == 0 && b == b'{' {
                    match header {
                        Header::None => out.operations.push(None),
                        Header::OperationKeyword | Header::Operation => {
                            out.operations.push(op_name.take())
                        }
                        Header::Fragment => {}
                    }
                    header = Header::None;
                }
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Refusal::TooDeep);
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                spreads += 1;
                if spreads > MAX_SPREADS {
                    return Err(Refusal::TooManySpreads);
                }
                i += 3;
            }
            _ if is_name_start(b) => {
                let start = i;
                while i < bytes.len() && is_name_continue(bytes[i]) {
                    i += 1;
                }
                let name = &query[start..i];
                if depth == 0 {
                    match (&header, name) {
                        (Header::None, "query" | "mutation" | "subscription") => {
                            header = Header::OperationKeyword;
                            op_name = None;
                        }
                        (Header::None, "fragment") => {
                            fragments += 1;
                            if fragments > MAX_FRAGMENTS {
                                return Err(Refusal::TooManyFragments);
                            }
                            header = Header::Fragment;
                        }
                        (Header::OperationKeyword, _) => {
                            op_name = Some(name);
                            header = Header::Operation;
                        }
                        _ => {}
                    }
                }
            }
            _ if b == b'-' || b.is_ascii_digit() => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            _ => {
                if header == Header::OperationKeyword && depth == 0 {
                    header = Header::Operation;
                }
                // One character; stepping by its UTF-8 length keeps `i` on a char boundary.
                i += query[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    Ok(out)
}

/// The number of selections of the document's largest operation once fragments are expanded,
/// computed once per fragment. Stops counting past the limit.
fn expanded_size(doc: &ExecutableDocument) -> Result<usize, Refusal> {
    #[derive(Clone, Copy)]
    enum Memo {
        InProgress,
        Done(usize),
    }
    fn set_size(
        doc: &ExecutableDocument,
        set: &SelectionSet,
        memo: &mut HashMap<String, Memo>,
    ) -> Result<usize, Refusal> {
        let mut total = 0usize;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(f) => 1 + set_size(doc, &f.node.selection_set.node, memo)?,
                Selection::InlineFragment(f) => set_size(doc, &f.node.selection_set.node, memo)?,
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match memo.get(name) {
                        Some(Memo::Done(n)) => *n,
                        Some(Memo::InProgress) => {
                            return Err(Refusal::FragmentCycle(name.to_owned()))
                        }
                        None => match doc.fragments.get(name) {
                            // An unknown fragment is validation's to report.
                            None => 1,
                            Some(fragment) => {
                                memo.insert(name.to_owned(), Memo::InProgress);
                                let n = set_size(doc, &fragment.node.selection_set.node, memo)?;
                                memo.insert(name.to_owned(), Memo::Done(n));
                                n
                            }
                        },
                    }
                }
            };
            total = total.saturating_add(size);
            if total > MAX_EXPANDED_SELECTIONS {
                return Err(Refusal::TooLarge);
            }
        }
        Ok(total)
    }
    let mut memo = HashMap::new();
    // Fragments no operation uses are still validated: size them too.
    for fragment in doc.fragments.values() {
        set_size(doc, &fragment.node.selection_set.node, &mut memo)?;
    }
    let mut largest = 0;
    let operations: Vec<_> = match &doc.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    for op in operations {
        largest = largest.max(set_size(doc, &op.node.selection_set.node, &mut memo)?);
    }
    Ok(largest)
}

/// Depth of the variables, walked without recursion.
fn variables_depth_ok(variables: &Variables) -> bool {
    let mut stack: Vec<(&Value, usize)> = variables.values().map(|v| (v, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_VARIABLE_DEPTH {
            return false;
        }
        match value {
            Value::List(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    true
}

/// Scans, parses and sizes a document; the parsed document is returned for the schema to use.
pub fn check(query: &str, variables: &Variables) -> Result<ExecutableDocument, Refusal> {
    scan(query)?;
    if !variables_depth_ok(variables) {
        return Err(Refusal::VariablesTooDeep);
    }
    let doc =
        async_graphql::parser::parse_query(query).map_err(|e| Refusal::Parse(e.to_string()))?;
    expanded_size(&doc)?;
    Ok(doc)
}

/// The schema behind the guard: every request, over HTTP or a WebSocket, is checked before the
/// schema parses or validates it. (A schema extension could do the same, but any extension moves
/// every field of every answer onto async-graphql's slower path.)
#[derive(Clone)]
pub struct Guarded<E> {
    schema: E,
    checked: Arc<Checked>,
}

impl<E> Guarded<E> {
    pub fn new(schema: E) -> Self {
        Self {
            schema,
            checked: Arc::default(),
        }
    }

    fn guard(&self, mut request: Request) -> Result<Request, Refusal> {
        let doc = match self.checked.get(&request.query) {
            // The text passed the scan and the size walk before; its variables are new.
            Some(doc) if variables_depth_ok(&request.variables) => doc,
            Some(_) => return Err(Refusal::VariablesTooDeep),
            None => {
                let doc = check(&request.query, &request.variables)?;
                self.checked.put(&request.query, &doc);
                doc
            }
        };
        request.set_parsed_query(doc);
        Ok(request)
    }
}

/// Documents that passed [`check`], parsed, by their text. Clients send the same few queries
/// again and again, and parsing them took about 5% of the server's request threads.
/// Bounded in texts and in their bytes (a parsed document takes many times its text): once full
/// it starts again, so a client sending ever-new texts costs each of them one parse, as without
/// it, and the memory stays small.
#[derive(Default)]
struct Checked(std::sync::Mutex<Kept>);

#[derive(Default)]
struct Kept {
    docs: HashMap<String, ExecutableDocument>,
    bytes: usize,
}

/// Texts kept at most.
const CHECKED_MAX: usize = 256;
/// Their bytes at most (a client's queries are a few hundred bytes each).
const CHECKED_MAX_TOTAL_BYTES: usize = 256 * 1024;
/// Longer texts are checked each time.
const CHECKED_MAX_BYTES: usize = 4 * 1024;

impl Checked {
    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.docs.get(query).cloned()
    }

    fn put(&self, query: &str, doc: &ExecutableDocument) {
        if query.len() > CHECKED_MAX_BYTES {
            return;
        }
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.docs.len() >= CHECKED_MAX || kept.bytes + query.len() > CHECKED_MAX_TOTAL_BYTES {
            *kept = Kept::default();
        }
        if kept.docs.insert(query.to_owned(), doc.clone()).is_none() {
            kept.bytes += query.len();
        }
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (kept.docs.len(), kept.bytes)
    }
}

impl From<Refusal> for Response {
    fn from(refusal: Refusal) -> Self {
        crate::error::request_error(refusal.code(), &refusal.message())
    }
}

impl<E: Executor> Executor for Guarded<E> {
    async fn execute(&self, request: Request) -> Response {
        match self.guard(request) {
            Ok(request) => self.schema.execute(request).await,
            Err(refused) => refused.into(),
        }
    }

    async fn execute_batch(&self, batch: BatchRequest) -> BatchResponse {
        match batch {
            BatchRequest::Single(r) => BatchResponse::Single(self.execute(r).await),
            BatchRequest::Batch(rs) => {
                // Refused items answer for themselves; the rest run together, in order.
                let mut slots: Vec<Option<Response>> = Vec::with_capacity(rs.len());
                let (mut positions, mut admitted) = (Vec::new(), Vec::new());
                for (i, r) in rs.into_iter().enumerate() {
                    match self.guard(r) {
                        Ok(r) => {
                            positions.push(i);
                            admitted.push(r);
                            slots.push(None);
                        }
                        Err(refused) => slots.push(Some(refused.into())),
                    }
                }
                if !admitted.is_empty() {
                    let ran = match self
                        .schema
                        .execute_batch(BatchRequest::Batch(admitted))
                        .await
                    {
                        BatchResponse::Single(r) => vec![r],
                        BatchResponse::Batch(rs) => rs,
                    };
                    for (i, r) in positions.into_iter().zip(ran) {
                        slots[i] = Some(r);
                    }
                }
                BatchResponse::Batch(slots.into_iter().flatten().collect())
            }
        }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.guard(request) {
            Ok(request) => self.schema.execute_stream(request, session_data),
            Err(refused) => Box::pin(futures_util::stream::once(async move { refused.into() })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!(
            "{{ group(id: {}1{}) {{ unread }} }}",
            open.repeat(n),
            close.repeat(n)
        )
    }

    #[test]
    fn deep_values_are_refused_before_parsing() {
        let q = nested("{a:", "}", 100_000);
        assert_eq!(scan(&q).err(), Some(Refusal::TooDeep));
        let q = nested("[", "]", 100_000);
        assert_eq!(scan(&q).err(), Some(Refusal::TooDeep));
        let q = nested("[", "]", MAX_NESTING - 3);
        assert!(check(&q, &Variables::default()).is_ok());
    }

    fn deep_variables() -> Variables {
        let mut v = Value::Null;
        for _ in 0..=MAX_VARIABLE_DEPTH {
            v = Value::List(vec![v]);
        }
        Variables::from_value(Value::Object(
            [(async_graphql::Name::new("x"), v)].into_iter().collect(),
        ))
    }

    #[test]
    fn a_document_checked_once_is_reused_but_every_request_is_still_checked() {
        let guarded = Guarded::new(());
        let q = "query Home { home { groupId } }";
        let first = guarded.guard(Request::new(q)).unwrap();
        let again = guarded.guard(Request::new(q)).unwrap();
        let parsed = |mut r: Request| format!("{:?}", r.parsed_query().unwrap());
        assert_eq!(parsed(first), parsed(again));
        assert_eq!(guarded.checked.held().0, 1);

        // The same text with variables nested too deep is refused, from the cache too.
        let deep = Request::new(q).variables(deep_variables());
        assert_eq!(guarded.guard(deep).err(), Some(Refusal::VariablesTooDeep));
        // Refused texts are not kept, and are refused again.
        let too_deep = nested("[", "]", 100);
        for _ in 0..2 {
            let r = guarded.guard(Request::new(too_deep.clone()));
            assert_eq!(r.err(), Some(Refusal::TooDeep));
        }
        assert_eq!(guarded.checked.held().0, 1);

        // Ever-new texts never hold more than the bounds, in number or in bytes.
        for i in 0..CHECKED_MAX + 10 {
            let q = format!("query Q{i} {{ home {{ groupId }} }}");
            guarded.guard(Request::new(q)).unwrap();
            assert!(guarded.checked.held().0 <= CHECKED_MAX);
        }
        for i in 0..200 {
            let q = format!("query L{i} {{ home {{ groupId }} }} #{}", "x".repeat(3000));
            guarded.guard(Request::new(q)).unwrap();
            let (texts, bytes) = guarded.checked.held();
            assert!(texts >= 1 && bytes <= CHECKED_MAX_TOTAL_BYTES, "{bytes}");
        }
        let long = format!(
            "{{ home {{ groupId }} }} #{}",
            "x".repeat(CHECKED_MAX_BYTES)
        );
        *guarded.checked.0.lock().unwrap() = Kept::default();
        guarded.guard(Request::new(long)).unwrap();
        assert_eq!(guarded.checked.held(), (0, 0), "long texts are not kept");
    }

    #[test]
    fn brackets_inside_strings_and_comments_do_not_count() {
        let deep = "{".repeat(1000);
        let q = format!("{{ a(s: \"{deep}\", t: \"\"\"{deep} \\\"\"\" {deep}\"\"\") }} # {deep}\n");
        assert!(scan(&q).is_ok(), "{q}");
    }

    #[test]
    fn doubling_fragments_are_refused_quickly() {
        let mut q = String::from("query { ...F24 }\nfragment F0 on Query { server { version } }\n");
        for i in 1..25 {
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
                p = i - 1
            ));
        }
        assert_eq!(
            check(&q, &Variables::default()).err(),
            Some(Refusal::TooLarge)
        );
    }

    #[test]
    fn fragment_cycles_are_refused() {
        let q = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert!(matches!(
            check(q, &Variables::default()),
            Err(Refusal::FragmentCycle(_))
        ));
    }

    #[test]
    fn counts_are_bounded() {
        let many = "a ".repeat(MAX_TOKENS + 1);
        assert_eq!(
            scan(&format!("{{ {many} }}")).err(),
            Some(Refusal::TooManyTokens)
        );
        let frags: String = (0..=MAX_FRAGMENTS)
            .map(|i| format!("fragment F{i} on Query {{ a }} "))
            .collect();
        assert_eq!(scan(&frags).err(), Some(Refusal::TooManyFragments));
        let spreads = "...F ".repeat(MAX_SPREADS + 1);
        assert_eq!(
            scan(&format!("{{ {spreads} }}")).err(),
            Some(Refusal::TooManySpreads)
        );
    }

    #[test]
    fn operations_are_named_from_the_scan() {
        let one = |q| scan(q).map(|s| s.single_operation_name());
        assert_eq!(one("query Probe { server { version } }"), Ok(Some("Probe")));
        assert_eq!(
            one("query Probe($a: Int = 1) @x { a } fragment F on Q { b }"),
            Ok(Some("Probe"))
        );
        assert_eq!(one("{ a }"), Ok(None));
        assert_eq!(one("query { a }"), Ok(None));
        assert_eq!(one("query A { a } query B { b }"), Ok(None));
        assert_eq!(one("subscription Live { a { b } }"), Ok(Some("Live")));
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut v = serde_json::json!(1);
        for _ in 0..(MAX_VARIABLE_DEPTH + 1) {
            v = serde_json::json!({ "a": v });
        }
        let vars = Variables::from_json(serde_json::json!({ "x": v }));
        assert_eq!(
            check("query($x: Int) { a }", &vars).err(),
            Some(Refusal::VariablesTooDeep)
        );
    }

    #[test]
    fn any_text_scans_without_panicking() {
        for q in [
            "\"",
            "\"\"\"",
            "\"\\",
            "...",
            "..",
            "-",
            "é{",
            "{\u{0}}",
            "#",
            "\"\"\"\\\"\"\"",
            "日本語",
        ] {
            let _ = check(q, &Variables::default());
        }
    }
}
