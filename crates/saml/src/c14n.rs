//! Exclusive XML Canonicalization 1.0, without comments
//! (`http://www.w3.org/2001/10/xml-exc-c14n#`), of one element and its
//! descendants: the bytes an XML signature's digest and signature are
//! computed over.
//!
//! Only what a SAML signature needs: element, attribute and text nodes
//! (documents with comments or processing instructions are refused before
//! this runs, see `xml.rs`), namespace declarations rendered where an
//! element or attribute visibly uses them (and for the prefixes of an
//! `InclusiveNamespaces PrefixList`), attributes sorted by namespace URI
//! then local name, and the canonical escapes. One subtree can be left
//! out: the enveloped `Signature` of the element being digested.
//!
//! Prefixes are read from the source text (`Node::range`,
//! `Attribute::range_qname`), because a document may bind two prefixes to
//! one namespace and the canonical form keeps the one written.

use roxmltree::{Node, NodeId};

/// What to canonicalize around.
#[derive(Debug, Default)]
pub(crate) struct Options<'a> {
    /// A subtree left out (the enveloped signature).
    pub(crate) exclude: Option<NodeId>,
    /// Prefixes treated as in inclusive canonicalization (`#default` for
    /// the default namespace).
    pub(crate) inclusive: &'a [String],
}

/// The exclusive canonical form of `apex` and its descendants.
pub(crate) fn canonicalize(apex: Node<'_, '_>, src: &str, opts: &Options<'_>) -> String {
    let mut out = String::with_capacity(src.len() / 2);
    // Namespace declarations rendered by output ancestors: (prefix, URI).
    let mut rendered: Vec<(String, String)> = Vec::new();
    element(apex, src, opts, &mut rendered, &mut out);
    out
}

/// The qualified name of an element as written in the source.
fn element_qname<'s>(node: Node<'_, '_>, src: &'s str) -> &'s str {
    let start = node.range().start + 1;
    let rest = src.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    rest.get(..end).unwrap_or("")
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

/// The namespace URI `prefix` is bound to at `node` ("" when unbound).
fn in_scope<'a>(node: Node<'a, '_>, prefix: &str) -> &'a str {
    node.namespaces()
        .find(|ns| ns.name().unwrap_or("") == prefix)
        .map_or("", |ns| ns.uri())
}

fn element(
    node: Node<'_, '_>,
    src: &str,
    opts: &Options<'_>,
    rendered: &mut Vec<(String, String)>,
    out: &mut String,
) {
    let qname = element_qname(node, src);
    // The prefixes this element visibly uses: its own, its attributes',
    // and the inclusive list's.
    let mut used: Vec<String> = vec![prefix_of(qname).to_owned()];
    let mut attrs: Vec<(&str, &str, &str, &str)> = Vec::new(); // (uri, local, qname, value)
    for a in node.attributes() {
        let aq = src.get(a.range_qname()).unwrap_or(a.name());
        let p = prefix_of(aq);
        if !p.is_empty() && p != "xml" && !used.iter().any(|u| u == p) {
            used.push(p.to_owned());
        }
        attrs.push((a.namespace().unwrap_or(""), a.name(), aq, a.value()));
    }
    for p in opts.inclusive {
        let p = if p == "#default" { "" } else { p.as_str() };
        if !used.iter().any(|u| u == p) && (p.is_empty() || !in_scope(node, p).is_empty()) {
            used.push(p.to_owned());
        }
    }
    let mut decls: Vec<(String, String)> = Vec::new();
    for p in used {
        if p == "xml" {
            continue;
        }
        let uri = in_scope(node, &p).to_owned();
        let shown = rendered
            .iter()
            .rev()
            .find(|(rp, _)| *rp == p)
            .map(|(_, u)| u.as_str());
        let needed = match shown {
            Some(u) => u != uri,
            // An unbound default namespace that no ancestor declared needs
            // no `xmlns=""`.
            None => !(p.is_empty() && uri.is_empty()),
        };
        if needed {
            decls.push((p, uri));
        }
    }
    decls.sort();
    attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    out.push('<');
    out.push_str(qname);
    for (p, uri) in &decls {
        if p.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
        }
        escape_attr(uri, out);
        out.push('"');
    }
    for (_, _, aq, value) in &attrs {
        out.push(' ');
        out.push_str(aq);
        out.push_str("=\"");
        escape_attr(value, out);
        out.push('"');
    }
    out.push('>');
    let depth = rendered.len();
    rendered.extend(decls);
    for child in node.children() {
        if Some(child.id()) == opts.exclude {
            continue;
        }
        if child.is_element() {
            element(child, src, opts, rendered, out);
        } else if child.is_text() {
            escape_text(child.text().unwrap_or(""), out);
        }
    }
    rendered.truncate(depth);
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, inclusive: &[String]) -> String {
        let doc = roxmltree::Document::parse(xml).expect("xml");
        canonicalize(
            doc.root_element(),
            xml,
            &Options {
                exclude: None,
                inclusive,
            },
        )
    }

    #[test]
    fn namespaces_are_rendered_where_visibly_used() {
        // The W3C exc-c14n example: `n1` is declared on the apex's parent
        // and used only by a descendant.
        let xml = r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>"#;
        let doc = roxmltree::Document::parse(xml).expect("xml");
        let elem2 = doc.root_element().first_element_child().expect("elem2");
        let out = canonicalize(elem2, xml, &Options::default());
        assert_eq!(
            out,
            r#"<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>"#
        );
    }

    #[test]
    fn attributes_sort_by_namespace_then_name_and_escape() {
        let xml = "<e xmlns:b=\"urn:b\" xmlns:a=\"urn:a\" z=\"1\" b:x=\"2\" a:y=\"&lt;&amp;&quot;&#x9;&#xA;\" m=\"3\">a&amp;b &gt; &#xD;</e>";
        assert_eq!(
            c14n(xml, &[]),
            "<e xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" m=\"3\" z=\"1\" a:y=\"&lt;&amp;&quot;&#x9;&#xA;\" b:x=\"2\">a&amp;b &gt; &#xD;</e>"
        );
    }

    #[test]
    fn unused_declarations_are_dropped_and_inclusive_prefixes_kept() {
        let xml = r#"<r xmlns="urn:d" xmlns:xs="urn:xs" xmlns:u="urn:u"><c a="xs:string"/></r>"#;
        assert_eq!(
            c14n(xml, &[]),
            r#"<r xmlns="urn:d"><c a="xs:string"></c></r>"#
        );
        assert_eq!(
            c14n(xml, &["xs".to_owned()]),
            r#"<r xmlns="urn:d" xmlns:xs="urn:xs"><c a="xs:string"></c></r>"#
        );
    }

    #[test]
    fn a_default_namespace_is_undeclared_where_it_ends() {
        let xml = r#"<a xmlns="urn:a"><b xmlns=""><c/></b></a>"#;
        assert_eq!(
            c14n(xml, &[]),
            r#"<a xmlns="urn:a"><b xmlns=""><c></c></b></a>"#
        );
    }
}
