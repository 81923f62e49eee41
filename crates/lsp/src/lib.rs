//! `portcullis lsp`: a language server for Traffic Policy files over stdio.
//! An editor gets what `portcullis lint` says as the file is typed (the
//! same codes, spans and help), hover documentation for variables,
//! functions, action types and config fields, completion of variables,
//! action types and config fields, and go-to-definition from `vars.x` to
//! the `set-vars` that sets it.
//!
//! Built on `lsp-server` (rust-analyzer's protocol scaffold): messages are
//! handled one at a time on the server's thread, documents are kept whole
//! (full sync), and each analysis runs on the text as it is, with nothing
//! cached between edits. On an edit the checks' diagnostics go out at once
//! (a 1,000-rule file: about 14 ms, `benches/policy.rs`), and what the
//! proxy's compile adds, if anything, follows.

mod analysis;
mod text;

use std::collections::HashMap;
use std::error::Error;

use lsp_server::{Connection, Message, Notification, Request, Response};
use serde_json::{Value, json};

pub use analysis::{compile_diagnostics, completions, definition, diagnostics, hover};

/// Serves the protocol on standard input and output until the client
/// shuts the server down.
pub fn run_stdio() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (connection, io) = Connection::stdio();
    let capabilities = json!({
        "textDocumentSync": 1,
        "hoverProvider": true,
        "definitionProvider": true,
        "completionProvider": {"triggerCharacters": [".", ":", " "]},
    });
    connection.initialize(capabilities)?;
    serve(&connection)?;
    drop(connection);
    io.join()?;
    Ok(())
}

fn serve(connection: &Connection) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut documents: HashMap<String, String> = HashMap::new();
    for message in &connection.receiver {
        match message {
            Message::Request(req) => {
                if connection.handle_shutdown(&req)? {
                    return Ok(());
                }
                let result = answer(&documents, &req);
                connection
                    .sender
                    .send(Response::new_ok(req.id, result).into())?;
            }
            Message::Notification(n) => {
                if let Some(uri) = update(&mut documents, &n) {
                    let src = documents.get(&uri).map_or("", String::as_str);
                    // The checks first, at once; what the compile adds
                    // (rarely anything) after.
                    let mut diags = diagnostics(src);
                    publish(connection, &uri, &diags)?;
                    let more = compile_diagnostics(src);
                    if !more.is_empty() {
                        diags.extend(more);
                        publish(connection, &uri, &diags)?;
                    }
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

fn publish(
    connection: &Connection,
    uri: &str,
    diags: &[Value],
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let params = json!({"uri": uri, "diagnostics": diags});
    connection
        .sender
        .send(Notification::new("textDocument/publishDiagnostics".to_owned(), params).into())?;
    Ok(())
}

/// Applies a document notification; the document to check again, if any.
fn update(documents: &mut HashMap<String, String>, n: &Notification) -> Option<String> {
    let uri = n.params["textDocument"]["uri"].as_str()?.to_owned();
    match n.method.as_str() {
        "textDocument/didOpen" => {
            let text = n.params["textDocument"]["text"].as_str()?.to_owned();
            documents.insert(uri.clone(), text);
            Some(uri)
        }
        "textDocument/didChange" => {
            // Full sync: the last change is the whole text.
            let text = n.params["contentChanges"].as_array()?.last()?["text"]
                .as_str()?
                .to_owned();
            documents.insert(uri.clone(), text);
            Some(uri)
        }
        "textDocument/didClose" => {
            documents.remove(&uri);
            None
        }
        _ => None,
    }
}

/// The result of a request about a document (`null` when there is none).
fn answer(documents: &HashMap<String, String>, req: &Request) -> Value {
    let uri = req.params["textDocument"]["uri"].as_str().unwrap_or("");
    let Some(src) = documents.get(uri) else {
        return Value::Null;
    };
    let pos = &req.params["position"];
    let line = u32::try_from(pos["line"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
    let col = u32::try_from(pos["character"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
    let at = text::offset(src, line, col);
    match req.method.as_str() {
        "textDocument/hover" => hover(src, at).map_or(
            Value::Null,
            |md| json!({"contents": {"kind": "markdown", "value": md}}),
        ),
        "textDocument/completion" => Value::Array(completions(src, at)),
        "textDocument/definition" => definition(src, at).map_or(
            Value::Null,
            |(s, e)| json!({"uri": uri, "range": text::range(src, s, e)}),
        ),
        _ => Value::Null,
    }
}
