//! The `portcullis` command line: parses arguments and hands each
//! subcommand to its module under `command/`. Logic lives in the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod command;

/// A programmable traffic-policy engine: ngrok Traffic Policy on your own machines.
#[derive(Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check and evaluate one CEL expression, printing the result as JSON.
    Cel(command::cel::Args),
    /// Check policy files and report every problem.
    Lint(command::lint::Args),
    /// Run the proxy in front of an upstream, as `ngrok http` does.
    Http(Box<command::http::HttpArgs>),
    /// Run the endpoints of a configuration file.
    Serve(command::http::ServeArgs),
    /// Run the demo policy in front of a built-in echo upstream.
    Demo(command::http::DemoArgs),
    /// Answer another gateway's auth requests (nginx auth_request, Caddy
    /// forward_auth, Traefik forwardAuth, Envoy ext_authz) with a policy.
    ForwardAuth(Box<command::http::ForwardAuthArgs>),
    /// Print the SAML SP metadata of an endpoint, for the IdP's admin.
    SamlMetadata(command::saml::Args),
    /// Print the JSON Schema of the policy format, for editors.
    Schema(command::schema::Args),
    /// Run the test files beside policies: requests, the world around
    /// them, and what must come of them.
    Test(command::test::Args),
    /// Serve the language server protocol on stdio, for editors.
    Lsp(command::lsp::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Cel(args) => command::cel::run(&args),
        Command::Lint(args) => command::lint::run(&args),
        Command::Http(args) => command::http::http(&args),
        Command::Serve(args) => command::http::serve(&args),
        Command::Demo(args) => command::http::demo(&args),
        Command::ForwardAuth(args) => command::http::forward_auth(&args),
        Command::SamlMetadata(args) => command::saml::run(&args),
        Command::Schema(args) => command::schema::run(&args),
        Command::Test(args) => command::test::run(&args),
        Command::Lsp(args) => command::lsp::run(&args),
    };
    match res {
        Ok(code) => code,
        Err(err) => {
            command::eprint(&format!("error: {err:#}"));
            ExitCode::from(2)
        }
    }
}
