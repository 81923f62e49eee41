//! Renders diagnostics for people: miette's graphical report with the
//! offending source underlined.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use portcullis_cel::{Diagnostic, Severity};

/// A diagnostic with its source, in the shape miette renders.
#[derive(Debug)]
struct Report<'d> {
    diag: &'d Diagnostic,
    src: NamedSource<String>,
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = SourceSpan::from(self.diag.span.range());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.diag.label.clone(),
            span,
        ))))
    }
}

/// Renders `diag` against `source` (named `name`) as a human report.
pub(crate) fn human(name: &str, source: &str, diag: &Diagnostic) -> String {
    let report = Report {
        diag,
        src: NamedSource::new(name, source.to_string()),
    };
    let theme = if std::env::var_os("NO_COLOR").is_some() || !is_terminal() {
        GraphicalTheme::unicode_nocolor()
    } else {
        GraphicalTheme::unicode()
    };
    let mut out = String::new();
    let handler = GraphicalReportHandler::new_themed(theme);
    if handler.render_report(&mut out, &report).is_err() {
        out = format!(
            "{}[{}]: {}",
            severity_word(diag.severity),
            diag.code,
            diag.message
        );
    }
    out
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn is_terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal()
}
